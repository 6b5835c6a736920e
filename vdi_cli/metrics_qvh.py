"""QVHighlights moment-retrieval metrics, as the benchmark's official evaluation scores them.

Every QVHighlights paper reports the numbers of Moment-DETR's `standalone_eval` (jayleicn/
moment_detr, `standalone_eval/eval.py` + `utils.py`); this is our own implementation of its rules,
so vdi's numbers are comparable with the papers' tables:

- R1@m: the top-1 window (the FIRST of a query's ranked windows, whatever its score) against the
  ground-truth window it overlaps most (IoU = intersection / union; a query has up to 25 windows
  in val, 530 of 1550 val queries have several). Hit when IoU >= m; m in {0.5, 0.7}.
- mAP: per query, detection average precision of its first 10 windows (re-sorted by score,
  descending, ties kept in file order) against all its ground-truth windows: a window is a true
  positive when it reaches IoU >= m with a ground-truth window not yet taken by a higher-scored
  window (it tries the ground-truth windows in decreasing IoU); precision is interpolated as in
  VOC 2011 (running max from the right, summed over recall steps). Averaged over queries at m in
  0.5:0.05:0.95; "mAP" is the mean over those ten thresholds, "mAP@0.5" and "mAP@0.75" two of them.
- short / middle / long: the same metrics on the queries having a ground-truth window of length
  in (0, 10], (10, 30] or (30, 150] seconds, each scored against its windows in that range only
  (lengths as annotated, not clipped); "full" is every query.
- Ground-truth windows are not clipped to the video and predictions are not clipped either, as
  the official code. Values are fractions here (the official code prints x100, 2 decimals).

Where we differ, and only where the official code cannot run: a query without any predicted
window is scored (R1 miss, AP 0) where the official code asserts that every query has a
prediction, or crashes (R1) / drops the query (mAP) on an empty window list; windows without a
score are ranked by their order; zero-length windows overlapping nothing get IoU 0, not NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RANGES: dict[str, tuple[float, float] | None] = {
    "full": None, "short": (0.0, 10.0), "middle": (10.0, 30.0), "long": (30.0, 150.0)}
AP_IOUS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
R1_IOUS: tuple[float, ...] = (0.5, 0.7)
MAX_WINDOWS = 10  # predicted windows per query that mAP looks at
COLUMNS: tuple[str, ...] = ("R1@0.5", "R1@0.7", "mAP@0.5", "mAP@0.75", "mAP")


def metric_names(range_name: str) -> list[str]:
    """The stored names of one range, e.g. "MR-full-R1@0.5" (the official brief keys)."""
    return [f"MR-{range_name}-{c}" for c in COLUMNS]


def cross_iou(a: Any, b: Any) -> np.ndarray:
    """IoU [N, M] of windows a [N, 2] and b [M, 2]: intersection over the true union (the
    lengths' sum minus the intersection); 0 where that union is 0."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    inter = np.clip(np.minimum(a[:, None, 1], b[None, :, 1])
                    - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC-2011 interpolated average precision of one precision/recall curve."""
    p = np.concatenate([[0.0], precision, [0.0]])
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.nonzero(r[1:] != r[:-1])[0] + 1
    return float(np.sum((r[steps] - r[steps - 1]) * p[steps]))


def detection_ap(gt: Any, windows: Sequence[Sequence[float]],
                 thresholds: Sequence[float] = AP_IOUS) -> np.ndarray:
    """AP of one query at each threshold: `windows` [(start, end, score), ...] (already cut to
    the first MAX_WINDOWS) against its ground-truth windows `gt` [M, 2]."""
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 2)
    out = np.zeros(len(thresholds))
    if not len(windows) or not len(gt):
        return out
    scores = [w[2] if len(w) > 2 else -k for k, w in enumerate(windows)]
    order = sorted(range(len(windows)), key=lambda k: -scores[k])  # stable, as list.sort
    pred = np.array([windows[k][:2] for k in order], dtype=np.float64)
    iou = cross_iou(pred, gt)  # [N, M]
    # candidates of each prediction: decreasing IoU, ties the later window first (numpy's
    # stable argsort, reversed, as the official code does)
    candidates = [sorted(range(len(gt)), key=lambda j, i=i: (iou[i, j], j), reverse=True)
                  for i in range(len(pred))]
    for t, thr in enumerate(thresholds):
        taken = np.zeros(len(gt), dtype=bool)
        tp = np.zeros(len(pred))
        for i in range(len(pred)):
            for j in candidates[i]:
                if iou[i, j] < thr:
                    break
                if not taken[j]:
                    taken[j] = True
                    tp[i] = 1
                    break
        cum = np.cumsum(tp)
        precision = cum / np.arange(1, len(pred) + 1)
        out[t] = interpolated_ap(precision, cum / len(gt))
    return out


def top1_iou(gt: Any, windows: Sequence[Sequence[float]] | None) -> float:
    """IoU of the first window with the ground-truth window it overlaps most (0: no window)."""
    if not windows:
        return 0.0
    return float(cross_iou([windows[0][:2]], gt).max(initial=0.0))


def in_range(gt: Sequence[Sequence[float]], bounds: tuple[float, float] | None
             ) -> list[list[float]]:
    """The ground-truth windows whose length is in (low, high] (all for bounds None)."""
    if bounds is None:
        return [list(w[:2]) for w in gt]
    low, high = bounds
    return [list(w[:2]) for w in gt if low < w[1] - w[0] <= high]


@dataclass
class QVHMetrics:
    """QVHighlights metrics per range; `values` are fractions in [0, 1], by `names()` order.
    A range no query falls in has no values (its count is 0)."""

    values: dict[str, float]
    counts: dict[str, int]  # queries per range
    num_queries: int
    per_query_r1: np.ndarray = field(repr=False)  # [Q] top-1 IoU against the best window

    def names(self) -> list[str]:
        return [n for r in RANGES if self.counts.get(r) for n in metric_names(r)]

    def percent(self) -> dict[str, float]:
        return {k: round(self.values[k] * 100.0, 2) for k in self.names()}

    def rows(self) -> list[list[Any]]:
        """[range, queries, R1@0.5, R1@0.7, mAP@0.5, mAP@0.75, mAP] (x100) per scored range."""
        pct = self.percent()
        return [[r, self.counts[r], *(f"{pct[n]:.2f}" for n in metric_names(r))]
                for r in RANGES if self.counts.get(r)]


def qvhighlights_metrics(
    gt_windows: Sequence[Sequence[Sequence[float]]],
    predictions: Sequence[Sequence[Sequence[float]] | None],
) -> QVHMetrics:
    """The official QVHighlights moment-retrieval metrics over Q queries.

    gt_windows: per query its ground-truth windows [[start, end], ...] (seconds, as annotated);
    predictions: per query its ranked windows [[start, end, score], ...] (None or []: a miss).
    """
    if len(gt_windows) != len(predictions):
        raise ValueError(f"{len(predictions)} prediction lists for {len(gt_windows)} queries")
    if not gt_windows:
        raise ValueError("no queries to evaluate")
    values: dict[str, float] = {}
    counts: dict[str, int] = {}
    full_r1 = np.zeros(len(gt_windows))
    for name, bounds in RANGES.items():
        r1, ap = [], []
        for q, (gt, pred) in enumerate(zip(gt_windows, predictions, strict=True)):
            kept = in_range(gt, bounds)
            if not kept:
                continue
            iou = top1_iou(kept, pred)
            if bounds is None:
                full_r1[q] = iou
            r1.append(iou)
            ap.append(detection_ap(kept, list(pred or [])[:MAX_WINDOWS]))
        counts[name] = len(r1)
        if not r1:
            continue
        hits = np.asarray(r1)
        per_thr = np.mean(ap, axis=0)
        cols = [float(np.mean(hits >= R1_IOUS[0])), float(np.mean(hits >= R1_IOUS[1])),
                float(per_thr[AP_IOUS.index(0.5)]), float(per_thr[AP_IOUS.index(0.75)]),
                float(per_thr.mean())]
        values.update(zip(metric_names(name), cols, strict=True))
    return QVHMetrics(values, counts, len(gt_windows), full_r1)
