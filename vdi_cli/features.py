"""Cached frame features on disk: a streaming, atomic safetensors writer, and the lookup/loader
that training and retrieval use.

One file per (video content hash, backbone, weights, sampling) under `VDI_HOME/features/`, with
tensors `global` [T, D], `patches` [T, H*W, D] (float16 by default) and `times` [T] (float32
seconds), plus string metadata. The writer appends batch by batch to two temporary spill files,
so memory stays bounded by the batch however long the video, then assembles the safetensors file
under a temporary name and `os.replace`s it into place: a reader never sees a partial file, and a
failure leaves nothing behind. A write that fails (a full disk) is a VdiError naming the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import tempfile
from pathlib import Path
from typing import Any

from vdi_cli.environment import write_error
from vdi_cli.errors import VdiError
from vdi_cli.video import Sampling

DTYPES = {"float16": ("F16", 2), "float32": ("F32", 4)}
_COPY_CHUNK = 1 << 22


def sweep_temporaries(root: str | Path) -> list[Path]:
    """Remove the temporary feature files (`.<name>.<pid>.<token>.tmp`) that a killed process
    left in the cache folders under `root`; files of a process still alive are kept."""
    removed = []
    for tmp in Path(root).glob("*/.*.tmp"):
        parts = tmp.name.split(".")
        pid = int(parts[-3]) if len(parts) >= 5 and parts[-3].isdigit() else None
        if pid is None or pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue  # still running: its file may be in use
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def features_dir() -> Path:
    from vdi_cli.store.db import app_dir

    return app_dir() / "features"


def feature_path(root: Path, sha256: str, backbone: str, weights: str, sampling: Sampling) -> Path:
    """`root/<backbone>/<sha[:16]>-<hash of backbone, weights, sampling>.safetensors`."""
    key = hashlib.sha256(f"{backbone}\n{weights}\n{sampling.key()}".encode()).hexdigest()[:12]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", backbone).strip("_") or "backbone"
    return root / safe / f"{sha256[:16]}-{key}.safetensors"


class FeatureWriter:
    """Streams [n, D] / [n, HW, D] batches to disk; `commit(path)` writes the safetensors file
    atomically, `abort()` removes every temporary file. Use as a context manager: leaving the
    block with an exception aborts."""

    def __init__(self, dtype: str = "float16", tmp_dir: str | Path | None = None) -> None:
        if dtype not in DTYPES:
            raise VdiError(f"unknown feature dtype '{dtype}'", hint="use float16 or float32")
        self.dtype = dtype
        self.tmp_dir = Path(tmp_dir) if tmp_dir else None
        try:
            if self.tmp_dir:
                self.tmp_dir.mkdir(parents=True, exist_ok=True)
            self._global = tempfile.TemporaryFile(dir=self.tmp_dir)
            self._patches = tempfile.TemporaryFile(dir=self.tmp_dir)
        except OSError as exc:
            raise write_error(exc, "features", self._spill_dir()) from exc
        self.times: list[float] = []
        self.dim: int | None = None
        self.num_patches: int | None = None

    @property
    def count(self) -> int:
        return len(self.times)

    def append(self, global_feats: Any, patch_feats: Any, times: list[float]) -> None:
        import numpy as np

        np_dtype = np.float16 if self.dtype == "float16" else np.float32
        g = _to_numpy(global_feats).astype(np_dtype, copy=False)
        p = _to_numpy(patch_feats).astype(np_dtype, copy=False)
        if g.ndim != 2 or p.ndim != 3 or g.shape[0] != p.shape[0] or g.shape[0] != len(times):
            raise ValueError(f"bad batch shapes {g.shape}, {p.shape} for {len(times)} times")
        if self.dim is None:
            self.dim, self.num_patches = int(g.shape[1]), int(p.shape[1])
        if g.shape[1] != self.dim or p.shape[1:] != (self.num_patches, self.dim):
            raise ValueError("batch shapes changed within one video")
        try:
            self._global.write(np.ascontiguousarray(g).astype("<" + g.dtype.str[1:]).tobytes())
            self._patches.write(np.ascontiguousarray(p).astype("<" + p.dtype.str[1:]).tobytes())
        except OSError as exc:  # a full disk: the spill files have no name to report
            self.close()
            raise write_error(exc, "features", self._spill_dir()) from exc
        self.times.extend(float(t) for t in times)

    def _spill_dir(self) -> str:
        return str(self.tmp_dir or tempfile.gettempdir())

    def commit(self, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
        """Assemble the file next to `path` under a temporary name, then rename it into place."""
        if not self.count or self.dim is None:
            raise ValueError("no frames to write")
        import numpy as np

        path = Path(path)
        code, size = DTYPES[self.dtype]
        t, d, hw = self.count, self.dim, self.num_patches or 0
        times = np.asarray(self.times, dtype="<f4").tobytes()
        g_bytes, p_bytes = t * d * size, t * hw * d * size
        header = {
            "global": {"dtype": code, "shape": [t, d], "data_offsets": [0, g_bytes]},
            "patches": {
                "dtype": code,
                "shape": [t, hw, d],
                "data_offsets": [g_bytes, g_bytes + p_bytes],
            },
            "times": {
                "dtype": "F32",
                "shape": [t],
                "data_offsets": [g_bytes + p_bytes, g_bytes + p_bytes + len(times)],
            },
            "__metadata__": {k: str(v) for k, v in (metadata or {}).items()},
        }
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        # The name is fixed before the file exists, so an interrupt at any point leaves
        # nothing the cleanup below does not know about; the pid in it lets a later run
        # remove what a killed one left (sweep_temporaries).
        tmp = path.parent / f".{path.stem}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as out:
                out.write(struct.pack("<Q", len(raw)))
                out.write(raw)
                for spill in (self._global, self._patches):
                    spill.seek(0)
                    while chunk := spill.read(_COPY_CHUNK):
                        out.write(chunk)
                out.write(times)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)  # whatever the umask made it, as the other cache files
            os.replace(tmp, path)
        except BaseException as exc:
            _unlink(tmp)
            if isinstance(exc, OSError):
                raise write_error(exc, "features", path.parent) from exc
            raise
        finally:
            self.close()
        return path

    def abort(self) -> None:
        self.close()

    def close(self) -> None:
        for f in (self._global, self._patches):
            if not f.closed:
                try:
                    f.close()
                except OSError:  # flushing onto a full disk: the spill data is dropped anyway
                    pass

    def __enter__(self) -> FeatureWriter:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close()


def _unlink(path: str | Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _to_numpy(x: Any) -> Any:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    import numpy as np

    return np.asarray(x)


def find_feature_row(
    db: Any,
    video_sha: str,
    backbone: str,
    weights: str | None = None,
    sampling: Sampling | dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The newest `features` row for a video (by content hash) and backbone; `weights` and
    `sampling` narrow it when given."""
    from vdi_cli.store.videos import newest_feature

    key = Sampling.from_any(sampling).key() if sampling is not None else None
    return newest_feature(db, video_sha, backbone, weights, key)


