"""Any video length: overlapping windows of the head's span, decoded window by window, merged.

A grounding head is trained on videos up to some length (the checkpoint's `durations.max`): its
2D map has N clips whatever the length, so a 1-hour video decoded as one "video" would have
clips of minutes. `plan_windows` covers a longer video with windows of that span (50 % overlap
by default, the last one aligned to the end); `rank_video` runs the head on batches of windows
(the frame features are already in memory: [T, D] is 3.7 MB for an hour at 1 fps; a batch is
sized so its 2D-map activations stay within 256 MB), decodes each window with the head's own
`rank` (its 2D map + NMS), shifts the moments to video time and merges them across windows with
a greedy NMS that stops at top-k. Only each window's NMS survivors are kept (tens per window),
so memory grows with the number of windows, not frames. A head may offer `adapt(frames)` (the
training-free one does) to shrink its map to a window's frame count.

With `keep_maps=True` it also builds what `--plot` draws: a score-over-time curve (per frame,
the best score of any candidate moment covering it) and a video-level 2D score map (a G x G grid
of start x end bins; the head's own N x N map when the video is one window).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vdi_cli.errors import VdiError, param
from vdi_cli.metrics import temporal_iou
from vdi_cli.types import Moment

WINDOW_BATCH = 64  # most windows per head forward
BATCH_BYTES = 256 * 2**20  # activation budget of one head forward
SMALL_FLOPS = 5e8  # below this a head forward runs on one thread
MAX_GRID = 128  # side of the video-level score map for plots
_CHUNK = 256
_EPS = 1e-6


def plan_windows(duration: float, span: float | None, overlap: float = 0.5
                 ) -> list[tuple[float, float]]:
    """[(start, end)] seconds covering [0, duration]: one window when the video fits the span,
    else windows of `span` every span * (1 - overlap) seconds, the last ending at `duration`."""
    if not 0 <= overlap < 1:
        raise VdiError(f"{param('overlap')} must be in [0, 1), got {overlap}",
                       hint=f"e.g. {param('overlap', 0.5)}")
    if span is not None and not span > 0:
        raise VdiError(f"{param('window')} must be positive, got {span}",
                       hint=f"e.g. {param('window', 30)}")
    duration = float(duration)
    if span is None or duration <= span * (1 + _EPS):
        return [(0.0, duration)]
    stride = span * (1 - overlap)
    starts, s = [], 0.0
    while s + span < duration - _EPS:
        starts.append(s)
        s += stride
    starts.append(duration - span)
    return [(a, a + span) for a in starts]


def window_frames(times: np.ndarray, windows: list[tuple[float, float]]) -> list[tuple[int, int]]:
    """Frame index ranges [a, b) of each window: frames with start <= time < end (the last
    window takes every frame to the end); a window that holds no frame takes the nearest one."""
    t = np.asarray(times, dtype=np.float64)
    out = []
    for k, (s, e) in enumerate(windows):
        a = int(np.searchsorted(t, s - _EPS, "left"))
        b = len(t) if k == len(windows) - 1 else int(np.searchsorted(t, e - _EPS, "left"))
        if b <= a:
            a = min(int(np.abs(t - (s + e) / 2).argmin()), len(t) - 1)
            b = a + 1
        out.append((a, b))
    return out


def merge_nms(windows: Any, scores: Any, thresh: float, top_k: int | None = None) -> np.ndarray:
    """Greedy NMS (a kept window suppresses later ones with IoU > thresh, float32 IoU), the kept
    indices best first; stops after top_k, touching only the candidates it needs."""
    s = np.asarray(scores, dtype=np.float32).reshape(-1)
    if not len(s):
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-s, kind="stable")
    w = np.asarray(windows, dtype=np.float32).reshape(-1, 2)[order]
    kept: list[int] = []
    pos = 0
    while pos < len(w) and (top_k is None or len(kept) < top_k):
        chunk = w[pos : pos + _CHUNK]
        if kept:
            bad = (temporal_iou(chunk[:, None, :], w[kept][None, :, :]) > np.float32(thresh)
                   ).any(1)
            free = np.flatnonzero(~bad)
        else:
            free = np.zeros(1, dtype=np.int64)
        if not len(free):
            pos += _CHUNK
            continue
        kept.append(pos + int(free[0]))
        pos = kept[-1] + 1
    return order[np.asarray(kept, dtype=np.int64)]


@dataclass
class VideoRanking:
    """One video's ranked moments per query, plus (with keep_maps) the plot data."""

    duration: float
    windows: list[tuple[float, float]]
    moments: list[list[Moment]]
    times: np.ndarray | None = None  # [T] frame times
    timeline: np.ndarray | None = None  # [Q, T] best score of a moment covering each frame
    grid: np.ndarray | None = None  # [Q, G, G] best score per (start bin, end bin), NaN: none
    grid_seconds: float = 0.0  # bin width
    candidates: list[int] = field(default_factory=list)  # per query, merged candidates


