"""The `runs` table: a row written when a command that does work starts, finished as ok / error
/ interrupted.

Only rows: the plugin versions a row records are given by the caller, and the run events
(`RunEvent`) are sent by the caller too (`vdi_cli.runs`, which commands use through
`run_context`), so the store loads no plugins and calls no hooks.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from typing import Any

from vdi_cli.errors import VdiError

STATUSES = ("ok", "error", "interrupted")  # how a run finishes
RUN_STATUSES = (*STATUSES, "running")  # what a run row's status can be


def now() -> str:
    """The timestamp every table records (UTC, ISO 8601, milliseconds)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def insert_run(
    db: Any,
    command: str,
    config: dict[str, Any] | None = None,
    argv: list[str] | None = None,
    *,
    plugins: dict[str, str] | None = None,
    **columns: Any,
) -> int:
    """Insert a `running` row for this process and return its id. `columns`: backbone, head,
    parser (others are ignored); `plugins`: {distribution: version} of the loaded plugins."""
    from vdi_cli import __version__

    row = {
        "command": command,
        "status": "running",
        "started_at": now(),
        "argv": json.dumps(argv or []),
        "config": json.dumps(config or {}, sort_keys=True, default=str),
        "plugins": json.dumps(plugins or {}, sort_keys=True),
        "vdi_version": __version__,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        **{k: v for k, v in columns.items() if k in ("backbone", "head", "parser")},
    }
    return int(db["runs"].insert(row).last_pk)


def close_run(
    db: Any,
    run_id: int,
    status: str,
    error: str | None = None,
    summary: dict[str, Any] | None = None,
) -> str:
    """Finish a run row as ok / error / interrupted (with the error text and the summary);
    returns the row's command."""
    if status not in STATUSES:
        raise ValueError(f"unknown run status {status!r}")
    update: dict[str, Any] = {"status": status, "finished_at": now(), "error": error}
    if summary is not None:
        update["summary"] = json.dumps(summary, sort_keys=True, default=str)
    db["runs"].update(run_id, update)
    return str(db["runs"].get(run_id)["command"])


def update_run(db: Any, run_id: int, **columns: Any) -> None:
    """Set columns of a run row (e.g. the backbone and head once a command knows them)."""
    db["runs"].update(run_id, columns)


def recorded_config(db: Any, run_id: int) -> dict[str, Any]:
    """The configuration the run row recorded (decoded; {} when none)."""
    recorded = db["runs"].get(run_id).get("config") or "{}"
    return json.loads(recorded) if isinstance(recorded, str) else recorded


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


def live_run_ids(db: Any) -> set[int]:
    """The ids of `running` rows whose process may still be going (see `process_gone`)."""
    return {r["id"] for r in db["runs"].rows_where("status = 'running'")
            if not process_gone(r)}


def run_ids(db: Any) -> set[int]:
    """Every run id in the database."""
    return {r["id"] for r in db["runs"].rows_where(select="id")}


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
    """The newest runs first (decoded), optionally of one status and one command."""
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
    """One run (decoded) with its metrics and checkpoint rows; a VdiError for an unknown id."""
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