def load_features(
    db: Any,
    video: str | Path,
    backbone: str,
    weights: str | None = None,
    sampling: Sampling | dict[str, Any] | None = None,
    patches: bool = True,
    dtype: Any = None,
    by_path: bool = False,
) -> tuple[Any, Any, dict[str, Any]]:
    """Load cached features: `(global [T,D], patches [T,HW,D] or None, meta)` as torch tensors
    (stored dtype unless `dtype` is given, e.g. torch.float32).

    `video` is a file path (hashed) or a sha256 hex digest. `weights` / `sampling` None take the
    newest matching row. `by_path=True` trusts the path recorded at extraction instead of hashing
    the file again (fast for thousands of dataset videos). `meta` has times (list of seconds),
    duration, fps, sampling, backbone, weights, path, feature_id, video_sha256, patch_grid.
    Raises VdiError when nothing is cached.
    """
    from safetensors import safe_open

    from vdi_cli.store.hashes import cached_sha256
    from vdi_cli.store.videos import video_sha_at

    text = str(video)
    if re.fullmatch(r"[0-9a-f]{64}", text) and not Path(text).exists():
        sha = text
    elif by_path:
        sha = video_sha_at(db, str(Path(text).resolve())) or ""
    else:
        if not Path(text).is_file():
            raise VdiError(f"no such video file '{text}'", hint="check the path")
        sha = cached_sha256(db, text)
    row = find_feature_row(db, sha, backbone, weights, sampling)
    if row is None or not Path(row["path"]).is_file():
        wanted = Sampling.from_any(sampling).key() if sampling is not None else "any"
        raise VdiError(
            f"no cached {backbone} features for '{text}' (weights {weights or 'any'}, "
            f"sampling {wanted})",
            hint=f"run: vdi extract --backbone {backbone} {text if Path(text).exists() else '...'}",
        )
    with safe_open(row["path"], framework="pt") as f:
        g = f.get_tensor("global")
        p = f.get_tensor("patches") if patches else None
        times = f.get_tensor("times").tolist()
        stored_meta = f.metadata() or {}
    if dtype is not None:
        g = g.to(dtype)
        p = p.to(dtype) if p is not None else None
    meta = {
        "feature_id": row["id"],
        "video_sha256": sha,
        "video_path": row["video_path"],
        "backbone": row["backbone"],
        "weights": row["weights"],
        "sampling": json.loads(row["sampling"]),
        "path": row["path"],
        "dtype": row["dtype"],
        "times": times,
        "duration": row["duration"],
        "fps": row["video_fps"],
        "patch_grid": stored_meta.get("patch_grid"),
    }
    return g, p, meta
