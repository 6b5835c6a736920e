"""Run rows: written when a command that does work starts, finished as ok / error / interrupted.

`run_context` is what commands use: a crash, a Ctrl-C or an expected error all leave a trace.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vdi_cli.errors import Stopped, VdiError


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _plugin_versions() -> dict[str, str]:
    from vdi_cli.plugins import get_host

    host = get_host()
    host.load()
    return {i.dist: i.version for i in host.infos if i.status == "loaded"}


def start_run(
    db: Any,
    command: str,
    config: dict[str, Any] | None = None,
    argv: list[str] | None = None,
    **columns: Any,
) -> int:
    """Insert a `running` row and return its id. `columns`: backbone, head, parser."""
    from vdi_cli import __version__
    from vdi_cli.plugins import emit
    from vdi_cli.types import RunEvent

    row = {
        "command": command,
        "status": "running",
        "started_at": now(),
        "argv": json.dumps(argv or []),
        "config": json.dumps(config or {}, sort_keys=True, default=str),
        "plugins": json.dumps(_plugin_versions(), sort_keys=True),
        "vdi_version": __version__,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        **{k: v for k, v in columns.items() if k in ("backbone", "head", "parser")},
    }
    run_id = db["runs"].insert(row).last_pk
    emit(RunEvent("started", run_id, command, {"config": config or {}}))
    return int(run_id)


def finish_run(
    db: Any,
    run_id: int,
    status: str,
    error: str | None = None,
    summary: dict[str, Any] | None = None,
) -> None:
    from vdi_cli.plugins import emit
    from vdi_cli.types import RunEvent

    if status not in ("ok", "error", "interrupted"):
        raise ValueError(f"unknown run status {status!r}")
    update: dict[str, Any] = {"status": status, "finished_at": now(), "error": error}
    if summary is not None:
        update["summary"] = json.dumps(summary, sort_keys=True, default=str)
    db["runs"].update(run_id, update)
    row = db["runs"].get(run_id)
    emit(RunEvent("finished", run_id, row["command"], {"status": status, "error": error}))


@dataclass
class RunHandle:
    """What a command holds while its run is open."""

    db: Any
    id: int
    summary: dict[str, Any] = field(default_factory=dict)
    failed: str | None = None  # set to finish as error without raising (partial failures)

    def update(self, **columns: Any) -> None:
        self.db["runs"].update(self.id, columns)


@contextmanager
def run_context(
    db: Any,
    command: str,
    config: dict[str, Any] | None = None,
    argv: list[str] | None = None,
    **columns: Any,
) -> Iterator[RunHandle]:
    """Open a run; close it as ok, error (with the error text) or interrupted (Ctrl-C)."""
    handle = RunHandle(db, start_run(db, command, config, argv, **columns))
    try:
        yield handle
    except KeyboardInterrupt as exc:
        reason = str(exc) if isinstance(exc, Stopped) else "interrupted by the user"
        finish_run(db, handle.id, "interrupted", reason, handle.summary)
        raise
    except VdiError as exc:
        text = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
        finish_run(db, handle.id, "error", text, handle.summary)
        raise
    except BaseException as exc:
        finish_run(db, handle.id, "error", f"{type(exc).__name__}: {exc}", handle.summary)
        raise
    else:
        if handle.failed:
            finish_run(db, handle.id, "error", handle.failed, handle.summary)
        else:
            finish_run(db, handle.id, "ok", None, handle.summary)


def process_gone(row: dict[str, Any]) -> bool:
    """True for a `running` row whose process no longer exists on this host (killed without the
    chance to finish its row). Unknown (older rows, another host) counts as not gone."""
    if row.get("status") != "running" or not row.get("pid"):
        return False
    if row.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(row["pid"]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's process has that pid
        return False
    return False


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["process_gone"] = process_gone(row)
    for key in ("argv", "config", "plugins", "summary"):
        if out.get(key):
            try:
                out[key] = json.loads(out[key])
            except json.JSONDecodeError:
                pass
    return out


def list_runs(
    db: Any, limit: int = 20, status: str | None = None, command: str | None = None
) -> list[dict[str, Any]]:
    where, args = [], []
    if status:
        where.append("status = ?")
        args.append(status)
    if command:
        where.append("command = ?")
        args.append(command)
    rows = db["runs"].rows_where(
        " and ".join(where) or None, args, order_by="id desc", limit=limit
    )
    return [_decode(r) for r in rows]


def get_run(db: Any, run_id: int) -> dict[str, Any]:
    import sqlite_utils

    try:
        row = db["runs"].get(run_id)
    except sqlite_utils.db.NotFoundError as exc:
        raise VdiError(
            f"no run with id {run_id}", hint="`vdi runs list` shows the recent runs"
        ) from exc
    out = _decode(row)
    out["metrics"] = list(
        db["metrics"].rows_where("run_id = ?", [run_id], order_by="id")
    )
    out["checkpoints"] = list(
        db["checkpoints"].rows_where("run_id = ?", [run_id], order_by="id")
    )
    return out
