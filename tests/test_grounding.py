"""2D-map candidates, score fusion and greedy NMS (vdi_plugins.heads.cells, formerly
vdi_cli.grounding, which still re-exports it with a DeprecationWarning)."""

from __future__ import annotations

import numpy as np
import pytest

from vdi_plugins.heads.cells import (
    CellNMS,
    cell_mask,
    cell_windows,
    decode_cells,
    fuse_scores,
    nms,
    valid_cells,
)


def test_valid_cell_counts_of_the_presets():
    assert cell_mask(16, [15]).sum() == 136  # Charades: the whole upper triangle
    assert cell_mask(64, [15, 8, 8]).sum() == 1104  # ActivityNet
    assert cell_mask(128, [15, 8, 8, 8]).sum() == 2548  # TACoS
    # N=64 by hand: offsets 0..15 stride 1 (64+63+...+49 = 904), 17..31 step 2 at even starts
    # (ceil((64-o)/2) = 24+23+...+17 = 164), 35..63 step 4 at multiples of 4 (8+7+...+1 = 36)
    assert 904 + 164 + 36 == 1104


def test_sparse_mask_by_hand():
    # N=8, counts [2, 2]: offsets 0, 1, 2 (stride 1), then 4, 6 (stride 2, even starts)
    m = cell_mask(8, [2, 2])
    expected = {(i, i + o) for o in (0, 1, 2) for i in range(8 - o)}
    expected |= {(i, i + 4) for i in (0, 2)} | {(0, 6)}
    assert {tuple(c) for c in np.argwhere(m)} == expected
    cells = valid_cells(8, [2, 2])
    assert [tuple(c) for c in cells[:4]] == [(0, 0), (0, 1), (0, 2), (0, 4)]  # row-major


def test_cell_windows_are_seconds_of_i_to_j_plus_one():
    cells = np.array([[0, 0], [2, 5], [15, 15]])
    np.testing.assert_allclose(cell_windows(cells, 16, 32.0), [[0, 2], [4, 12], [30, 32]])
    per_query = cell_windows(cells, 16, np.array([32.0, 16.0]))
    assert per_query.shape == (2, 3, 2) and per_query.dtype == np.float32
    np.testing.assert_allclose(per_query[1], [[0, 1], [2, 6], [15, 16]])


def test_fuse_scores_by_hand():
    # (0.5 c + 0.5)^0.5 * iou: c = 0.5 -> sqrt(0.75) * 0.8; c = -1 -> 0; c = 1 -> iou
    out = fuse_scores([0.5, -1.0, 1.0, -1.0000001], [0.8, 0.9, 0.3, 0.5], 0.5)
    np.testing.assert_allclose(out, [0.75**0.5 * 0.8, 0.0, 0.3, 0.0], rtol=1e-6)


HAND = np.array([[0, 10], [1, 10], [5, 15], [10, 20], [0, 5], [12, 20]], dtype=float)
HAND_SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.95])


def test_nms_on_a_hand_made_list():
    # F [12,20] kept; it suppresses D [10,20] (IoU 0.8). A [0,10] kept; it suppresses
    # B [1,10] (0.9) but not E [0,5] (IoU exactly 0.5: the rule is strictly >). C [5,15] kept
    # (IoU 1/3 with A, 0.2 with F), E kept.
    assert nms(HAND, HAND_SCORES, 0.5).tolist() == [5, 0, 2, 4]
    assert nms(HAND, HAND_SCORES, 0.5, top_k=2).tolist() == [5, 0]
    assert nms(HAND, HAND_SCORES, 0.49).tolist() == [5, 0, 2]  # now A suppresses E
    assert nms(HAND, HAND_SCORES, 1.0).tolist() == [5, 0, 1, 2, 3, 4]  # nothing suppressed
    assert nms(np.zeros((0, 2)), np.zeros(0), 0.5).tolist() == []


def test_nms_ties_keep_input_order():
    windows = np.array([[0, 1], [5, 6], [0, 1]], dtype=float)
    assert nms(windows, [0.5, 0.5, 0.5], 0.5).tolist() == [0, 1]


def test_cell_nms_matches_generic_nms_and_top_k_is_a_prefix():
    rng = np.random.default_rng(0)
    cells = valid_cells(16, [15])
    scores = rng.random((30, len(cells))).astype(np.float32)
    durations = rng.uniform(10, 60, 30).round(2)
    full = CellNMS(cells, 16, 0.5)(scores, durations)
    top5 = CellNMS(cells, 16, 0.5)(scores, durations, top_k=5, chunk=7)
    for q in range(30):
        expected = nms(cell_windows(cells, 16, durations[q]), scores[q], 0.5)
        assert full[q][full[q] >= 0].tolist() == expected.tolist()
        assert top5[q].tolist() == expected[:5].tolist()


