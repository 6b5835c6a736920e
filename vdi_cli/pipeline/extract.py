"""The extract stage: videos -> per-frame global and patch features, cached on disk and in SQLite.

Per video: content hash (sha256) -> cache lookup on (hash, backbone, weights, sampling, dtype);
hits need neither decoding nor the model (which is not even loaded when every video is cached).
Misses are decoded in one background thread (or, with `workers=K`, in K decoding processes:
`extract_workers`), which also does the resize/normalise, and handed over in batches through a
bounded queue while the main thread runs the model, so decoding hides behind compute and memory
is bounded by a few batches per decoder. With K processes several videos are in flight at
once, each with its own writer; each is committed when its last batch is encoded. A video that
cannot be read is recorded with its reason and the others go on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vdi_cli.backbones import resolve_backbone
from vdi_cli.environment import ensure_writable_dir
from vdi_cli.features import (
    FeatureWriter,
    feature_path,
    features_dir,
    find_feature_row,
    sweep_temporaries,
)
from vdi_cli.pipeline.decode import preprocess_batch
from vdi_cli.pipeline.extract_sources import pool_messages, thread_messages
from vdi_cli.store.hashes import cached_sha256
from vdi_cli.store.videos import move_video
from vdi_cli.video import MISSING, Sampling, VideoError, expected_count


@dataclass
class VideoOutcome:
    """What happened to one input video."""

    path: str
    status: str = "pending"  # extracted | cached | failed
    name: str = ""  # dataset video id, or the file name
    sha256: str | None = None
    frames: int = 0
    duration: float | None = None
    global_shape: list[int] | None = None
    patch_shape: list[int] | None = None
    features_path: str | None = None
    feature_id: int | None = None
    reason: str | None = None  # missing | corrupt | zero-frames | audio-only | unsupported-codec
    error: str | None = None
    hint: str | None = None
    damage: dict[str, Any] | None = None  # frames lost in a damaged file that still decoded

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ExtractReport:
    backbone: str
    weights: str
    sampling: dict[str, Any]
    dtype: str
    device: str
    videos: list[VideoOutcome] = field(default_factory=list)
    model_loaded: bool = False
    frames_encoded: int = 0
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        out = {"extracted": 0, "cached": 0, "failed": 0}
        for v in self.videos:
            out[v.status] = out.get(v.status, 0) + 1
        return out

    def failures(self) -> list[VideoOutcome]:
        return [v for v in self.videos if v.status == "failed"]

    def damaged(self) -> list[VideoOutcome]:
        return [v for v in self.videos if v.damage and v.status != "failed"]

    def summary(self) -> dict[str, Any]:
        """What the run row records."""
        return {
            **self.counts(),
            "backbone": self.backbone,
            "weights": self.weights,
            "sampling": self.sampling,
            "dtype": self.dtype,
            "model_loaded": self.model_loaded,
            "frames_encoded": self.frames_encoded,
            "seconds": round(self.seconds, 3),
            "failures": [
                {"path": v.path, "name": v.name, "reason": v.reason, "error": v.error}
                for v in self.failures()
            ],
            "damaged": [{"path": v.path, "name": v.name, **(v.damage or {})}
                        for v in self.damaged()],
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "videos": [v.to_dict() for v in self.videos]}


def extract_features(
    db: Any,
    videos: Sequence[str | Path | tuple[str, str | Path | None]],
    *,
    backbone: str | None = None,
    weights: str | None = None,
    sampling: Sampling | dict[str, Any] | None = None,
    batch_size: int = 32,
    device: str = "cpu",
    precision: str = "auto",
    dtype: str = "float16",
    force: bool = False,
    run_id: int | None = None,
    root: str | Path | None = None,
    options: dict[str, Any] | None = None,
    show_progress: bool = True,
    loaded: Any = None,
    workers: int = 0,
) -> ExtractReport:
    """Extract (or find cached) features for `videos`: paths, or (name, path-or-None) pairs.

    `loaded` reuses an already loaded backbone (then `backbone`/`weights` are ignored).
    `workers` 0 decodes in a background thread; K > 0 in K processes (`extract_workers`), the
    same batches and features either way.
    Never raises for a bad video: see `report.failures()`.
    """
    from vdi_cli.errors import VdiError, param

    if batch_size < 1:
        raise VdiError(f"{param('batch_size')} must be at least 1, got {batch_size}",
                       hint="e.g. 32")
    if workers < 0:
        raise VdiError(f"{param('workers')} must be 0 or more, got {workers}",
                       hint="0 decodes in a thread of this process; K > 0 in K processes")
    start = time.perf_counter()
    sampling = Sampling.from_any(sampling)
    spec = None if loaded is not None else resolve_backbone(backbone, weights, options)
    backbone_id = loaded.id if loaded is not None else spec.id  # type: ignore[union-attr]
    weights_id = loaded.weights_id if loaded is not None else spec.weights_id  # type: ignore[union-attr]
    root = Path(root) if root else features_dir()
    report = ExtractReport(backbone_id, weights_id, sampling.to_dict(), dtype, device)
    pending: list[int] = []
    first_by_sha: dict[str, int] = {}
    duplicates: list[tuple[int, int]] = []
    for item in videos:
        name, path = item if isinstance(item, tuple) else (None, item)
        out = VideoOutcome(path=str(path) if path else "", name=name or Path(str(path)).name)
        report.videos.append(out)
        idx = len(report.videos) - 1
        if path is None or not Path(path).is_file():
            _fail(out, VideoError(path or name or "?", MISSING, "no such video file",
                                  hint="check the path (or --video-dir for a dataset)"))
            continue
        out.path = str(Path(path).resolve())
        out.sha256 = cached_sha256(db, out.path)
        if out.sha256 in first_by_sha:
            duplicates.append((idx, first_by_sha[out.sha256]))
            continue
        first_by_sha[out.sha256] = idx
        row = None if force else find_feature_row(db, out.sha256, backbone_id, weights_id, sampling)
        if row is not None and row["dtype"] == dtype and Path(row["path"]).is_file():
            _cached(out, row)
            if row.get("video_path") != out.path:  # the same content found at a new path
                move_video(db, out.sha256, out.path)
        else:
            pending.append(idx)
    if pending:
        ensure_writable_dir(root, "features folder")  # before the model loads
        sweep_temporaries(root)  # what a killed extraction left half written
        if loaded is None:
            loaded = spec.load(device=device, precision=precision)  # type: ignore[union-attr]
            report.model_loaded = True
        report.device = str(loaded.device)
        _run_pipeline(db, report, pending, loaded, sampling, batch_size, dtype, root, run_id,
                      show_progress, workers)
    for idx, first in duplicates:
        src = report.videos[first]
        dup = report.videos[idx]
        keep = (dup.path, dup.name)
        report.videos[idx] = VideoOutcome(**{**src.to_dict(), "path": keep[0], "name": keep[1]})
        if src.status == "extracted":
            report.videos[idx].status = "cached"
    report.seconds = time.perf_counter() - start
    return report


def _fail(out: VideoOutcome, exc: VideoError) -> None:
    out.status, out.reason, out.error, out.hint = "failed", exc.reason, exc.detail, exc.hint


def _cached(out: VideoOutcome, row: dict[str, Any]) -> None:
    out.status = "cached"
    out.feature_id = row["id"]
    out.features_path = row["path"]
    out.global_shape = json.loads(row["global_shape"])
    out.patch_shape = json.loads(row["patch_shape"])
    out.frames = out.global_shape[0]
    out.duration = row.get("duration")


def _run_pipeline(
    db: Any, report: ExtractReport, pending: list[int], loaded: Any, sampling: Sampling,
    batch_size: int, dtype: str, root: Path, run_id: int | None, show_progress: bool,
    workers: int = 0,
) -> None:
    from vdi_cli.progress import progress_bar

    items = [(i, report.videos[i].path) for i in pending]
    if workers > 0:
        messages = pool_messages(items, sampling, batch_size, loaded, workers)
    else:
        messages = thread_messages(items, sampling, batch_size, loaded)
    bar = progress_bar(total=0, unit="frame", desc="extract", enabled=show_progress)
    writers: dict[int, FeatureWriter] = {}  # one per video being decoded (K with workers)
    infos: dict[int, Any] = {}
    encoded: dict[int, int] = {}  # frames per video so far
    try:
        for msg in messages:
            kind, idx = msg[0], msg[1]
            out = report.videos[idx]
            if kind == "start":
                infos[idx] = msg[2]
                writers[idx] = FeatureWriter(dtype, tmp_dir=root / ".tmp")
                bar.total = (bar.total or 0) + expected_count(sampling, msg[2].duration or 0)
                bar.set_postfix_str(Path(out.path).name, refresh=False)
            elif kind == "batch":
                pixels = msg[2]
                if isinstance(pixels, list):  # raw frames: the backbone preprocesses its own
                    pixels = preprocess_batch(loaded.preprocess, pixels)
                g, p = loaded.encode_pixels(pixels)
                writers[idx].append(g, p, msg[3])
                report.frames_encoded += len(msg[3])
                encoded[idx] = encoded.get(idx, 0) + len(msg[3])
                bar.update(len(msg[3]))
            elif kind == "end":
                out.damage = msg[2]
                _commit(db, report, out, writers.pop(idx), infos[idx], loaded, sampling, root,
                        run_id)
            elif kind == "error":
                if idx in writers:
                    writers.pop(idx).abort()
                _fail(out, msg[2])
            elif kind == "retry":  # its decoder died: it starts over on another one
                if idx in writers:
                    writers.pop(idx).abort()
                report.frames_encoded -= encoded.pop(idx, 0)
    finally:
        for writer in writers.values():
            writer.abort()
        messages.close()  # stops the decoding thread or processes
        bar.close()


def _commit(
    db: Any, report: ExtractReport, out: VideoOutcome, writer: Any, info: Any, loaded: Any,
    sampling: Sampling, root: Path, run_id: int | None,
) -> None:
    from vdi_cli.store.videos import record_features

    target = feature_path(root, out.sha256 or "", report.backbone, report.weights, sampling)
    grid = "x".join(str(g) for g in loaded.patch_grid)
    frames, dim, hw = writer.count, writer.dim, writer.num_patches
    writer.commit(target, {
        "video_sha256": out.sha256, "backbone": report.backbone, "weights": report.weights,
        "sampling": sampling.key(), "patch_grid": grid, "duration": f"{info.duration:.6f}",
        "fps": f"{info.fps:.6f}",
    })
    size = Path(out.path).stat().st_size
    video_row = {
        "sha256": out.sha256, "path": out.path, "duration": info.duration, "fps": info.fps,
        "width": info.width, "height": info.height, "num_frames": info.num_frames,
        "size_bytes": size,
    }
    feature_id = record_features(db, video_row, {
        "backbone": report.backbone, "weights": report.weights, "sampling": sampling.key(),
        "path": str(target), "global_shape": json.dumps([frames, dim]),
        "patch_shape": json.dumps([frames, hw, dim]), "dtype": report.dtype, "run_id": run_id,
    })
    out.status = "extracted"
    out.frames = frames
    out.duration = info.duration
    out.global_shape = [frames, dim]
    out.patch_shape = [frames, hw, dim]
    out.features_path = str(target)
    out.feature_id = int(feature_id)