def grid_side(num_windows: int, num_clips: int, duration: float, span: float) -> int:
    if num_windows <= 1:
        return num_clips
    return int(min(MAX_GRID, max(num_clips, math.ceil(duration / (span / num_clips) - _EPS))))


def windows_per_batch(head: Any, limit: int = WINDOW_BATCH) -> int:
    """How many windows one head forward takes: few forwards (per-op overhead dominates small
    maps on a CPU) within BATCH_BYTES of 2D-map activations (hidden x N x N floats, ~4 alive)."""
    p = head.params
    per_window = 4 * 4 * int(getattr(p, "hidden_size", 64)) * int(p.num_clips) ** 2
    return int(max(1, min(limit, BATCH_BYTES // max(per_window, 1))))


def head_flops(head: Any, dim: int, windows: int) -> float:
    """Rough multiply-adds x 2 of one forward of MMN-like heads (proposal convs on the N x N map);
    0 for a head without convolutions (the training-free one)."""
    p = head.params
    hidden, layers = int(getattr(p, "hidden_size", 0)), int(getattr(p, "conv_layers", 0))
    k2 = int(getattr(p, "conv_kernel", 0)) ** 2
    return 2.0 * windows * int(p.num_clips) ** 2 * k2 * (dim * hidden + (layers - 1) * hidden ** 2)


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run with at most `count` intra-op threads (None: unchanged). For small tensors, thread
    hand-offs cost more than they save, dramatically so when other processes hold the cores
    (measured: a 2-window tiny MMN forward 9 ms on one thread, 330 ms on two busy cores)."""
    import torch

    old = torch.get_num_threads()
    if count is not None and count < old:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)


@dataclass
class VideoProposals:
    """A video's query-independent half: per window, the head's proposal vectors of its valid
    cells. `head` is the head as applied to this video (after `adapt`), `cells` its [C, 2]
    (i, j) valid cells (row-major), `vectors` {space: [W, C, J] float32}."""

    head: Any
    duration: float
    times: np.ndarray
    windows: list[tuple[float, float]]
    ranges: list[tuple[int, int]]
    cells: np.ndarray
    vectors: dict[str, np.ndarray]

    @property
    def num_clips(self) -> int:
        return int(self.head.params.num_clips)

    def cell_seconds(self) -> np.ndarray:
        """[W, C, 2] start/end seconds of every proposal (clipped to the video), as decoded:
        the head places its cells (`cell_windows`, head contract)."""
        out = np.zeros((len(self.windows), len(self.cells), 2), np.float64)
        for k, (s, e) in enumerate(self.windows):
            w = self.head.cell_windows(np.array([e - s]))
            out[k] = np.clip(np.asarray(w, np.float64).reshape(-1, 2) + s, 0.0, self.duration)
        return out


def video_proposals(head: Any, feats: Any, times: Any, duration: float, *, span: float | None,
                    overlap: float = 0.5, batch_windows: int | None = None) -> VideoProposals:
    """Encode one video's windows with the head's `encode_proposals` (frame features [T, D]
    torch, times [T] seconds): what `vdi retrieve` scores and `vdi index` stores."""
    import torch

    times = np.asarray(times, dtype=np.float64)
    duration = float(max(duration or 0.0, times[-1] + 1e-3 if len(times) else 0.0))
    windows = plan_windows(duration, span, overlap)
    ranges = window_frames(times, windows)
    adapt = getattr(head, "adapt", None)  # a head whose map may follow the frame count
    if adapt is not None:
        head = adapt(min(b - a for a, b in ranges))
    batch_windows = batch_windows or windows_per_batch(head)
    cells = np.argwhere(head.mask2d.cpu().numpy()).astype(np.int64)  # [C, 2] row-major
    parts: dict[str, list[np.ndarray]] = {}
    device = feats.device
    for b0 in range(0, len(windows), batch_windows):
        part = list(range(b0, min(b0 + batch_windows, len(windows))))
        longest = max(ranges[k][1] - ranges[k][0] for k in part)
        video = feats.new_zeros(len(part), longest, feats.shape[1])
        mask = torch.zeros(len(part), longest, dtype=torch.bool, device=device)
        for row, k in enumerate(part):
            a, b = ranges[k]
            video[row, : b - a] = feats[a:b]
            mask[row, : b - a] = True
        small = head_flops(head, int(feats.shape[1]), len(part)) < SMALL_FLOPS
        with torch.no_grad(), torch_threads(1 if small else None):
            props = head.encode_proposals(video, mask)
        for key, value in props.items():
            parts.setdefault(key, []).append(value.detach().float().cpu().numpy())
    vectors = {k: np.concatenate(v) for k, v in parts.items()}
    return VideoProposals(head, duration, times, windows, ranges, cells, vectors)


def rank_scores(vp: VideoProposals, scores: np.ndarray, *, top_k: int | None = 5,
                keep_maps: bool = False) -> VideoRanking:
    """Moments of one video from the fused scores [Q, W, C] of its proposals (-inf: a proposal
    left out, as `vdi search` does with those it did not retrieve): each window's cell NMS,
    shifted to video time, merged across windows by a greedy NMS that stops at top_k."""
    return rank_many([(vp, scores)], top_k=top_k, keep_maps=keep_maps)[0]


def rank_many(items: list[tuple[VideoProposals, np.ndarray]], *, top_k: int | None = 5,
              keep_maps: bool = False) -> list[VideoRanking]:
    """`rank_scores` of several videos, their windows' cell NMS in one batched call
    (`rank_batch.window_survivors`), then each video's merge on its own."""
    from vdi_cli.pipeline.rank_batch import window_survivors

    out = []
    for (vp, scores), survivors in zip(items, window_survivors(items), strict=True):
        result = VideoRanking(vp.duration, vp.windows, [])
        thresh = float(vp.head.params.nms_thresh)
        for w, s in survivors:
            w = np.clip(w, 0.0, vp.duration)
            keep = merge_nms(w, s, thresh, top_k)
            result.moments.append([Moment(float(w[i, 0]), float(w[i, 1]), float(s[i]))
                                   for i in keep])
            result.candidates.append(len(s))
        if keep_maps:
            _maps(result, vp, scores)
        out.append(result)
    return out


def _maps(result: VideoRanking, vp: VideoProposals, scores: np.ndarray) -> None:
    """The plot data: per-frame best score and the video-level 2D map."""
    windows, duration, n = vp.windows, vp.duration, vp.num_clips
    q = int(scores.shape[0])
    side = grid_side(len(windows), n, duration, windows[0][1] - windows[0][0])
    timeline = np.full((q, len(vp.times)), -np.inf, np.float32)
    grid = np.full((q, side, side), -np.inf, np.float32)
    cells = vp.cells.astype(np.float64)
    for k in range(len(windows)):
        window_scores = np.ascontiguousarray(scores[:, k, :], dtype=np.float32)
        if np.isfinite(window_scores).any():
            _paint(timeline, grid, window_scores, cells, n, windows[k], vp.times, vp.ranges[k],
                   duration, side)
    result.times = vp.times
    result.timeline = np.where(np.isfinite(timeline), timeline, np.nan)
    result.grid = np.where(np.isfinite(grid), grid, np.nan)
    result.grid_seconds = duration / side


def rank_video(
    head: Any, feats: Any, times: Any, duration: float, sent: Any, *, span: float | None,
    overlap: float = 0.5, top_k: int | None = 5, keep_maps: bool = False,
    batch_windows: int | None = None,
) -> VideoRanking:
    """Rank moments of one video for Q sentences. `feats` [T, D] torch frame features, `times`
    [T] seconds, `sent` [Q, D] sentence features (from the model's text tower). The head's two
    index calls: `encode_proposals` per window, `score_proposals` against the sentences."""
    import torch

    vp = video_proposals(head, feats, times, duration, span=span, overlap=overlap,
                         batch_windows=batch_windows)
    with torch.no_grad():
        queries = vp.head.encode_queries(sent)
    scores = vp.head.score_proposals(vp.vectors, queries)  # [Q, W, C]
    return rank_scores(vp, scores, top_k=top_k, keep_maps=keep_maps)


def _paint(timeline: np.ndarray, grid: np.ndarray, fused: np.ndarray, cells: np.ndarray, n: int,
           window: tuple[float, float], times: np.ndarray, frames: tuple[int, int],
           duration: float, side: int) -> None:
    """Fold one window's cell scores [Q, C] into the per-frame curve and the video-level map."""
    start, end = window
    width = (end - start) / n
    s = start + cells[:, 0] * width
    e = np.minimum(start + (cells[:, 1] + 1) * width, duration)
    a, b = frames
    t = times[a:b]
    cover = (s[:, None] <= t[None, :] + _EPS) & (t[None, :] < e[:, None] - _EPS)  # [C, Tw]
    if a < b:
        best = np.where(cover[None], fused[:, :, None], -np.inf).max(1)  # [Q, Tw]
        timeline[:, a:b] = np.maximum(timeline[:, a:b], best)
    i = np.clip(np.floor(s / duration * side + _EPS).astype(np.int64), 0, side - 1)
    j = np.clip(np.ceil(e / duration * side - _EPS).astype(np.int64) - 1, 0, side - 1)
    j = np.maximum(i, j)
    for qi in range(fused.shape[0]):
        np.maximum.at(grid[qi], (i, j), fused[qi])
