"""The run store: one SQLite database (sqlite-utils), WAL mode, append-only migrations."""

from vdi_cli.store.db import DB_ENV, default_db_path, open_db, resolve_db_path
from vdi_cli.store.runs import finish_run, get_run, list_runs, run_context, start_run

__all__ = [
    "DB_ENV",
    "default_db_path",
    "finish_run",
    "get_run",
    "list_runs",
    "open_db",
    "resolve_db_path",
    "run_context",
    "start_run",
]
