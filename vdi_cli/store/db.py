"""Opening the database: path resolution (`--db` > `VDI_DB` > app dir), WAL, migrations."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from vdi_cli.errors import StoreError

DB_ENV = "VDI_DB"
HOME_ENV = "VDI_HOME"
TIMEOUT_ENV = "VDI_DB_TIMEOUT"
BUSY_TIMEOUT_S = 30  # how long a command waits for another one holding the database's write lock


def busy_timeout() -> float:
    """Seconds to wait for another process's write lock: `VDI_DB_TIMEOUT`, else 30."""
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw else BUSY_TIMEOUT_S
    except ValueError:
        raise StoreError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds",
                         hint=f"e.g. {TIMEOUT_ENV}=30") from None
    return max(0.0, value)


def app_dir() -> Path:
    """Where vdi keeps its database and caches: `VDI_HOME`, else the platform's app dir.

    The platform's folder is the one `typer.get_app_dir("vdi")` (click's) names, worked out
    here so that the store does not import the CLI library: `%APPDATA%\\vdi` on Windows (the
    home folder without APPDATA), `~/Library/Application Support/vdi` on macOS, else
    `$XDG_CONFIG_HOME/vdi` (`~/.config/vdi`)."""
    import sys

    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser()
    if sys.platform.startswith("win"):
        folder = os.environ.get("APPDATA")
        return Path(os.path.join(os.path.expanduser("~") if folder is None else folder, "vdi"))
    if sys.platform == "darwin":
        return Path(os.path.join(os.path.expanduser("~/Library/Application Support"), "vdi"))
    return Path(os.path.join(os.environ.get("XDG_CONFIG_HOME", os.path.expanduser("~/.config")),
                             "vdi"))


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

    deadline = time.monotonic() + busy_timeout()
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _writable(db_path: Path) -> str | None:
    """Why `db_path` cannot be written (None: it can). SQLite in WAL mode also creates `-wal`
    and `-shm` files beside it, so its folder must take new files too. `os.access` is the
    kernel's answer for this process: root passes permission bits, but not a read-only mount."""
    folder = db_path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    targets = [db_path] if db_path.exists() else []
    targets.append(folder)
    for target in targets:
        if not os.access(target, os.W_OK):
            try:
                read_only = bool(os.statvfs(target).f_flag & os.ST_RDONLY)
            except OSError:
                read_only = False
            return "read-only file system" if read_only else f"no write permission on '{target}'"
    return None


def _open_read_only(db_path: Path) -> Any:
    """Open for reading where nothing can be written. Without a `-wal` file SQLite still wants
    to create the `-shm` index, which it cannot: `immutable=1` tells it nobody writes the file
    (true: the folder is read-only); with one, plain `mode=ro` reads the WAL's rows too."""
    from urllib.parse import quote

    uri = f"file:{quote(str(db_path.resolve()))}?mode=ro"
    if not Path(f"{db_path}-wal").exists():
        uri += "&immutable=1"
    return sqlite3.connect(uri, uri=True, timeout=busy_timeout())


def open_db(path: str | Path | None = None, migrate: bool = True, readonly: bool = False) -> Any:
    """Open (creating if needed) the run database and bring its schema up to date.

    `readonly=True` (listing runs) also opens a database that cannot be written, as it is;
    otherwise such a database is refused here, before any work starts: every command that
    works records a run in it."""
    import sqlite_utils

    db_path = resolve_db_path(path)
    if db_path.is_dir():
        raise StoreError(f"the run database '{db_path}' is a folder, not a file",
                         hint=f"pass a file path, e.g. --db {db_path / 'vdi.db'}")
    why = _writable(db_path)
    if why is not None:
        if not readonly or not db_path.exists():
            raise StoreError(
                f"cannot write the run database '{db_path}': {why}",
                hint="pass a writable --db or set VDI_DB"
                + ("; `vdi runs list` and `vdi runs show` can still read this one"
                   if db_path.exists() else ""),
            )
        try:
            conn = _open_read_only(db_path)
            tables = {r[0] for r in conn.execute("select name from sqlite_master")}
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"'{db_path}' is not a usable vdi database: {exc}",
                             hint="point --db at another file; the file was left untouched"
                             ) from exc
        if "runs" not in tables:
            raise StoreError(f"'{db_path}' holds no vdi runs (and cannot be written)",
                             hint="point --db at a vdi database")
        return sqlite_utils.Database(conn)
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(db_path), timeout=busy_timeout())
        db = sqlite_utils.Database(conn)
        _use_wal(conn)
        db.execute("PRAGMA foreign_keys=ON")
    except sqlite3.OperationalError as exc:
        raise _operational(db_path, exc, "open") from exc
    except OSError as exc:
        raise StoreError(
            f"cannot open the run database '{db_path}': {exc.strerror or exc}",
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
        except sqlite3.OperationalError as exc:
            raise _operational(db_path, exc, "update") from exc
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"'{db_path}' is not a usable vdi database: {exc}",
                hint="point --db at another file; the file was left untouched",
            ) from exc
    return db


