"""Environment faults are errors the user can act on, not bugs: a full disk (here injected at the
file-write boundary, so it runs without root; the failure catalogue also fills real tmpfs disks),
read-only folders and databases, a locked database. See vdi_cli/environment.py."""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
from pathlib import Path

import pytest

from vdi_cli.environment import ensure_writable_dir, environment_error
from vdi_cli.errors import StoreError, VdiError
from vdi_cli.store import open_db
from vdi_cli.testing import invoke, make_video

TINY = "open_clip:vdi-tiny"


class _FillingFile:
    """A real temporary file on a disk that is full after `room` bytes (ENOSPC past it)."""

    def __init__(self, room: int, **kwargs) -> None:
        self._file = _REAL_TEMPORARY_FILE(**kwargs)
        self._room = room

    def write(self, data: bytes) -> int:
        if self._file.tell() + len(data) > self._room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._file.write(data)

    def __getattr__(self, name: str):
        return getattr(self._file, name)

    def __enter__(self) -> _FillingFile:
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()


_REAL_TEMPORARY_FILE = tempfile.TemporaryFile


def _leftovers(home: Path) -> list[Path]:
    return [p for p in home.rglob("*") if p.is_file() and (".tmp" in p.name
                                                            or p.suffix == ".safetensors")]


@pytest.fixture
def video(tmp_path):
    pytest.importorskip("torch")
    from vdi_cli.testing import register_tiny_open_clip

    register_tiny_open_clip()
    return make_video(tmp_path / "clip.mp4", seconds=4, fps=4, size=(48, 32))


def _extract_row(db_path: Path) -> tuple[str, str]:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute("select status, error from runs where command = 'extract'").fetchone()
    finally:
        conn.close()


def test_a_disk_that_fills_while_features_are_encoded(video, tmp_path, monkeypatch):
    # room for the folder check's 4 KiB probe, not for the ~17 KB of features
    monkeypatch.setattr("vdi_cli.features.tempfile.TemporaryFile",
                        lambda **kw: _FillingFile(8000, **kw))
    result = invoke(["extract", str(video), "--backbone", TINY, "--fps", "4"])
    assert result.exit_code == 1, result.stderr
    home = Path(os.environ["VDI_HOME"])
    assert f"Error: cannot write features under '{home / 'features' / '.tmp'}': No space left " \
           "on device" in result.stderr
    assert "Hint: free some space" in result.stderr and "bug" not in result.stderr
    assert not _leftovers(home)
    status, error = _extract_row(tmp_path / "vdi.db")
    assert status == "error" and "No space left on device" in error


def test_a_disk_that_fills_while_the_feature_file_is_assembled(video, tmp_path, monkeypatch):
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("vdi_cli.features.os.fsync", full)
    result = invoke(["extract", str(video), "--backbone", TINY])
    assert result.exit_code == 1
    assert "No space left on device" in result.stderr and "Traceback" not in result.stderr
    assert not _leftovers(Path(os.environ["VDI_HOME"]))  # the half-written .tmp is gone
    assert _extract_row(tmp_path / "vdi.db")[0] == "error"


def test_a_full_disk_is_found_before_the_model_loads(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("vdi_cli.environment.os.fsync", full)
    with pytest.raises(VdiError, match=r"cannot write to the features folder '.*': No space"):
        ensure_writable_dir(tmp_path / "features", "features folder")


def test_escaped_environment_errors_are_named_and_bugs_are_not():
    fault = environment_error(OSError(errno.EROFS, os.strerror(errno.EROFS), "/data/x.bin"))
    assert fault is not None and fault.message == "cannot use '/data/x.bin': Read-only file system"
    assert "mounted read-only" in (fault.hint or "")
    locked = environment_error(sqlite3.OperationalError("database is locked"))
    assert locked is not None and "locked by another process" in locked.message
    assert environment_error(ValueError("a real bug")) is None
    assert environment_error(OSError(errno.ENOENT, "No such file")) is None  # not environment


def test_a_read_only_database_file_as_the_kernel_sees_it(tmp_path):
    """chmod 444 stops a normal user; root writes through it, and so does SQLite for root, so
    vdi asks the kernel (os.access) rather than reading the mode bits: both cases are right."""
    db = open_db(tmp_path / "vdi.db")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.close()
    (tmp_path / "vdi.db").chmod(0o444)
    result = invoke(["--db", str(tmp_path / "vdi.db"), "datasets", "generate", "synthetic-shapes",
                     "--out", str(tmp_path / "g"), "--videos", "1", "--test-videos", "1",
                     "--fps", "2", "--size", "32"])
    if os.geteuid() == 0:
        assert result.exit_code == 0, result.stderr
    else:
        assert result.exit_code == 1
        assert "cannot write the run database" in result.stderr
        listed = invoke(["--db", str(tmp_path / "vdi.db"), "runs", "list"])
        assert listed.exit_code == 0, listed.stderr


def test_db_timeout_must_be_a_number(monkeypatch, tmp_path):
    monkeypatch.setenv("VDI_DB_TIMEOUT", "soon")
    with pytest.raises(StoreError, match="VDI_DB_TIMEOUT='soon' is not a number"):
        open_db(tmp_path / "x.db")
