"""The synthetic-shapes world: rendering, events, splits, determinism, real mp4 output."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vdi_cli.datasets import load_dataset
from vdi_cli.testing import invoke
from vdi_plugins.synthetic.events import ACTIONS, DROPPED, WORLD_ACTIONS, Event, apply, state_at
from vdi_plugins.synthetic.generate import MOVE, generate, plan_video, room
from vdi_plugins.synthetic.world import COLOURS, HELD_OUT, ObjectState, background, render, where


def test_render_draws_the_shape_over_the_scene():
    sq = ObjectState("square", COLOURS["red"], x=10.0, y=10.0, size=3.0)
    img = render("snow", [sq], 20)
    assert img.dtype == np.uint8 and img.shape == (20, 20, 3)
    assert tuple(img[10, 10]) == COLOURS["red"]
    assert tuple(img[13, 13]) == COLOURS["red"]  # corner of a 3-pixel half extent
    assert tuple(img[14, 14]) == tuple(background("snow", 20)[14, 14].astype(np.uint8))
    half = render("snow", [ObjectState("square", (200, 0, 0), 10.0, 10.0, 3.0, alpha=0.5)], 20)
    bg = background("snow", 20)[10, 10]
    assert tuple(half[10, 10]) == tuple(((bg + np.array([200, 0, 0])) / 2).astype(np.uint8))


def test_events_change_state_by_progress():
    base = ObjectState("square", COLOURS["red"], 30.0, 30.0, 5.0)
    left = Event(0, "left", 2.0, 6.0, amount=16.0)
    assert apply(base, left, 1.0).x == 30.0
    assert apply(base, left, 4.0).x == 22.0  # half way: 8 pixels
    assert apply(base, left, 9.0).x == 14.0
    appear = Event(0, "appear", 1.0, 3.0)
    grow = Event(0, "grow", 5.0, 7.0)
    events = [appear, grow]
    assert state_at(base, events, 0.5).alpha == 0.0  # invisible before it appears
    assert state_at(base, events, 2.0).alpha == 0.5
    assert state_at(base, events, 4.0).alpha == 1.0 and state_at(base, events, 4.0).size == 5.0
    assert state_at(base, events, 8.0).size == pytest.approx(9.5)  # x1.9 after growing
    recolour = Event(0, "recolour", 0.0, 2.0, target="blue")
    mid = apply(base, recolour, 1.0).colour
    assert mid == pytest.approx(tuple((np.array(COLOURS["red"]) + COLOURS["blue"]) / 2))
    assert where(base, 64) == "in the middle" and where(ObjectState("circle", (0, 0, 0), 5, 5, 2),
                                                          64) == "at the top left"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    meta = generate(out, videos=6, seed=3, test_videos=3, fps=4, size=32)
    return out, meta


def test_splits_and_novel_words(world):
    out, meta = world
    assert meta["splits"]["train"]["videos"] == 6
    train = json.loads((out / "train.json").read_text())
    novel = json.loads((out / "test_novel_word.json").read_text())
    iid = json.loads((out / "test_iid.json").read_text())
    train_words = {w for v in train.values() for s in v["sentences"] for w in s.split()}
    held = {w for ws in HELD_OUT.values() for w in ws}
    assert not train_words & held
    assert not {w for v in iid.values() for s in v["sentences"] for w in s.split()} & held
    for entry in novel.values():
        for sentence, news in zip(entry["sentences"], entry["news"], strict=True):
            words = set(sentence.split())
            assert words - train_words, sentence
            assert {w for ws in news.values() for w in ws} == words - train_words
            assert words & held  # every object carries a held-out colour or shape
    for entry in train.values():
        assert len(entry["timestamps"]) == len(entry["sentences"]) == len(entry["actions"])
        for s, e in entry["timestamps"]:
            assert 0 <= s < e <= entry["duration"]


def test_the_world_leaves_out_the_dropped_classes_and_says_why(world):
    _, meta = world
    assert meta["dropped"] == DROPPED and "spin" in DROPPED and "spin" not in meta["actions"]
    planned = [e.action for i in range(300)
               for e in plan_video(np.random.default_rng([1, 0, i]), f"v{i}", "train", 64).events]
    assert "spin" not in planned
    assert set(planned) == set(WORLD_ACTIONS) == set(ACTIONS) - set(DROPPED)


def test_room_is_the_distance_to_the_frame_edge():
    obj = ObjectState("circle", COLOURS["red"], x=20.0, y=50.0, size=6.0)
    # edge = radius 6 + margin 2 = 8: left 20 - 8, right 64 - 8 - 20, up 50 - 8, down 64 - 8 - 50
    assert [room(a, obj, 64) for a in ("left", "right", "up", "down", "jump")] == [
        12.0, 36.0, 42.0, 6.0, 42.0]


def test_moves_go_far_and_stay_in_the_frame():
    """Version 3: every move covers at least MOVE's lower bound and stays inside the frame."""
    size, moves = 64, 0
    for i in range(200):
        plan = plan_video(np.random.default_rng([5, 0, i]), f"v{i}", "train", size)
        for ev in plan.events:
            if ev.action not in MOVE:
                continue
            moves += 1
            low, high = MOVE[ev.action]
            assert low * size - 1e-6 <= ev.amount <= high * size + 1e-6
            mine = [e for e in plan.events if e.obj == ev.obj]
            base = plan.objects[ev.obj][1]
            before, after = state_at(base, mine, ev.start), state_at(base, mine, ev.end)
            peak = state_at(base, mine, (ev.start + ev.end) / 2)  # a jump's top
            axis = "x" if ev.action in ("left", "right") else "y"  # a grow may overhang the other
            for s in (after, peak):
                assert s.size <= getattr(s, axis) <= size - s.size
            shift = abs(after.x - before.x) + abs(after.y - before.y)
            if ev.action == "jump":
                assert after.y == pytest.approx(before.y)
                assert before.y - peak.y == pytest.approx(ev.amount)
            else:
                assert shift == pytest.approx(ev.amount)
    assert moves > 100


