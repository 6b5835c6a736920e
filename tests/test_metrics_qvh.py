"""QVHighlights metrics (vdi_cli.metrics_qvh) against their definition.

Two checks: hand-computed cases, and an independent re-implementation of the official
evaluation's algorithm (Moment-DETR `standalone_eval`: per-query lists of dicts, a lock array per
threshold, argsort over IoUs, VOC interpolation, 2-decimal rounding), written from its rules in
the loop-by-loop style of the original rather than vdi's, run on the real val file with
predictions files made from its answers: every number agrees to 0.01.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vdi_cli.metrics_qvh import AP_IOUS, detection_ap, interpolated_ap, qvhighlights_metrics

VAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "qvhighlights" / \
    "highlight_val_release.jsonl"


def test_r1_matches_the_best_ground_truth_window_not_the_first() -> None:
    gt = [[[0, 10], [20, 30]]]
    m = qvhighlights_metrics(gt, [[[20, 30, 0.9]]])
    assert m.values["MR-full-R1@0.5"] == 1.0 and m.values["MR-full-R1@0.7"] == 1.0
    # R1 is the FIRST window, whatever its score: a better later window does not count
    m = qvhighlights_metrics(gt, [[[40, 50, 0.1], [20, 30, 0.9]]])
    assert m.values["MR-full-R1@0.5"] == 0.0
    assert m.values["MR-full-mAP@0.5"] == 0.5  # but AP ranks by score: 1 of 2 windows found


def test_detection_ap_hand_computed() -> None:
    gt = [[0, 10], [20, 30]]
    # by score: hit, miss, hit -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1;
    # interpolated: 1/2 * 1 + 1/2 * 2/3
    ap = detection_ap(gt, [(0, 10, 0.9), (40, 50, 0.8), (20, 30, 0.7)], thresholds=(0.5,))
    assert ap[0] == pytest.approx(0.5 + 0.5 * 2 / 3)
    # a second window on an already matched ground truth is a false positive
    assert detection_ap([[0, 10]], [(0, 10, 0.9), (0, 10, 0.8)], (0.5,))[0] == 1.0
    assert detection_ap([[0, 10]], [(0, 10, 0.1), (50, 60, 0.8)], (0.5,))[0] == 0.5
    # IoU 0.8: a hit up to threshold 0.8, a miss above
    ap = detection_ap([[10, 20]], [(12, 20, 1.0)])
    assert ap.tolist() == [1.0 if t <= 0.8 else 0.0 for t in AP_IOUS]
    assert interpolated_ap(np.array([1.0, 0.5]), np.array([0.5, 0.5])) == 0.5


def test_only_the_first_ten_windows_count_for_map() -> None:
    wrong = [[100 + k, 101 + k, 0.5] for k in range(10)]
    m = qvhighlights_metrics([[[0, 10]]], [wrong + [[0, 10, 0.99]]])
    assert m.values["MR-full-mAP"] == 0.0
    m = qvhighlights_metrics([[[0, 10]]], [wrong[:9] + [[0, 10, 0.99]]])
    assert m.values["MR-full-mAP"] == 1.0


def test_length_ranges_keep_only_their_windows() -> None:
    # one query, a 5 s window (short) and a 30 s window (middle: (10, 30]); the top window
    # finds the middle one, so it hits "full" and "middle" but misses "short"
    m = qvhighlights_metrics([[[0, 5], [20, 50]]], [[[20, 50, 1.0]]])
    assert m.counts == {"full": 1, "short": 1, "middle": 1, "long": 0}
    assert m.values["MR-full-R1@0.7"] == 1.0 and m.values["MR-middle-R1@0.7"] == 1.0
    assert m.values["MR-short-R1@0.5"] == 0.0
    assert m.values["MR-full-mAP@0.5"] == 0.5  # one of the two windows found
    assert "MR-long-mAP" not in m.names()


def test_a_query_without_windows_scores_zero() -> None:
    m = qvhighlights_metrics([[[0, 10]], [[0, 10]]], [[[0, 10, 1.0]], None])
    assert m.values["MR-full-R1@0.5"] == 0.5 and m.values["MR-full-mAP"] == 0.5


# --- an independent re-implementation of the official algorithm -----------------------------

def _ref_iou_cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    area_a, area_b = a[:, 1] - a[:, 0], b[:, 1] - b[:, 0]
    inter = np.clip(np.minimum(a[:, None, 1], b[None, :, 1])
                    - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _ref_ap(gts: list[dict], preds: list[dict], thds: list[float]) -> np.ndarray:
    ap = np.zeros(len(thds))
    if not preds:
        return ap
    preds = sorted(preds, key=lambda d: -d["score"])
    lock = -np.ones((len(thds), len(gts)))
    tp = np.zeros((len(thds), len(preds)))
    fp = np.zeros((len(thds), len(preds)))
    gt_arr = np.array([[g["s"], g["e"]] for g in gts], dtype=float)
    for i, p in enumerate(preds):
        ious = _ref_iou_cross(np.array([[p["s"], p["e"]]], dtype=float), gt_arr)[0]
        order = ious.argsort(kind="stable")[::-1]
        for t, thd in enumerate(thds):
            for j in order:
                if ious[j] < thd:
                    fp[t, i] = 1
                    break
                if lock[t, j] >= 0:
                    continue
                tp[t, i] = 1
                lock[t, j] = i
                break
            if not tp[t, i] and not fp[t, i]:
                fp[t, i] = 1
    tpc, fpc = np.cumsum(tp, axis=1), np.cumsum(fp, axis=1)
    rec, prec = tpc / len(gts), tpc / (tpc + fpc)
    for t in range(len(thds)):
        mp = np.hstack([[0], prec[t], [0]])
        mr = np.hstack([[0], rec[t], [1]])
        for k in range(len(mp) - 2, -1, -1):
            mp[k] = max(mp[k], mp[k + 1])
        idx = np.where(mr[1:] != mr[:-1])[0] + 1
        ap[t] = np.sum((mr[idx] - mr[idx - 1]) * mp[idx])
    return ap


def _reference(submission: list[dict], ground_truth: list[dict]) -> dict[str, float]:
    thds = [float(f"{t:.2f}") for t in np.linspace(0.5, 0.95, 10)]
    out: dict[str, float] = {}
    ranges = {"short": (0, 10), "middle": (10, 30), "long": (30, 150), "full": (0, 150)}
    for name, (lo, hi) in ranges.items():
        gt = ground_truth
        if name != "full":
            gt = [{**d, "relevant_windows": [w for w in d["relevant_windows"]
                                             if lo < w[1] - w[0] <= hi]} for d in ground_truth]
            gt = [d for d in gt if d["relevant_windows"]]
        keep = {d["qid"] for d in gt}
        sub = {d["qid"]: d for d in submission if d["qid"] in keep}
        aps = []
        for d in gt:
            preds = [{"s": w[0], "e": w[1], "score": w[2]}
                     for w in sub[d["qid"]]["pred_relevant_windows"][:10]]
            gts = [{"s": w[0], "e": w[1]} for w in d["relevant_windows"]]
            aps.append(_ref_ap(gts, preds, thds))
        per_thd = np.array(aps).mean(0)
        out[f"MR-{name}-mAP"] = float(f"{100 * per_thd.mean():.2f}")
        out[f"MR-{name}-mAP@0.5"] = float(f"{100 * per_thd[0]:.2f}")
        out[f"MR-{name}-mAP@0.75"] = float(f"{100 * per_thd[5]:.2f}")
        top = np.array([sub[d["qid"]]["pred_relevant_windows"][0][:2] for d in gt], dtype=float)
        best = []
        for k, d in enumerate(gt):
            windows = np.array(d["relevant_windows"], dtype=float)
            best.append(windows[np.argmax(_ref_iou_cross(top[k:k + 1], windows)[0])])
        best = np.array(best)
        inter = np.maximum(0, np.minimum(top[:, 1], best[:, 1])
                           - np.maximum(top[:, 0], best[:, 0]))
        union = np.maximum(top[:, 1], best[:, 1]) - np.minimum(top[:, 0], best[:, 0])
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union != 0)
        for thd in (0.5, 0.7):
            out[f"MR-{name}-R1@{thd}"] = float(f"{np.mean(iou >= thd) * 100:.2f}")
    return out


def _submission(rows: list[dict], seed: int) -> list[dict]:
    """Predictions made from the answers: jittered copies of ground-truth windows, decoys, a
    shuffled ranking, up to 12 windows a query, so every rule of the evaluation is exercised."""
    rng = np.random.default_rng(seed)
    out = []
    for d in rows:
        windows = []
        for _ in range(int(rng.integers(1, 13))):
            if rng.random() < 0.6:
                s, e = d["relevant_windows"][int(rng.integers(len(d["relevant_windows"])))]
                s, e = s + rng.normal(0, 3), e + rng.normal(0, 3)
            else:
                s = rng.uniform(0, d["duration"] - 2)
                e = s + rng.uniform(2, 60)
            s, e = sorted((round(float(s), 2), round(float(e), 2)))
            windows.append([s, max(e, s + 0.5), round(float(rng.random()), 4)])
        out.append({"qid": d["qid"], "pred_relevant_windows": windows})
    return out


@pytest.mark.skipif(not VAL.exists(), reason="../shared/data is not there")
@pytest.mark.parametrize("seed", [0, 1])
def test_real_val_file_equals_the_official_algorithm(seed: int) -> None:
    rows = [json.loads(line) for line in VAL.read_text().splitlines() if line.strip()]
    assert len(rows) == 1550 and sum(len(d["relevant_windows"]) > 1 for d in rows) == 530
    submission = _submission(rows, seed)
    want = _reference(submission, rows)
    got = qvhighlights_metrics([d["relevant_windows"] for d in rows],
                               [s["pred_relevant_windows"] for s in submission]).percent()
    assert set(got) == set(want)
    assert max(abs(got[k] - want[k]) for k in want) <= 0.01, {
        k: (got[k], want[k]) for k in want if abs(got[k] - want[k]) > 0.01}
    assert 20 < want["MR-full-R1@0.5"] < 90  # a predictions file that is neither empty nor exact
