"""From a 2D score map to ranked moments: MMN's fusion, candidates, greedy NMS (numpy, no torch).

MMN's 2D map belongs to the heads that use it (`mmn`, `clip-similarity`), so it lives here, with
them; the core reaches it only through the head contract (`decode_cells`, `cell_windows`:
`CellMapHead` gives a head both from its `params`). `vdi_cli.grounding` re-exports this module
for one release.

The algorithm (MMN `evaluation.py` / `utils.py`, ../shared/reference/mmn.md section 5):

1. fused = (0.5 * contrastive + 0.5) ** score_pow * iou_score, per valid cell (i, j);
2. every valid cell is a candidate [i, j + 1] * duration / N seconds;
3. greedy NMS: candidates sorted by score (descending); each kept candidate suppresses every
   lower-ranked one whose IoU with it is strictly > nms_thresh; survivors stay in score order,
   no cap (our `top_k` only stops early: the first k survivors do not depend on later ones).

Exactness. The reference computes the candidate windows and their IoUs in float32 seconds. On the
grid many pairs have an IoU of exactly the threshold (cells (i, i) and (i, i + 1): 0.5), and
float32 rounding of `j * duration / N` pushes a duration-dependent share of them above it (on
Charades-STA test durations about 176 of the 816 such pairs per video, N = 16), which changes
which moments survive. `CellNMS` therefore decides every pair exactly on the integer grid (IoU is
scale-free) except the pairs within 1e-4 of the threshold, which it decides per query in float32
with the reference's operation order. Candidate windows are float32 for the same reason.

Ties in score keep the cells' row-major order (a stable sort; the reference's torch sort makes no
promise). The reference's candidates are the non-zero cells of the fused map; we take the valid
cells, which differ only when a fused score is exactly 0 (a cosine of exactly -1). Negative
`0.5 * c + 0.5` (a cosine rounded below -1) is clamped to 0 instead of giving NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from vdi_cli.metrics import temporal_iou
from vdi_cli.types import Moment

_DEFER = 1e-4  # pairs whose exact IoU is this close to the threshold are decided in float32


def cell_mask(num_clips: int, pooling_counts: Sequence[int]) -> np.ndarray:
    """MMN's sparse 2D-map mask [N, N]: the diagonal plus, per pooling group, diagonals at
    offsets growing by the group's stride (1, 2, 4, ...), started at multiples of the stride."""
    n = int(num_clips)
    mask = np.zeros((n, n), dtype=bool)
    mask[np.arange(n), np.arange(n)] = True
    stride, offset = 1, 0
    for count in pooling_counts:
        for _ in range(int(count)):
            offset += stride
            i = np.arange(0, n - offset, stride)
            mask[i, i + offset] = True
        stride *= 2
    return mask


def valid_cells(num_clips: int, pooling_counts: Sequence[int]) -> np.ndarray:
    """The valid cells (i, j) as [C, 2] int64, in row-major order (MMN's `nonzero()` order)."""
    return np.argwhere(cell_mask(num_clips, pooling_counts)).astype(np.int64)


def cell_windows(cells: Any, num_clips: int, durations: Any) -> np.ndarray:
    """Seconds of cells (i, j): [i, j + 1] * duration / N in float32, the reference's order.

    `cells` [C, 2] with `durations` a scalar -> [C, 2]; with a [Q] array -> [Q, C, 2].
    `cells` [Q, K, 2] (one row per query) with durations [Q] -> [Q, K, 2].
    """
    grid = np.asarray(cells, dtype=np.int64).copy()
    grid[..., 1] += 1
    g = grid.astype(np.float32)
    d = np.asarray(durations, dtype=np.float32)
    if d.ndim:
        g = g[None] if g.ndim == 2 else g
        return (g * d.reshape(-1, 1, 1)) / np.float32(num_clips)
    return (g * d) / np.float32(num_clips)


def fuse_scores(contrastive: Any, iou: Any, score_pow: float) -> np.ndarray:
    """MMN's test-time score: (0.5 * contrastive + 0.5) ** score_pow * iou (float32)."""
    c = np.asarray(contrastive, dtype=np.float32)
    base = np.maximum(c * np.float32(0.5) + np.float32(0.5), np.float32(0))
    return (np.power(base, np.float32(score_pow)) * np.asarray(iou, dtype=np.float32)).astype(
        np.float32, copy=False
    )