def test_videos_are_real_mp4s_with_the_planned_frames(world):
    import av

    out, _ = world
    train = json.loads((out / "train.json").read_text())
    vid, entry = next(iter(train.items()))
    with av.open(str(out / "videos" / f"{vid}.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == round(entry["duration"] * 4)
    assert frames[0].shape == (32, 32, 3)
    assert not (out / "videos" / f"{vid}.tmp.mp4").exists()


def test_generation_is_deterministic(world, tmp_path):
    out, _ = world
    generate(tmp_path, videos=6, seed=3, test_videos=3, fps=4, size=32)
    for name in ("train.json", "test_iid.json", "test_novel_word.json", "meta.json"):
        assert (tmp_path / name).read_text() == (out / name).read_text()
    other = tmp_path / "other"
    generate(other, videos=6, seed=4, test_videos=3, fps=4, size=32)
    assert (other / "train.json").read_text() != (out / "train.json").read_text()


def test_read_through_the_dataset_plugin_keeps_actions(world):
    out, _ = world
    report = load_dataset("synthetic-shapes", out / "test_novel_word.json")
    assert report.format == "synthetic-shapes"
    assert all("actions" in a.extra and "news" in a.extra for a in report.annotations)


def test_generate_command_and_its_errors(tmp_path):
    result = invoke(["datasets", "generate", "synthetic-shapes", "--out", tmp_path / "g",
                     "--videos", "2", "--test-videos", "1", "--size", "32", "--fps", "4",
                     "--json"])
    assert result.exit_code == 0, result.stderr
    assert result.json()["splits"]["train"]["videos"] == 2
    assert len(list((tmp_path / "g" / "videos").glob("*.mp4"))) == 4
    runs = invoke(["runs", "list", "--json"]).json()
    assert runs[0]["command"] == "datasets generate" and runs[0]["status"] == "ok"
    bad = invoke(["datasets", "generate", "mmn-json", "--out", tmp_path / "x"])
    assert bad.exit_code == 1 and "cannot generate data" in bad.stderr
    odd = invoke(["datasets", "generate", "synthetic-shapes", "--out", tmp_path / "x",
                  "--size", "33"])
    assert odd.exit_code == 1 and "Hint: H.264 needs even frame sizes" in odd.stderr
