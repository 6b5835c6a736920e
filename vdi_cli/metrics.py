"""Moment-retrieval metrics: "R@n, IoU=m" and mIoU, vectorised over queries (numpy).

Definitions (MMN's `evaluation.py`, see ../shared/reference/mmn.md section 5):

- IoU of two windows [s1, e1], [s2, e2]: inter = max(0, min(e1, e2) - max(s1, s2)),
  union = max(e1, e2) - min(s1, s2) (the hull, which is the true union whenever they overlap; when
  they do not, inter = 0 anyway). A zero union (two identical zero-length windows) gives IoU 0,
  where the reference would divide 0 by 0. Predictions are NOT clipped: a window reaching outside
  [0, duration] is scored as it is; the ground truth IS clipped to [0, duration] (MMN's loader).
- R@n, IoU=m: the fraction of queries for which ANY of the first n ranked windows has IoU >= m
  (inclusive, as MMN; 2D-TAN uses a strict >). A query with fewer than n windows is scored on
  the windows it has (the reference crashes there); a query with none is a miss.
- mIoU: the mean over queries of the IoU of the top-1 window (0 for a query without windows).
  MMN computes no mIoU; 2D-TAN's "mIoU" is the mean of the 3 largest IoUs among the NMS-ed top
  max(n) windows, a different number. VDI-era papers report the mean top-1 IoU; so do we.

Arithmetic is float32 by default, as the reference (torch float32 tensors), so IoUs that equal a
threshold exactly are decided exactly as MMN decides them; pass `dtype=np.float64` for doubles.
Values are fractions here; `RetrievalMetrics.percent()` gives the x100, two-decimal form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_RECALLS: tuple[int, ...] = (1, 5)
DEFAULT_IOUS: tuple[float, ...] = (0.3, 0.5, 0.7)
MIOU = "mIoU"


def metric_name(n: int, m: float) -> str:
    """The name of one recall metric, e.g. "R@1,IoU=0.5"."""
    return f"R@{n},IoU={m:g}"


def temporal_iou(pred: Any, gt: Any, dtype: Any = np.float32) -> np.ndarray:
    """IoU of windows `pred` [..., 2] and `gt` [..., 2] (broadcasting), in `dtype` arithmetic."""
    p = np.asarray(pred, dtype=dtype)
    g = np.asarray(gt, dtype=dtype)
    inter = np.maximum(np.minimum(p[..., 1], g[..., 1]) - np.maximum(p[..., 0], g[..., 0]), 0)
    union = np.maximum(p[..., 1], g[..., 1]) - np.minimum(p[..., 0], g[..., 0])
    positive = union > 0
    out = inter / np.where(positive, union, 1)
    return np.where(positive, out, 0).astype(dtype, copy=False)


@dataclass
class RetrievalMetrics:
    """The metrics of one evaluation. `values` are fractions in [0, 1], by `names()` order."""

    recalls: tuple[int, ...]
    ious: tuple[float, ...]
    values: dict[str, float]
    num_queries: int
    top1_iou: np.ndarray = field(repr=False)  # [Q], 0 where a query has no window

    def names(self) -> list[str]:
        return [metric_name(n, m) for n in self.recalls for m in self.ious] + [MIOU]

    def percent(self) -> dict[str, float]:
        """Values x100 with two decimals, like the papers' tables."""
        return {k: round(self.values[k] * 100.0, 2) for k in self.names()}


def pad_windows(
    windows: Sequence[Sequence[Sequence[float]]], keep: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Ragged ranked windows (per query a list of [start, end, ...]) -> ([Q, K, 2], counts [Q]).

    Only the first `keep` windows of each query are kept (R@n needs the first max(n)).
    """
    counts = np.array(
        [min(len(w), keep) if keep is not None else len(w) for w in windows], dtype=np.int64
    )
    k = int(counts.max()) if len(counts) else 0
    out = np.zeros((len(windows), max(k, 1), 2), dtype=np.float64)
    for q, (ws, c) in enumerate(zip(windows, counts, strict=True)):
        if c:
            out[q, :c] = np.asarray([w[:2] for w in ws[:c]], dtype=np.float64)
    return out, counts


def retrieval_metrics(
    windows: Any,
    counts: Any,
    gt: Any,
    durations: Any = None,
    recalls: Sequence[int] = DEFAULT_RECALLS,
    ious: Sequence[float] = DEFAULT_IOUS,
    dtype: Any = np.float32,
) -> RetrievalMetrics:
    """R@n,IoU=m for every (n, m) and mIoU over Q queries.

    windows: [Q, K, 2] ranked predicted windows (seconds), of which the first counts[q] are real
    (counts None = all K). gt: [Q, 2] ground-truth windows; clipped to [0, durations[q]] when
    `durations` [Q] is given.
    """
    w = np.asarray(windows, dtype=dtype)
    if w.ndim != 3 or w.shape[-1] != 2:
        raise ValueError(f"windows must be [Q, K, 2], got {w.shape}")
    q, k = w.shape[:2]
    if q == 0:
        raise ValueError("no queries to evaluate")
    c = np.full(q, k, dtype=np.int64) if counts is None else np.asarray(counts, dtype=np.int64)
    if k == 0:  # nobody has a window: every query is a miss
        w, k, c = np.zeros((q, 1, 2), dtype=dtype), 1, np.zeros(q, dtype=np.int64)
    g = np.array(gt, dtype=dtype).reshape(q, 2)
    if durations is not None:
        d = np.asarray(durations, dtype=dtype).reshape(q)
        g[:, 0] = np.maximum(g[:, 0], 0)
        g[:, 1] = np.minimum(g[:, 1], d)
    recalls = tuple(int(n) for n in recalls)
    ious = tuple(float(m) for m in ious)
    if any(n < 1 for n in recalls):
        raise ValueError(f"recall cut-offs must be >= 1, got {recalls}")
    iou = temporal_iou(w, g[:, None, :], dtype=dtype)  # [Q, K]
    real = np.arange(k)[None, :] < c[:, None]
    iou = np.where(real, iou, -np.inf).astype(dtype, copy=False)
    thresholds = np.asarray(ious, dtype=dtype)
    values: dict[str, float] = {}
    for n in recalls:
        best = iou[:, :n].max(axis=1)  # -inf for a query without windows
        hits = best[:, None] >= thresholds[None, :]  # [Q, len(ious)]
        for m, frac in zip(ious, hits.mean(axis=0), strict=True):
            values[metric_name(n, m)] = float(frac)
    top1 = np.where(c > 0, iou[:, 0], 0).astype(np.float64)
    values[MIOU] = float(top1.mean())
    return RetrievalMetrics(recalls, ious, values, q, top1)