def nms(windows: Any, scores: Any, thresh: float, top_k: int | None = None) -> np.ndarray:
    """Greedy NMS over one list of windows [C, 2]: the kept indices, best first.

    A kept window suppresses every lower-ranked one with IoU strictly > `thresh` (float32 IoU).
    The IoU matrix is computed at once; the loop runs over kept windows only.
    """
    s = np.asarray(scores, dtype=np.float32).reshape(-1)
    c = s.shape[0]
    if c == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-s, kind="stable")
    w = np.asarray(windows, dtype=np.float32).reshape(c, 2)[order]
    over = temporal_iou(w[:, None, :], w[None, :, :]) > np.float32(thresh)
    alive = np.ones(c, dtype=bool)
    keep: list[int] = []
    i = 0
    while True:
        keep.append(i)
        if top_k is not None and len(keep) >= top_k:
            break
        alive &= ~over[i]
        alive[: i + 1] = False
        if not alive.any():
            break
        i = int(alive.argmax())
    return order[np.asarray(keep, dtype=np.int64)]


class CellNMS:
    """Greedy NMS on the valid cells of a 2D map, vectorised over queries.

    Built once per (cells, N, threshold): the exact suppression matrix on the integer grid, plus
    for every cell the partners whose IoU is within 1e-4 of the threshold (decided per query in
    float32, see the module docstring). Each step picks, for all queries at once, the best
    still-alive candidate and applies its suppression row.
    """

    def __init__(self, cells: Any, num_clips: int, thresh: float) -> None:
        self.cells = np.asarray(cells, dtype=np.int64).reshape(-1, 2)
        self.num_clips = int(num_clips)
        self.thresh = float(thresh)
        s = self.cells[:, 0].astype(np.float64)
        e = self.cells[:, 1].astype(np.float64) + 1
        inter = np.maximum(np.minimum(e[:, None], e) - np.maximum(s[:, None], s), 0)
        union = np.maximum(e[:, None], e) - np.minimum(s[:, None], s)
        iou = inter / union
        defer = np.abs(iou - self.thresh) <= _DEFER
        self.suppress = (iou > self.thresh) & ~defer  # [C, C]
        width = int(defer.sum(1).max()) if len(defer) else 0
        self.defer_cols = np.full((len(self.cells), max(width, 1)), -1, dtype=np.int64)
        for a in np.flatnonzero(defer.any(1)):
            cols = np.flatnonzero(defer[a])
            self.defer_cols[a, : len(cols)] = cols
        self._windows = self.cells.astype(np.float32)
        self._windows[:, 1] += 1

    def __call__(
        self, scores: Any, durations: Any, top_k: int | None = None, chunk: int = 2048
    ) -> np.ndarray:
        """Kept cell indices [Q, K] in score order, -1 past a query's last survivor. A score of
        -inf marks a cell that is not a candidate (`vdi search` leaves out the proposals it did
        not retrieve): it is never kept, so a query stops at its last finite cell."""
        sc = np.asarray(scores, dtype=np.float32)
        q, c = sc.shape
        if c != len(self.cells):
            raise ValueError(f"scores have {c} cells, the map has {len(self.cells)}")
        d = np.asarray(durations, dtype=np.float32).reshape(q)
        parts = [
            self._chunk(sc[a : a + chunk], d[a : a + chunk], top_k) for a in range(0, q, chunk)
        ]
        k = max((p.shape[1] for p in parts), default=0)
        out = np.full((q, k), -1, dtype=np.int64)
        row = 0
        for p in parts:
            out[row : row + len(p), : p.shape[1]] = p
            row += len(p)
        return out

    def _chunk(self, scores: np.ndarray, d: np.ndarray, top_k: int | None) -> np.ndarray:
        q, c = scores.shape
        order = np.argsort(-scores, axis=1, kind="stable")
        alive = np.ones((q, c), dtype=bool)
        slots = c if top_k is None else min(int(top_k), c)
        out = np.full((q, slots), -1, dtype=np.int64)
        active = np.arange(q)
        n_clips = np.float32(self.num_clips)
        thresh = np.float32(self.thresh)
        used = 0
        for k in range(slots):
            ranked = np.take_along_axis(alive[active], order[active], axis=1)
            first = ranked.argmax(axis=1)
            has = ranked[np.arange(len(active)), first]
            chosen = order[active, first]
            has &= scores[active, chosen] != -np.inf  # a cell left out (`vdi search`)
            active, chosen = active[has], chosen[has]
            if not len(active):
                break
            out[active, k] = chosen
            used = k + 1
            alive[active] &= ~self.suppress[chosen]
            alive[active, chosen] = False
            cols = self.defer_cols[chosen]  # [A, m] partners decided in float32
            real = cols >= 0
            if real.any():
                dd = d[active][:, None]
                kept = (self._windows[chosen][:, None, :] * dd[..., None]) / n_clips
                other = (self._windows[np.maximum(cols, 0)] * dd[..., None]) / n_clips
                flip = real & (temporal_iou(other, kept) > thresh)
                rows = np.broadcast_to(active[:, None], cols.shape)
                alive[rows[flip], cols[flip]] = False
        return out[:, :used]


