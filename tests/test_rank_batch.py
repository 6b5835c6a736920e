"""The batched cell NMS of `rank_many` / `rank_scores` (one `decode_cells` call over every live
window of every video) gives exactly what decoding window by window gave, ties and left-out
(-inf) proposals included, also when videos with different maps share one call."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from vdi_cli.pipeline.retrieve_windows import (  # noqa: E402
    VideoProposals,
    merge_nms,
    plan_windows,
    rank_many,
    rank_scores,
    window_frames,
)
from vdi_cli.types import Moment  # noqa: E402
from vdi_plugins.heads.cells import decode_cells  # noqa: E402


def _per_window(vp, scores, top_k):
    """The reference: each window decoded on its own, shifted, concatenated, merged."""
    p = vp.head.params
    out = []
    for qi in range(scores.shape[0]):
        ws, ss = [], []
        for k, (start, end) in enumerate(vp.windows):
            row = scores[qi : qi + 1, k]
            if not np.isfinite(row).any():
                continue
            r = decode_cells(row, [end - start], vp.num_clips, p.pooling_counts, p.nms_thresh)
            c = int(r.counts[0])
            keep = np.isfinite(r.scores[0, :c])
            ws.append(r.windows[0, :c][keep].astype(np.float64) + start)
            ss.append(r.scores[0, :c][keep])
        w = np.clip(np.concatenate(ws), 0, vp.duration) if ws else np.zeros((0, 2))
        s = np.concatenate(ss) if ss else np.zeros(0, np.float32)
        out.append([Moment(float(w[i, 0]), float(w[i, 1]), float(s[i]))
                    for i in merge_nms(w, s, p.nms_thresh, top_k)])
    return out


def _video(head, duration, rng, queries, left_out):
    windows = plan_windows(duration, 30.0, 0.5)
    times = np.arange(0.0, duration, 1.0)
    cells = np.argwhere(head.mask2d.numpy()).astype(np.int64)
    vp = VideoProposals(head, duration, times, windows, window_frames(times, windows), cells, {})
    scores = np.round(rng.random((queries, len(windows), len(cells))), 2).astype(np.float32)
    scores[rng.random(scores.shape) < left_out] = -np.inf  # ties and holes
    return vp, scores


def test_batched_ranking_equals_window_by_window():
    from vdi_plugins.heads.mmn_model import build_mmn
    from vdi_plugins.heads.similarity import build_similarity

    mmn = build_mmn({"preset": "charades", "hidden_size": 8, "joint_size": 8, "conv_layers": 1},
                    video_dim=8, text_dim=8)
    free = build_similarity({"num_clips": 8})  # another map (8 clips) in the same call
    rng = np.random.default_rng(0)
    items = [_video(mmn, 95.0, rng, 2, 0.9), _video(free, 61.0, rng, 2, 0.5),
             _video(mmn, 20.0, rng, 2, 0.0), _video(mmn, 300.0, rng, 2, 1.0),
             _video(mmn, 47.5, rng, 2, 0.99)]
    for top_k in (None, 3):
        batched = rank_many(items, top_k=top_k)
        for (vp, scores), got in zip(items, batched, strict=True):
            assert got.moments == _per_window(vp, scores, top_k)
            assert got.moments == rank_scores(vp, scores, top_k=top_k).moments
    assert batched[3].moments == [[], []]  # nothing retrieved in that video
    assert sum(map(len, batched[0].moments)) > 0


def test_cell_nms_never_keeps_a_left_out_cell():
    # 3 clips, every cell valid: (0,0) (0,1) (0,2) (1,1) (1,2) (2,2); only two are candidates
    scores = np.full((1, 6), -np.inf, np.float32)
    scores[0, 3], scores[0, 5] = 0.9, 0.4  # (1, 1) and (2, 2): disjoint, both kept
    r = decode_cells(scores, [3.0], 3, [2], 0.5)
    assert r.counts.tolist() == [2] and r.cells[0, :2].tolist() == [3, 5]
    assert r.windows[0, :2].tolist() == [[1.0, 2.0], [2.0, 3.0]]
