"""Opening the database: path resolution (`--db` > `VDI_DB` > app dir), WAL, migrations."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from vdi_cli.errors import StoreError

DB_ENV = "VDI_DB"
HOME_ENV = "VDI_HOME"
BUSY_TIMEOUT_S = 30  # how long a command waits for another one holding the database's write lock


def app_dir() -> Path:
    """Where vdi keeps its database and caches: `VDI_HOME`, else the platform's app dir."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser()
    import typer

    return Path(typer.get_app_dir("vdi"))


def default_db_path() -> Path:
    return app_dir() / "vdi.db"


def resolve_db_path(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(DB_ENV)
    if env:
        return Path(env).expanduser()
    return default_db_path()


def _use_wal(conn: Any) -> None:
    """Switch to WAL. Switching a new file needs it to itself, and SQLite answers "locked" at
    once instead of waiting when another process is doing the same: retry for the busy timeout.
    """
    import time

    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def open_db(path: str | Path | None = None, migrate: bool = True) -> Any:
    """Open (creating if needed) the run database and bring its schema up to date."""
    import sqlite_utils

    db_path = resolve_db_path(path)
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(db_path), timeout=BUSY_TIMEOUT_S)
        db = sqlite_utils.Database(conn)
        _use_wal(conn)
        db.execute("PRAGMA foreign_keys=ON")
    except (OSError, sqlite3.OperationalError) as exc:
        raise StoreError(
            f"cannot open the run database '{db_path}': {exc}",
            hint="pass a writable path with --db or set VDI_DB",
        ) from exc
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"'{db_path}' is not a usable vdi database: {exc}",
            hint="point --db at another file; the file was left untouched",
        ) from exc
    if migrate:
        from vdi_cli.store.migrations import migrate as run_migrations

        try:
            run_migrations(db)
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"'{db_path}' is not a usable vdi database: {exc}",
                hint="point --db at another file; the file was left untouched",
            ) from exc
    return db
