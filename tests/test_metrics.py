"""Retrieval metrics: hand-computed IoUs, R@n,IoU=m and mIoU, with the edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from vdi_cli.metrics import metric_name, pad_windows, retrieval_metrics, temporal_iou


@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [
        ([2.0, 6.0], [2.0, 6.0], 1.0),  # identical
        ([0.0, 4.0], [2.0, 6.0], 2.0 / 6.0),  # inter [2,4]=2, union [0,6]=6
        ([3.0, 4.0], [2.0, 6.0], 1.0 / 4.0),  # inside: 1 / 4
        ([6.0, 8.0], [2.0, 6.0], 0.0),  # touching at 6: inter 0
        ([7.0, 9.0], [2.0, 6.0], 0.0),  # disjoint
        ([3.0, 3.0], [2.0, 6.0], 0.0),  # zero-length prediction inside the moment
        ([3.0, 3.0], [3.0, 3.0], 0.0),  # both zero-length: union 0 -> 0 (reference: 0/0)
        ([-5.0, 5.0], [0.0, 5.0], 0.5),  # prediction before 0 is not clipped: 5 / 10
        ([0.0, 30.0], [0.0, 20.0], 2.0 / 3.0),  # prediction past the end: 20 / 30
    ],
)
def test_temporal_iou_by_hand(pred, gt, expected):
    assert temporal_iou(pred, gt).dtype == np.float32
    assert temporal_iou(pred, gt) == pytest.approx(expected, abs=1e-7)
    assert temporal_iou(gt, pred) == pytest.approx(expected, abs=1e-7)  # symmetric
    assert temporal_iou(pred, gt, dtype=np.float64) == pytest.approx(expected, abs=1e-15)


def test_temporal_iou_broadcasts():
    preds = np.array([[[0.0, 4.0], [2.0, 6.0]], [[7.0, 9.0], [3.0, 4.0]]])  # [2, 2, 2]
    gt = np.array([[2.0, 6.0], [2.0, 6.0]])[:, None, :]
    np.testing.assert_allclose(temporal_iou(preds, gt), [[1 / 3, 1.0], [0.0, 0.25]], atol=1e-7)


def _gt():
    return np.array([[2.0, 6.0], [10.0, 20.0], [0.0, 5.0]])


def test_recall_and_miou_by_hand():
    windows = np.array(
        [
            # q0: top1 exact (1.0)
            [[2, 6], [0, 1], [0, 1], [0, 1], [0, 1], [2, 6]],
            # q1: top1 IoU 5/15=0.333, rank 2: [12, 20] -> 0.8, rank 6 (beyond 5): exact
            [[5, 15], [12, 20], [0, 1], [0, 1], [0, 1], [10, 20]],
            # q2: top1 IoU 3/5 = 0.6; nothing better in the top 5
            [[2, 5], [0, 1], [0, 1], [0, 1], [0, 1], [0, 5]],
        ],
        dtype=float,
    )
    m = retrieval_metrics(windows, None, _gt())
    v = m.values
    assert v[metric_name(1, 0.3)] == pytest.approx(3 / 3)  # 1.0, 0.333, 0.6 all >= 0.3
    assert v[metric_name(1, 0.5)] == pytest.approx(2 / 3)  # 1.0 and 0.6
    assert v[metric_name(1, 0.7)] == pytest.approx(1 / 3)
    assert v[metric_name(5, 0.7)] == pytest.approx(2 / 3)  # q1 via 0.8 at rank 2; not rank 6
    assert v["mIoU"] == pytest.approx((1.0 + 1 / 3 + 0.6) / 3, abs=1e-7)
    assert m.percent() == {
        "R@1,IoU=0.3": 100.0, "R@1,IoU=0.5": 66.67, "R@1,IoU=0.7": 33.33,
        "R@5,IoU=0.3": 100.0, "R@5,IoU=0.5": 100.0, "R@5,IoU=0.7": 66.67, "mIoU": 64.44,
    }
    assert m.names()[-1] == "mIoU" and m.names()[0] == "R@1,IoU=0.3"


def test_threshold_is_inclusive():
    # IoU exactly 0.5 and exactly 0.7 count as hits at 0.5 and 0.7 (MMN uses >=)
    windows = np.array([[[0.0, 2.0]], [[0.0, 7.0]]])
    gt = np.array([[0.0, 4.0], [0.0, 10.0]])
    m = retrieval_metrics(windows, None, gt, recalls=(1,), ious=(0.5, 0.7))
    assert m.values["R@1,IoU=0.5"] == 1.0
    assert m.values["R@1,IoU=0.7"] == 0.5


def test_fewer_windows_than_n_and_none_at_all():
    windows = np.zeros((3, 5, 2))
    windows[0, 0] = [9, 10]  # q0 has one (wrong) window
    windows[0, 1] = [2, 6]  # padding beyond the count: must be ignored
    windows[1, :2] = [[9, 10], [2, 6]]  # q1 has two, the second is exact
    counts = np.array([1, 2, 0])  # q2 has none: a miss, IoU 0 in mIoU
    gt = np.array([[2.0, 6.0], [2.0, 6.0], [2.0, 6.0]])
    m = retrieval_metrics(windows, counts, gt, recalls=(1, 5), ious=(0.5,))
    assert m.values["R@1,IoU=0.5"] == 0.0
    assert m.values["R@5,IoU=0.5"] == pytest.approx(1 / 3)
    assert m.values["mIoU"] == 0.0
    np.testing.assert_array_equal(m.top1_iou, [0.0, 0.0, 0.0])


def test_ties_in_ranking_are_taken_as_given():
    # two windows with equal scores: the file order is the ranking; R@1 sees only the first
    padded, counts = pad_windows([[[0, 1, 0.5], [2, 6, 0.5]]])
    m = retrieval_metrics(padded, counts, np.array([[2.0, 6.0]]), recalls=(1, 5), ious=(0.5,))
    assert (m.values["R@1,IoU=0.5"], m.values["R@5,IoU=0.5"]) == (0.0, 1.0)


def test_ground_truth_is_clipped_to_duration():
    windows = np.array([[[10.0, 20.0]]])
    gt = np.array([[10.0, 25.0]])  # ends after the 20 s video
    clipped = retrieval_metrics(windows, None, gt, durations=[20.0], recalls=(1,), ious=(0.7,))
    raw = retrieval_metrics(windows, None, gt, recalls=(1,), ious=(0.7,))
    assert clipped.values["mIoU"] == pytest.approx(1.0)
    assert raw.values["mIoU"] == pytest.approx(10 / 15)
    neg = retrieval_metrics(np.array([[[0.0, 4.0]]]), None, np.array([[-4.0, 4.0]]),
                            durations=[30.0], recalls=(1,), ious=(0.5,))
    assert neg.values["mIoU"] == pytest.approx(1.0)


def test_pad_windows_keeps_the_first_k():
    padded, counts = pad_windows([[[1, 2, 0.9], [3, 4, 0.8], [5, 6, 0.7]], [], [[0, 1]]], keep=2)
    assert padded.shape == (3, 2, 2)
    np.testing.assert_array_equal(counts, [2, 0, 1])
    np.testing.assert_array_equal(padded[0], [[1, 2], [3, 4]])


def test_no_windows_anywhere_and_no_queries():
    m = retrieval_metrics(np.zeros((2, 0, 2)), None, _gt()[:2], recalls=(1,), ious=(0.1,))
    assert m.values == {"R@1,IoU=0.1": 0.0, "mIoU": 0.0}
    with pytest.raises(ValueError):
        retrieval_metrics(np.zeros((0, 1, 2)), None, np.zeros((0, 2)))
