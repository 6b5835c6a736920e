"""A command's run: its `runs` row (`vdi_cli.store.runs`) plus what the store does not know,
the versions of the loaded plugins the row records and the run events (`RunEvent`) sent to the
`track_event` hooks when it starts and finishes.

`run_context` is what commands use: a crash, a Ctrl-C or an expected error all leave a trace.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from vdi_cli.errors import Stopped, VdiError


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
    """Insert a `running` row (with the loaded plugins' versions), send the `started` event and
    return the run id. `columns`: backbone, head, parser."""
    from vdi_cli.plugins import emit
    from vdi_cli.store.runs import insert_run
    from vdi_cli.types import RunEvent

    run_id = insert_run(db, command, config, argv, plugins=_plugin_versions(), **columns)
    emit(RunEvent("started", run_id, command, {"config": config or {}}))
    return run_id


def finish_run(
    db: Any,
    run_id: int,
    status: str,
    error: str | None = None,
    summary: dict[str, Any] | None = None,
) -> None:
    """Finish the row as ok / error / interrupted and send the `finished` event."""
    from vdi_cli.plugins import emit
    from vdi_cli.store.runs import close_run
    from vdi_cli.types import RunEvent

    command = close_run(db, run_id, status, error, summary)
    emit(RunEvent("finished", run_id, command, {"status": status, "error": error}))


@dataclass
class RunHandle:
    """What a command holds while its run is open."""

    db: Any
    id: int
    summary: dict[str, Any] = field(default_factory=dict)
    failed: str | None = None  # set to finish as error without raising (partial failures)

    def update(self, **columns: Any) -> None:
        from vdi_cli.store.runs import update_run

        update_run(self.db, self.id, **columns)


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
