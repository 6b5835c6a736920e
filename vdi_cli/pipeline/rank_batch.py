"""Cell NMS over many windows of many videos in one call: the per-window decoding of
`rank_scores`, batched.

A head decodes its own cells (`head.decode_cells`, head contract; the built-ins' is
`vdi_plugins.heads.cells.decode_cells`), vectorised over rows (a row is one query on one window)
but looping over the cells it keeps (up to 136 steps of a few numpy calls for the Charades map),
so calling it once per window costs ~11 ms a window whatever the row count: most of a library
search, whose candidates touch hundreds of windows. Here every live row (a query with at least
one finite score in a window) of every video whose head shares a class and map (clips, pooling,
NMS threshold) goes into one call; a row stops at its last finite cell (-inf marks a proposal
left out), and the survivors come back per video and query in window order, exactly as the
per-window loop produced them, so the merge that follows (and its tie order) is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Survivors = list[tuple[np.ndarray, np.ndarray]]  # per query: (windows [n, 2] s, scores [n])


def window_survivors(items: Sequence[tuple[Any, np.ndarray]]) -> list[Survivors]:
    """For each (VideoProposals, fused scores [Q, W, C]) item: per query, the cell-NMS
    survivors of every window (video seconds, float64, not yet clipped to the video; float32
    scores), windows in order, each window's survivors in its NMS order."""
    groups: dict[tuple[Any, ...], list[tuple[int, np.ndarray, np.ndarray]]] = {}
    for i, (vp, scores) in enumerate(items):
        live = np.isfinite(scores).any(2)  # [Q, W]
        qi, k = np.nonzero(live)  # query-major, windows ascending
        p = vp.head.params
        key = (type(vp.head), int(vp.num_clips), tuple(int(c) for c in p.pooling_counts),
               float(p.nms_thresh))
        groups.setdefault(key, []).append((i, qi, k))
    out: list[Survivors] = [[] for _ in items]
    for members in groups.values():
        head = items[members[0][0]][0].head  # every head of a group decodes alike
        rows = np.concatenate([np.asarray(items[i][1][qi, k], dtype=np.float32)
                               for i, qi, k in members])
        spans = np.concatenate([_window_array(items[i][0])[k] for i, _, k in members])
        if not len(rows):
            continue
        ranked = head.decode_cells(rows, spans[:, 1] - spans[:, 0], None)
        width = ranked.scores.shape[1]
        valid = (np.arange(width)[None, :] < ranked.counts[:, None]) & np.isfinite(ranked.scores)
        seconds = ranked.windows.astype(np.float64) + spans[:, None, :1]
        row = 0
        for i, qi, _k in members:
            q = int(items[i][1].shape[0])
            per_query: Survivors = []
            first = row + np.searchsorted(qi, np.arange(q + 1))  # rows of each query
            for a, b in zip(first[:-1], first[1:], strict=True):
                keep = valid[a:b]
                per_query.append((seconds[a:b][keep], ranked.scores[a:b][keep]))
            out[i] = per_query
            row += len(qi)
    for i, (_, scores) in enumerate(items):
        if not out[i]:
            out[i] = [(np.zeros((0, 2)), np.zeros(0, np.float32))
                      for _ in range(int(scores.shape[0]))]
    return out


def _window_array(vp: Any) -> np.ndarray:
    return np.asarray(vp.windows, dtype=np.float64).reshape(-1, 2)
