"""Content hashes of video files, cached in the store by (device, inode, size, mtime_ns).

Features are cached by the content hash of a video, so finding them means hashing the file:
seconds for a large file, on every command. As git's index does, the hash is kept with the
file's stat identity; a file whose device, inode, size and modification time (ns) are unchanged
is not read again. Any change (an edit, a copy over it, a touch) makes it hashed again. The
cost of a lookup is one `stat` and one indexed query.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from vdi_cli.store.runs import now

CHUNK = 1 << 20


def hash_file(path: str | Path) -> str:
    """The sha256 (hex) of a file's content, read in 1 MiB chunks: vdi's one file hasher (video
    content hashes here, checkpoint weights in `vdi_cli.checkpoints`, backbone weights in
    `vdi_cli.backbones.file_sha256`, which memoises it)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def known_sha256(db: Any, path: str | Path) -> str | None:
    """The recorded sha256 of `path` when its stat identity is unchanged, else None (nothing
    is read or computed; a missing file is None)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    rows = list(db.query("select sha256 from file_hashes where device = ? and inode = ? and "
                         "size = ? and mtime_ns = ?",
                         [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]))
    return rows[0]["sha256"] if rows else None


def cached_sha256(db: Any, path: str | Path) -> str:
    """The sha256 of `path`'s content, read from the store when its stat identity is
    unchanged, else computed and recorded."""
    st = os.stat(path)
    key = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
    rows = list(db.query("select sha256 from file_hashes where device = ? and inode = ? and "
                         "size = ? and mtime_ns = ?", key))
    if rows:
        return rows[0]["sha256"]
    sha = hash_file(path)
    if os.stat(path).st_mtime_ns != st.st_mtime_ns:
        return sha  # written while we read: do not record a hash that may be stale
    with db.conn:
        db["file_hashes"].upsert(
            {"device": st.st_dev, "inode": st.st_ino, "size": st.st_size,
             "mtime_ns": st.st_mtime_ns, "sha256": sha, "path": str(Path(path).resolve()),
             "checked_at": now()},
            pk=("device", "inode"))
    return sha
