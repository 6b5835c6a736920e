"""Retrieval building blocks on hand-computed values: window plans, frame ranges, the merging
NMS, output formats (clock, SRT, WebVTT, JSON), the training-free clip-similarity head."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vdi_cli.errors import VdiError
from vdi_cli.pipeline.retrieve import check_queries, split_arguments
from vdi_cli.pipeline.retrieve_output import (
    clock,
    render_json,
    render_srt,
    render_table,
    render_vtt,
    subtitle_time,
)
from vdi_cli.pipeline.retrieve_windows import merge_nms, plan_windows, window_frames
from vdi_cli.types import Moment
from vdi_plugins.heads.cells import nms


def test_plan_windows_overlap_and_end_alignment():
    assert plan_windows(20.0, 30.0) == [(0.0, 20.0)]
    assert plan_windows(30.0, 30.0) == [(0.0, 30.0)]
    assert plan_windows(90.0, 30.0, 0.5) == [(0.0, 30.0), (15.0, 45.0), (30.0, 60.0),
                                             (45.0, 75.0), (60.0, 90.0)]
    assert plan_windows(100.0, 30.0, 0.5) == [(0.0, 30.0), (15.0, 45.0), (30.0, 60.0),
                                              (45.0, 75.0), (60.0, 90.0), (70.0, 100.0)]
    assert plan_windows(70.0, 30.0, 0.0) == [(0.0, 30.0), (30.0, 60.0), (40.0, 70.0)]
    assert plan_windows(5000.0, None) == [(0.0, 5000.0)]
    for bad in (1.0, -0.1):
        with pytest.raises(VdiError, match="`overlap` must be in"):
            plan_windows(90.0, 30.0, bad)


def test_window_frames_take_frames_inside_and_the_tail():
    times = np.arange(10, dtype=float)  # 0..9 s
    windows = [(0.0, 5.0), (2.5, 7.5), (5.0, 9.5)]
    assert window_frames(times, windows) == [(0, 5), (3, 8), (5, 10)]
    # a window between two sparse frames takes the nearest one
    assert window_frames(np.array([0.0, 10.0]), [(0.0, 4.0), (4.0, 6.0), (6.0, 12.0)]) == [
        (0, 1), (0, 1), (1, 2)]


def test_merge_nms_is_greedy_nms_with_early_stop():
    windows = np.array([[0, 10], [1, 10], [20, 30], [0, 4], [21, 29], [5, 9]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    # [1,10] overlaps [0,10] (IoU .9) -> out; [0,4] IoU .4 kept; [21,29] IoU .8 with [20,30] out;
    # [5,9] IoU .4 with [0,10], 0 with [0,4] -> kept
    assert merge_nms(windows, scores, 0.5).tolist() == [0, 2, 3, 5]
    assert merge_nms(windows, scores, 0.5, top_k=2).tolist() == [0, 2]
    rng = np.random.default_rng(0)
    for _ in range(20):
        s = rng.uniform(0, 100, 300)
        w = np.stack([s, s + rng.uniform(0.5, 30, 300)], 1)
        sc = rng.random(300).astype(np.float32)
        assert merge_nms(w, sc, 0.5).tolist() == nms(w, sc, 0.5).tolist()
        assert merge_nms(w, sc, 0.3, top_k=7).tolist() == nms(w, sc, 0.3, top_k=7).tolist()
    assert merge_nms(np.zeros((0, 2)), np.zeros(0), 0.5).tolist() == []


def test_clock_and_subtitle_times():
    assert clock(0) == "0:00:00.0"
    assert clock(75.26) == "0:01:15.3"
    assert clock(3599.96) == "1:00:00.0"
    assert clock(3723.4) == "1:02:03.4"
    assert subtitle_time(3723.4567) == "01:02:03,457"
    assert subtitle_time(1.5, ".") == "00:00:01.500"


MOMENTS = [[Moment(12.5, 20.0, 0.9), Moment(1.0, 4.25, 0.5)], [Moment(3.0, 5.0, 0.75)]]
QUERIES = ["person opens the door", "a dog barks"]


def test_srt_is_exact_and_in_time_order():
    assert render_srt(QUERIES, MOMENTS) == (
        "1\n00:00:01,000 --> 00:00:04,250\n#2 person opens the door (0.50)\n\n"
        "2\n00:00:03,000 --> 00:00:05,000\n#1 a dog barks (0.75)\n\n"
        "3\n00:00:12,500 --> 00:00:20,000\n#1 person opens the door (0.90)\n"
    )


def test_vtt_is_exact():
    assert render_vtt(QUERIES, MOMENTS) == (
        "WEBVTT\n\n"
        "00:00:01.000 --> 00:00:04.250\n#2 person opens the door (0.50)\n\n"
        "00:00:03.000 --> 00:00:05.000\n#1 a dog barks (0.75)\n\n"
        "00:00:12.500 --> 00:00:20.000\n#1 person opens the door (0.90)\n"
    )


def test_table_and_json_rendering():
    class V:
        vid, duration, windows, moments = "door", 75.0, [(0, 40), (35, 75)], MOMENTS

    text = render_table(QUERIES[:1], [V()])
    assert text.splitlines() == [
        "query: person opens the door  (door, 0:01:15.0, 2 windows)",
        "rank  start      end        duration  score",
        "----  ---------  ---------  --------  ------",
        "1     0:00:12.5  0:00:20.0  7.5       0.9000",
        "2     0:00:01.0  0:00:04.2  3.2       0.5000",
    ]
    data = {"predictions": [{"query": "q", "vid": "v", "pred_relevant_windows": [[1.0, 2.0, 0.5]]}]}
    out = render_json(data)
    assert json.loads(out) == data
    assert '"pred_relevant_windows": [\n        [1.0, 2.0, 0.5]\n      ]' in out


def test_query_and_argument_checks(tmp_path):
    assert check_queries(["  person   opens the door "]) == ["person opens the door"]
    with pytest.raises(VdiError, match="query 2 is empty"):
        check_queries(["ok", "   "])
    with pytest.raises(VdiError, match="no query given"):
        check_queries([])
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    a.write_bytes(b"x")
    b.write_bytes(b"x")
    assert split_arguments([str(a), str(b), "q1", "q2"]) == ([str(a), str(b)], ["q1", "q2"])
    assert split_arguments(["missing.mp4", "q"]) == (["missing.mp4"], ["q"])


torch = pytest.importorskip("torch")


def _head(**options):
    from vdi_cli.registry import get_component

    return get_component("head", "clip-similarity").build(options or None, video_dim=2)


def test_similarity_head_scores_inside_minus_outside():
    head = _head(num_clips=4)
    frames = torch.tensor([[[1.0, 0], [2.0, 0], [0, 3.0], [0, 1.0]]])  # cos with [1, 0]: 1 1 0 0
    out = head(frames, None, torch.tensor([[5.0, 0.0]]), torch.tensor([0]))
    assert out.clip_sims.tolist() == [[1.0, 1.0, 0.0, 0.0]]
    s = out.scores[0]
    assert s[0, 1].item() == pytest.approx(1.0)  # inside 1, outside 0
    assert s[0, 0].item() == pytest.approx(1 - 1 / 3)
    assert s[0, 3].item() == pytest.approx(0.0)  # whole video: no contrast
    assert s[2, 3].item() == pytest.approx(-1.0)
    assert s[1, 0].item() == 0.0  # below the diagonal: not a moment
    ranked = head.rank(out, [8.0], top_k=2)
    assert ranked.windows[0, 0].tolist() == [0.0, 4.0] and ranked.scores[0, 0] == pytest.approx(1)
    with pytest.raises(VdiError, match="nothing to train"):
        head.loss(out, None, 1)


def test_similarity_clip_weights_and_adapt():
    from vdi_plugins.heads.similarity import clip_weights

    w = clip_weights(torch.tensor([2]), 3, 4)[0]  # 2 real frames (+1 pad) into 4 clips
    assert w.tolist() == [[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0]]
    w = clip_weights(torch.tensor([6]), 6, 3)[0]
    assert w.tolist() == [[0.5, 0.5, 0, 0, 0, 0], [0, 0, 0.5, 0.5, 0, 0], [0, 0, 0, 0, 0.5, 0.5]]
    head = _head(num_clips=8, max_clips=3)
    assert int(head.mask2d.sum()) == 8 + 7 + 6
    small = head.adapt(5)
    assert small.params.num_clips == 5 and int(small.mask2d.sum()) == 5 + 4 + 3
    assert head.adapt(50) is head