def open_memory_db() -> Any:
    """A fresh in-memory store with the full schema: the Python API's store when the caller
    gives none (`vdi_cli.api`). The same SQLite and migrations as a file, so every stage runs
    its one code path; it records nothing past its connection, holds no lock another process
    waits on and leaves no file to clean up."""
    import sqlite_utils

    from vdi_cli.store.migrations import migrate as run_migrations

    db = sqlite_utils.Database(sqlite3.connect(":memory:"))
    db.execute("PRAGMA foreign_keys=ON")
    run_migrations(db)
    return db


def _operational(db_path: Path, exc: sqlite3.OperationalError, action: str) -> StoreError:
    """SQLite's answer turned into what failed and what to do: locked, full disk, other."""
    import shutil

    text = str(exc)
    if "locked" in text:
        return _locked(db_path)
    try:
        free = shutil.disk_usage(db_path.parent).free
    except OSError:
        free = None
    if "full" in text or "I/O" in text:
        room = f" ({free} bytes free on its disk)" if free is not None else ""
        return StoreError(f"cannot {action} the run database '{db_path}': {text}{room}",
                          hint="free some space on its disk, or pass --db on another disk")
    return StoreError(f"cannot {action} the run database '{db_path}': {text}",
                      hint="pass a writable path with --db or set VDI_DB")


def _locked(db_path: Path) -> StoreError:
    return StoreError(
        f"the run database '{db_path}' is locked by another process (waited {busy_timeout():g} s)",
        hint=f"let the other vdi command finish (`vdi runs list --status running`), or pass "
        f"another --db; {TIMEOUT_ENV} sets how long to wait",
    )


def main_file(db: Any) -> Path | None:
    """The file behind an open database as SQLite names it (None for an in-memory one)."""
    for row in db.execute("PRAGMA database_list").fetchall():
        if row[1] == "main" and row[2]:
            return Path(row[2])
    return None


def close_db(db: Any) -> None:
    """Close the database's connection (a rank of a distributed run reopening it read-only)."""
    db.conn.close()


def has_table(db: Any, name: str) -> bool:
    """Whether the database has table `name` (an old or read-only one may lack later tables)."""
    return name in db.table_names()


def open_serving(db_path: str | Path) -> Any:
    """A database opened for `vdi serve`: `mode=ro` (writes fail in SQLite itself), usable from
    the server's worker threads (callers serialise its use with a lock). A missing file or one
    without vdi's tables is a StoreError."""
    from urllib.parse import quote

    import sqlite_utils

    path = Path(db_path).expanduser()
    if not path.is_file():
        raise StoreError(f"no run database at '{path}'",
                         hint="pass --db PATH of a database vdi wrote (or set VDI_DB); "
                         "`make demo` makes one")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        tables = {r[0] for r in conn.execute("select name from sqlite_master")}
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"'{path}' is not a usable vdi database: {exc}",
                         hint="point --db at a database vdi wrote") from exc
    if "runs" not in tables:
        conn.close()
        raise StoreError(f"'{path}' holds no vdi runs",
                         hint="point --db at a database vdi wrote")
    return sqlite_utils.Database(conn)
