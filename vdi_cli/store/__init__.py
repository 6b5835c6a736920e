"""The run store: one SQLite database (sqlite-utils), WAL mode, append-only migrations.

Every SQL statement and sqlite-utils table call of vdi lives in this package, a module per
table family (runs, videos and features, queries, predictions and metrics, checkpoints,
indexes, file hashes); the package imports no plugin machinery, no ML library and no CLI
(`tests/test_layers.py` checks both). A command's run, with its plugin versions and run
events, is `vdi_cli.runs.run_context`.
"""

from vdi_cli.store.db import DB_ENV, default_db_path, open_db, resolve_db_path
from vdi_cli.store.runs import get_run, list_runs

__all__ = [
    "DB_ENV",
    "default_db_path",
    "get_run",
    "list_runs",
    "open_db",
    "resolve_db_path",
]