def test_threshold_ties_are_decided_in_float32_like_the_reference():
    # cells (1,1) and (1,2) of N=16 have IoU exactly 1/2 on the grid; in float32 seconds
    # ((j+1) * d / 16) the reference sees it above 0.5 for some durations and suppresses.
    cells = valid_cells(16, [15])
    a = int(np.flatnonzero((cells == [1, 1]).all(1))[0])
    b = int(np.flatnonzero((cells == [1, 2]).all(1))[0])
    scores = np.zeros((1, len(cells)), np.float32)
    scores[0, a], scores[0, b] = 1.0, 0.9

    def iou32(d):
        w = cell_windows(cells[[a, b]], 16, d)
        inter = np.minimum(w[0, 1], w[1, 1]) - np.maximum(w[0, 0], w[1, 0])
        return inter / (np.maximum(w[0, 1], w[1, 1]) - np.minimum(w[0, 0], w[1, 0]))

    above = next(d for d in np.arange(1000, 4000) / 100 if iou32(d) > np.float32(0.5))
    for d, suppressed in ((above, True), (16.0, False)):  # 16 s: exact integers, IoU 0.5
        kept = decode_cells(scores, [d], 16, [15], 0.5, top_k=2).cells[0].tolist()
        assert (b not in kept) is suppressed, d


def test_decode_cells_returns_seconds_scores_and_counts():
    cells = valid_cells(4, [3])  # 10 cells
    scores = np.zeros((2, len(cells)), np.float32)
    first = int(np.flatnonzero((cells == [0, 3]).all(1))[0])  # the whole video
    scores[0, first] = 0.9
    scores[1] = np.linspace(0.1, 1.0, len(cells))  # best: the last cell (3, 3)
    out = decode_cells(scores, [8.0, 4.0], 4, [3], 0.5)
    assert out.windows[0, 0].tolist() == [0.0, 8.0] and out.scores[0, 0] == pytest.approx(0.9)
    assert out.windows[1, 0].tolist() == [3.0, 4.0] and out.scores[1, 0] == pytest.approx(1.0)
    # q0: [0, 8] suppresses the 3-clip cells (IoU 3/4 > 0.5); the zero-score rest stay in
    # row-major order, pairs at IoU exactly 0.5 (e.g. (0,0) and (0,1)) are not suppressed
    assert [tuple(cells[c]) for c in out.cells[0, : out.counts[0]]] == [
        (0, 3), (0, 0), (0, 1), (1, 1), (1, 2), (2, 2), (2, 3), (3, 3)]
    moments = out.to_moments()
    assert len(moments[0]) == out.counts[0]
    assert [m.score for m in moments[1]] == sorted((m.score for m in moments[1]), reverse=True)


def test_cell_nms_equals_a_port_of_the_reference_loop():
    torch = pytest.importorskip("torch")

    def reference(score2d, num_clips, duration, thresh):  # MMN evaluation.py / utils.py
        grids = score2d.nonzero()
        scores = score2d[grids[:, 0], grids[:, 1]]
        grids[:, 1] += 1
        moments = grids * duration / num_clips
        scores, ranks = scores.sort(descending=True, stable=True)
        moments = moments[ranks]
        suppressed = torch.zeros(len(ranks), dtype=torch.bool)
        for i in range(len(ranks) - 1):
            if suppressed[i]:
                continue
            s, e = moments[i][0].float(), moments[i][1].float()
            c = moments[i + 1:]
            inter = c[:, 1].min(e) - c[:, 0].max(s)
            union = c[:, 1].max(e) - c[:, 0].min(s)
            suppressed[i + 1:][(inter.clamp(min=0) / union) > thresh] = True
        return moments[~suppressed]

    rng = np.random.default_rng(1)
    for n, counts in ((16, [15]), (32, [7, 4])):
        mask = cell_mask(n, counts)
        scores = (rng.random((12, int(mask.sum()))) + 0.01).astype(np.float32)
        durations = rng.uniform(8, 150, 12).round(2)
        out = decode_cells(scores, durations, n, counts, 0.5)
        for q in range(12):
            score2d = torch.zeros(n, n)
            score2d[torch.from_numpy(mask)] = torch.from_numpy(scores[q])
            ref = reference(score2d, n, float(durations[q]), 0.5).numpy()
            np.testing.assert_array_equal(out.windows[q, : out.counts[q]], ref)


def test_vdi_cli_grounding_still_imports_with_a_deprecation_warning():
    import vdi_cli.grounding as old
    from vdi_plugins.heads import cells

    with pytest.warns(DeprecationWarning, match="moved to vdi_plugins.heads.cells.decode_cells"):
        assert old.decode_cells is cells.decode_cells
    with pytest.raises(AttributeError):
        old.not_there  # noqa: B018
