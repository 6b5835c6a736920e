"""The content-hash cache: an unchanged file (same device, inode, size, mtime_ns) is not read
again; any change to it is."""

from __future__ import annotations

import hashlib
import os

from vdi_cli.store import open_db
from vdi_cli.store.hashes import cached_sha256


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_unchanged_file_is_not_read_again_and_a_changed_one_is(tmp_path):
    db = open_db(tmp_path / "vdi.db")
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"a" * 5000)
    assert cached_sha256(db, path) == _sha(b"a" * 5000)
    assert db["file_hashes"].count == 1
    # Same size, same mtime (restored): the stat identity is unchanged, so the recorded hash
    # comes back - proof that the file was not read (git's index makes the same trade).
    st = os.stat(path)
    path.write_bytes(b"b" * 5000)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cached_sha256(db, path) == _sha(b"a" * 5000)
    # A new modification time: hashed again, and the row replaced.
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert cached_sha256(db, path) == _sha(b"b" * 5000)
    # A new size: hashed again.
    path.write_bytes(b"b" * 5001)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert cached_sha256(db, path) == _sha(b"b" * 5001)
    assert db["file_hashes"].count == 1
    # A copy is another inode: its own row, the same content hash.
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(path.read_bytes())
    assert cached_sha256(db, copy) == _sha(b"b" * 5001)
    assert db["file_hashes"].count == 2


def test_extract_finds_cached_features_through_the_hash_cache(tmp_path, monkeypatch):
    """`vdi extract` twice: the second run reads no video byte to find the cached features."""
    from vdi_cli.pipeline.extract import extract_features
    from vdi_cli.store import hashes
    from vdi_cli.testing import make_video

    db = open_db(tmp_path / "vdi.db")
    videos = [make_video(tmp_path / f"v{i}.mp4", seconds=2, fps=4, seed=i) for i in range(3)]
    first = extract_features(db, videos, backbone="tiny-shapes", show_progress=False)
    assert first.counts()["extracted"] == 3
    reads = []
    monkeypatch.setattr(hashes, "hash_file", lambda p: reads.append(p) or "x")
    again = extract_features(db, videos, backbone="tiny-shapes", show_progress=False)
    assert again.counts()["cached"] == 3 and reads == []


def test_large_weights_files_are_hashed_once_across_processes(tmp_path, monkeypatch):
    """A weights file of 16 MB or more is hashed once per stat identity and remembered in
    VDI_HOME/weight-hashes.json (a cold start then reads none of it); smaller files and
    changed ones are hashed again."""
    from vdi_cli import backbones

    monkeypatch.setenv("VDI_HOME", str(tmp_path / "home"))
    weights = tmp_path / "big.safetensors"
    weights.write_bytes(b"a" * (1 << 24))
    assert backbones.file_sha256(weights) == _sha(b"a" * (1 << 24))
    assert (tmp_path / "home" / backbones.HASHES_FILE).is_file()
    st = os.stat(weights)
    weights.write_bytes(b"b" * (1 << 24))  # same size, mtime restored: the same identity
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    monkeypatch.setattr(backbones, "_sha_memo", {})  # as a fresh process
    assert backbones.file_sha256(weights) == _sha(b"a" * (1 << 24))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000))
    assert backbones.file_sha256(weights) == _sha(b"b" * (1 << 24))
    small = tmp_path / "small.bin"
    small.write_bytes(b"x" * 100)
    backbones.file_sha256(small)
    import json

    known = json.loads((tmp_path / "home" / backbones.HASHES_FILE).read_text())
    assert len(known) == 2 and _sha(b"x" * 100) not in known.values()
