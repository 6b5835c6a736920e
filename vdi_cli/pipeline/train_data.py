"""Training data: annotations grouped by video, parsed queries, and batches of tensors.

MMN batches by *video* (48 videos, all their sentences); so do we. Frame features come from a
`features_for(video_id) -> VideoFeatures` callable, so the same code serves the extraction cache
(`vdi train`), in-memory tensors (tests) and anything a plugin provides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vdi_cli.types import Annotation, ParsedQuery


@dataclass
class VideoFeatures:
    """Cached features of one video: global [T, D], patches [T, HW, D] or None, times [T] (s)."""

    global_feats: Any
    patches: Any
    times: Any


@dataclass
class VideoSample:
    """One video with every annotated sentence of it."""

    video_id: str
    duration: float
    queries: list[str] = field(default_factory=list)
    parsed: list[ParsedQuery] = field(default_factory=list)
    moments: list[tuple[float, float]] = field(default_factory=list)
    query_ids: list[str] = field(default_factory=list)
    extras: list[dict[str, Any]] = field(default_factory=list)


def group_by_video(
    annotations: Sequence[Annotation], parsed: dict[str, ParsedQuery] | None = None
) -> list[VideoSample]:
    """Annotations -> one sample per video, in first-seen order; `parsed` maps query text to its
    ParsedQuery (missing texts are left unparsed: evaluation needs none)."""
    samples: dict[str, VideoSample] = {}
    for a in annotations:
        s = samples.setdefault(a.video_id, VideoSample(a.video_id, a.duration))
        s.queries.append(a.query)
        if parsed is not None:
            s.parsed.append(parsed[a.query])
        s.moments.append((a.start, a.end))
        s.query_ids.append(a.query_id)
        s.extras.append(dict(a.extra))
    return list(samples.values())


def epoch_batches(count: int, batch_size: int, seed: int, epoch: int, shuffle: bool = True
                  ) -> list[list[int]]:
    """Video indices per batch; the order depends only on (seed, epoch), so a resumed run sees
    the same batches as an uninterrupted one."""
    import torch

    if shuffle:
        g = torch.Generator().manual_seed(seed * 1000 + epoch)
        order = torch.randperm(count, generator=g).tolist()
    else:
        order = list(range(count))
    return [order[i : i + batch_size] for i in range(0, count, batch_size)]


@dataclass
class Batch:
    """Tensors for one step. B videos, Q sentences, T frames (padded), HW patches, D dims."""

    video_ids: list[str]
    frames: Any  # [B, T, D] float32
    frame_mask: Any  # [B, T] bool, True on real frames
    times: Any  # [B, T] float32 seconds
    patches: Any  # [B, T, HW, D] or None
    durations: Any  # [B] float32
    queries: list[str]
    static: list[str]
    dynamic: list[str]
    video_index: Any  # [Q] long
    moments: Any  # [Q, 2] float32 seconds
    query_ids: list[str]

    def sentence_frame_mask(self, scope: str) -> Any:
        """[Q, T]: which frames each sentence's VDI branch sees: the whole video, or its moment
        (the frames whose time falls in [start, end]; the nearest frame when none does)."""
        import torch

        mask = self.frame_mask[self.video_index]
        if scope == "video":
            return mask
        t = self.times[self.video_index]
        s, e = self.moments[:, :1], self.moments[:, 1:]
        inside = mask & (t >= s) & (t <= e)
        empty = ~inside.any(1)
        if empty.any():
            centre = (s + e) / 2
            dist = (t - centre).abs().masked_fill(~mask, float("inf"))
            nearest = torch.zeros_like(inside)
            nearest[torch.arange(len(inside)), dist.argmin(1)] = True
            inside = torch.where(empty[:, None], nearest, inside)
        return inside


def collate(
    samples: Sequence[VideoSample],
    features_for: Callable[[str], VideoFeatures],
    need_patches: bool = False,
) -> Batch:
    """Pad the videos' features to the longest and flatten their sentences."""
    import torch

    feats = [features_for(s.video_id) for s in samples]
    lengths = [int(f.global_feats.shape[0]) for f in feats]
    t_max, dim = max(lengths), int(feats[0].global_feats.shape[-1])
    frames = torch.zeros(len(samples), t_max, dim)
    times = torch.zeros(len(samples), t_max)
    mask = torch.zeros(len(samples), t_max, dtype=torch.bool)
    patches = None
    if need_patches:
        hw = int(feats[0].patches.shape[1])
        patches = torch.zeros(len(samples), t_max, hw, dim)
    for i, (f, n) in enumerate(zip(feats, lengths, strict=True)):
        frames[i, :n] = torch.as_tensor(f.global_feats).float()
        times[i, :n] = torch.as_tensor(f.times).float()
        mask[i, :n] = True
        if patches is not None:
            patches[i, :n] = torch.as_tensor(f.patches).float()
    queries, static, dynamic, video_index, moments, qids = [], [], [], [], [], []
    for i, s in enumerate(samples):
        queries.extend(s.queries)
        static.extend(p.static for p in s.parsed)
        dynamic.extend(p.dynamic for p in s.parsed)
        video_index.extend([i] * len(s.queries))
        moments.extend(s.moments)
        qids.extend(s.query_ids)
    return Batch(
        video_ids=[s.video_id for s in samples],
        frames=frames,
        frame_mask=mask,
        times=times,
        patches=patches,
        durations=torch.tensor([s.duration for s in samples], dtype=torch.float32),
        queries=queries,
        static=static,
        dynamic=dynamic,
        video_index=torch.tensor(video_index, dtype=torch.long),
        moments=torch.tensor(moments, dtype=torch.float32).reshape(-1, 2),
        query_ids=qids,
    )