@lru_cache(maxsize=16)
def cell_nms(num_clips: int, pooling_counts: tuple[int, ...], thresh: float) -> CellNMS:
    """A cached `CellNMS` for MMN's map of side `num_clips` with `pooling_counts`."""
    return CellNMS(valid_cells(num_clips, pooling_counts), num_clips, thresh)


@dataclass
class RankedMoments:
    """Ranked windows of Q queries: the first counts[q] rows of windows[q] / scores[q] are real."""

    windows: np.ndarray  # [Q, K, 2] float32 seconds
    scores: np.ndarray  # [Q, K] float32
    counts: np.ndarray  # [Q] int64
    cells: np.ndarray  # [Q, K] int64 cell index (-1 past the end)

    def to_moments(self) -> list[list[Moment]]:
        return [
            [
                Moment(float(self.windows[q, k, 0]), float(self.windows[q, k, 1]),
                       float(self.scores[q, k]))
                for k in range(int(self.counts[q]))
            ]
            for q in range(len(self.counts))
        ]


def decode_cells(
    scores: Any,
    durations: Any,
    num_clips: int,
    pooling_counts: Sequence[int],
    nms_thresh: float,
    top_k: int | None = None,
) -> RankedMoments:
    """Fused scores on the valid cells [Q, C] (row-major, see `valid_cells`) -> ranked moments."""
    nms_ = cell_nms(int(num_clips), tuple(int(c) for c in pooling_counts), float(nms_thresh))
    sc = np.asarray(scores, dtype=np.float32)
    kept = nms_(sc, durations, top_k=top_k)  # [Q, K]
    real = kept >= 0
    safe = np.maximum(kept, 0)
    windows = cell_windows(nms_.cells[safe], num_clips, np.asarray(durations).reshape(-1))
    windows = np.where(real[..., None], windows, 0).astype(np.float32)
    win = np.take_along_axis(sc, safe, axis=1) if sc.size else np.zeros(kept.shape, np.float32)
    return RankedMoments(
        windows=windows,
        scores=np.where(real, win, 0).astype(np.float32),
        counts=real.sum(axis=1).astype(np.int64),
        cells=kept,
    )


class CellMapHead:
    """The head-contract members of a head on MMN's sparse 2D map (`params.num_clips`,
    `params.pooling_counts`, `params.nms_thresh`): the core decodes a window's cells and
    places them in time through these, never through this module."""

    params: Any

    def decode_cells(self, scores: Any, durations: Any, top_k: int | None = None
                     ) -> RankedMoments:
        """Fused scores [R, C] on the valid cells (row-major; -inf: not a candidate) of windows
        of `durations` [R] seconds -> ranked moments after the head's cell NMS."""
        p = self.params
        return decode_cells(scores, durations, p.num_clips, p.pooling_counts, p.nms_thresh,
                            top_k)

    def cell_windows(self, durations: Any) -> np.ndarray:
        """[W, C, 2] float32 seconds of every valid cell in windows of `durations` [W]."""
        p = self.params
        cells = valid_cells(p.num_clips, p.pooling_counts)
        return cell_windows(cells, p.num_clips, np.asarray(durations, dtype=np.float64)
                            .reshape(-1))

