"""Environment faults (a full disk, a read-only or unwritable folder, a locked or read-only
database) told apart from bugs: what failed, where, and what to do about it.

Two halves. `ensure_writable_dir` checks a folder before the work that will write there starts
(before a model loads), by really writing a small probe file: permission bits say nothing for
root, and only a write finds a read-only mount or a full disk. `environment_error` turns an
`OSError` / `sqlite3.OperationalError` that still escapes (a disk that fills up halfway) into a
`VdiError`, so the CLI prints `Error:` / `Hint:` instead of "this is a bug in vdi".
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from vdi_cli.errors import VdiError

PROBE_BYTES = 4096  # one page: enough to find a full disk, too small to matter
SPACE_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
ACCESS_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}
ENVIRONMENT_ERRNOS = SPACE_ERRNOS | ACCESS_ERRNOS | {errno.EIO, errno.EMFILE, errno.ENFILE}
HOME_HINT = "set VDI_HOME to a folder on a disk with room that you can write to"


def reason(exc: OSError) -> str:
    """`No space left on device`, `Read-only file system`, ...: the errno's own words."""
    return exc.strerror or str(exc)


def hint_for(exc: OSError, where: str | None = None) -> str:
    """What to do about an environment error, by its errno."""
    place = f" on the disk of '{where}'" if where else ""
    if exc.errno in SPACE_ERRNOS:
        return f"free some space{place}, or {HOME_HINT}"
    if exc.errno == errno.EROFS:
        return f"that file system is mounted read-only; {HOME_HINT}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"check the folder's owner and permissions, or {HOME_HINT}"
    return f"check the disk and the folder, or {HOME_HINT}"


def ensure_writable_dir(folder: str | Path, what: str) -> Path:
    """Create `folder` if needed and prove it takes a write (a probe file, removed at once);
    raise a VdiError naming `what` (e.g. "features folder") and the folder otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".vdi-probe.") as probe:
            probe.write(b"\0" * PROBE_BYTES)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        raise VdiError(f"cannot write to the {what} '{folder}': {reason(exc)}",
                       hint=hint_for(exc, str(folder))) from exc
    return folder


def write_error(exc: OSError, what: str, where: str | Path) -> VdiError:
    """A write into `where` failed: name it (a spill file has no name of its own)."""
    return VdiError(f"cannot write {what} under '{where}': {reason(exc)}",
                    hint=hint_for(exc, str(where)))


def environment_error(exc: BaseException) -> VdiError | None:
    """A VdiError for an environment fault that escaped its writer, else None (a real bug)."""
    import sqlite3

    if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
        where = exc.filename
        what = f"cannot use '{where}'" if where else "a file operation failed"
        return VdiError(f"{what}: {reason(exc)}", hint=hint_for(exc, where))
    if isinstance(exc, sqlite3.OperationalError):
        from vdi_cli.settings import get_settings
        from vdi_cli.store.db import busy_timeout, resolve_db_path

        db = resolve_db_path(get_settings().db)
        text = str(exc)
        if "locked" in text or "busy" in text:
            return VdiError(
                f"the run database '{db}' is locked by another process (waited "
                f"{busy_timeout():g} s)",
                hint="let the other vdi command finish (`vdi runs list --status running`), or "
                "pass another --db; VDI_DB_TIMEOUT sets how long to wait",
            )
        if "readonly" in text or "read-only" in text:
            return VdiError(f"the run database '{db}' is read-only",
                            hint="pass a writable --db or set VDI_DB; `vdi runs list` and "
                            "`vdi runs show` can still read this one")
        if "disk is full" in text or "disk I/O" in text:
            return VdiError(f"cannot write the run database '{db}': {text}",
                            hint="free some space on its disk, or pass --db on another disk")
    return None
