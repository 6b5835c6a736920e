"""Trivial baselines and per-group scores, with hand-computed values."""

from __future__ import annotations

import json

import pytest

from vdi_cli.baselines import (
    baseline_windows,
    fit_most_frequent,
    group_table,
    grouped_scores,
    moment_cell,
    prior_scores,
)
from vdi_cli.errors import VdiError
from vdi_cli.testing import invoke
from vdi_cli.types import Annotation


def ann(vid: str, dur: float, s: float, e: float, action: str | None = None) -> Annotation:
    extra = {"actions": action} if action else {}
    return Annotation(vid, dur, f"q {vid} {s}", s, e, extra=extra)


def test_moment_cell_snaps_to_the_grid():
    # 16 cells over 32 s: 2 s each. [4, 9] -> i = floor(2) = 2, j = ceil(4.5) - 1 = 4
    assert moment_cell(4.0, 9.0, 32.0, 16) == (2, 4)
    # an end exactly on a boundary does not spill into the next cell: [0, 2] -> (0, 0)
    assert moment_cell(0.0, 2.0, 32.0, 16) == (0, 0)
    # clipped to the video; a zero-length moment keeps j >= i
    assert moment_cell(31.0, 40.0, 32.0, 16) == (15, 15)
    assert moment_cell(5.0, 5.0, 32.0, 16) == (2, 2)


def test_most_frequent_moment_overall_and_per_group():
    train = [
        ann("a", 16, 0, 4, "left"),  # cell (0, 3)
        ann("b", 32, 0, 8, "left"),  # cell (0, 3)
        ann("c", 16, 8, 16, "grow"),  # cell (8, 15)
    ]
    model = fit_most_frequent(train, 16, by="actions")
    assert model.overall == (0, 3)
    assert model.per_group == {"left": (0, 3), "grow": (8, 15)}
    test = [ann("t", 40, 0, 10, "grow"), ann("u", 40, 0, 10, "spin")]
    overall = baseline_windows("most-frequent", test, train)
    assert overall == [[[0.0, 10.0]], [[0.0, 10.0]]]  # cells 0..3 of 40 s = [0, 10]
    per_group = baseline_windows("most-frequent", test, train, by="actions")
    # grow -> its own cell (8, 15) = [20, 40]; spin was never trained: the overall cell
    assert per_group == [[[20.0, 40.0]], [[0.0, 10.0]]]


def test_most_frequent_ties_take_the_smallest_cell():
    train = [ann("a", 16, 8, 9), ann("b", 16, 2, 3)]  # (8, 8) and (2, 2), once each
    assert fit_most_frequent(train).overall == (2, 2)


def test_random_baseline_is_seeded_and_inside_the_video():
    test = [ann(str(i), 20.0, 0, 5) for i in range(50)]
    a = baseline_windows("random", test, seed=3)
    assert a == baseline_windows("random", test, seed=3)
    assert a != baseline_windows("random", test, seed=4)
    assert all(0 <= w[0][0] <= w[0][1] <= 20.0 for w in a)


def test_grouped_scores_recall_and_miou_per_group():
    test = [ann("a", 10, 0, 4, "left"), ann("b", 10, 0, 4, "left"), ann("c", 10, 5, 10, "up")]
    windows = [
        [[0.0, 4.0]],  # IoU 1
        [[2.0, 6.0]],  # inter 2, union 6: 1/3 (a miss at 0.5)
        [[5.0, 7.5]],  # IoU 0.5 exactly: a hit (>=)
    ]
    scores = grouped_scores(test, windows, "actions", iou=0.5)
    assert [(s.group, s.queries) for s in scores] == [("left", 2), ("up", 1)]
    assert scores[0].recall == pytest.approx(50.0)
    assert scores[0].miou == pytest.approx(100 * (1 + 1 / 3) / 2, abs=1e-4)
    assert scores[1].recall == pytest.approx(100.0) and scores[1].miou == pytest.approx(50.0)
    # a query without windows counts as a miss with IoU 0
    assert grouped_scores(test[:1], [None], "actions")[0].recall == 0.0


def test_prior_scores_and_table():
    train = [ann("a", 10, 0, 5, "left"), ann("b", 10, 5, 10, "up")]
    test = [ann("c", 20, 0, 10, "left"), ann("d", 20, 0, 10, "up")]
    prior = prior_scores(test, train, "actions")  # left -> [0, 10] hit; up -> [10, 20] miss
    assert [(p.group, p.recall) for p in prior] == [("left", 100.0), ("up", 0.0)]
    model = grouped_scores(test, [[[0.0, 10.0]], [[0.0, 10.0]]], "actions")
    header, rows = group_table(model, prior)
    assert header == ["group", "queries", "R@1,IoU=0.5", "prior", "above prior", "mIoU"]
    assert rows[1] == ["up", 1, "100.00", "0.00", "+100.00", "100.00"]


def test_unknown_baseline_and_missing_train_are_errors():
    with pytest.raises(VdiError, match="unknown baseline"):
        baseline_windows("oracle", [])
    with pytest.raises(VdiError, match="training annotations"):
        fit_most_frequent([])


def _mmn_json(path, entries):
    path.write_text(json.dumps(entries))
    return path


def test_eval_baseline_command(tmp_path):
    train = _mmn_json(tmp_path / "train.json", {
        "v1": {"duration": 16.0, "timestamps": [[0, 4], [0, 4], [8, 16]],
               "sentences": ["a", "b", "c"], "actions": ["left", "left", "grow"]},
    })
    test = _mmn_json(tmp_path / "test.json", {
        "v2": {"duration": 32.0, "timestamps": [[0, 8], [16, 32]], "sentences": ["d", "e"],
               "actions": ["left", "grow"]},
    })
    res = invoke(["eval", "--baseline", "most-frequent", "--train", train, "--annotations",
                  test, "--format", "mmn-json", "--json"])
    assert res.exit_code == 0, res.output
    out = res.json()
    # overall most frequent cell (0, 3) of 32 s = [0, 8]: query d hits, e misses
    assert out["metrics"]["R@1,IoU=0.5"] == 50.0
    res = invoke(["eval", "--baseline", "most-frequent", "--train", train, "--annotations",
                  test, "--format", "mmn-json", "--by", "actions", "--json"])
    out = res.json()
    groups = {g["group"]: g for g in out["groups"]}
    assert groups["left"]["recall"] == 100.0 and groups["grow"]["recall"] == 0.0
    res = invoke(["eval", "--baseline", "most-frequent", "--annotations", test, "--format",
                  "mmn-json"])
    assert res.exit_code == 1
    assert "Error:" in res.stderr and "--train" in res.stderr
    res = invoke(["eval", "--baseline", "oracle", "--annotations", test, "--format", "mmn-json"])
    assert res.exit_code == 1 and "Error: unknown baseline 'oracle'" in res.stderr
    assert "Hint: use one of: most-frequent, random" in res.stderr
    res = invoke(["eval", "--baseline", "random", "--run", "1", "--annotations", test,
                  "--format", "mmn-json"])
    assert res.exit_code == 2 and "--baseline is a mode of its own" in res.stderr
    assert "Traceback" not in res.stderr
