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


# --- world version 4: verb synonyms held out of training, the test-novel-verb split ---------

# Recorded from the default generator before version 4 existed (commit 76c1deb): the annotation
# files and the rendered frames (before encoding, so a libx264 update cannot move the hash).
V3_HASHES = {
    "train.json": "a1f5aa96131c7f48b944169ecec142c192ad0c02380ec39050ee64e07e64ee18",
    "test_iid.json": "4ee57343b609480f6c4f4d1004cd234da3763ce0f8160c89a8df7c0bc4818bb6",
    "test_novel_word.json": "17ac104b8db73fc7c1ead03217df66ac16789cdc52db4e11d1cb70f1acb44057",
    "meta.json": "ba708db3dafdf320ed5bf7e54da34ae34e1e415f3a22b3a9374988c8f5507ea9",
    "frames": "98165cbd22708f45250a27f2fdd21b5fdce0fe9eb6d41fcad5003bbe8c53b28f",
}


def _frames_digest(seed: int, counts: dict[str, int], version: int) -> str:
    import hashlib

    from vdi_plugins.synthetic.generate import frames_of, splits

    h = hashlib.sha256()
    for code, split in enumerate(splits(version)):
        for i in range(counts[split]):
            plan = plan_video(np.random.default_rng([seed, code, i]), f"{split}-{i:05d}", split,
                              32, version)
            for frame in frames_of(plan, 4, 32):
                h.update(frame.tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("version", [None, 3])
def test_version_3_writes_what_it_wrote_before_version_4(tmp_path, version):
    import hashlib

    options = {} if version is None else {"version": version}
    generate(tmp_path, videos=6, seed=3, test_videos=3, fps=4, size=32, **options)
    for name in ("train.json", "test_iid.json", "test_novel_word.json", "meta.json"):
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == V3_HASHES[name]
    assert not (tmp_path / "test_novel_verb.json").exists()
    counts = {"train": 6, "test-iid": 3, "test-novel-word": 3}
    assert _frames_digest(3, counts, 3) == V3_HASHES["frames"]


def test_held_out_synonyms_share_no_word_with_training_queries():
    from vdi_plugins.synthetic import verbs

    trained = set().union(*(verbs.phrase_words(t) for ts in verbs.templates(False).values()
                            for t in ts))
    for action in verbs.NOVEL_VERB_ACTIONS:
        assert len(verbs.TRAINED[action]) >= 3 and len(verbs.HELD_OUT[action]) >= 2
        for template in verbs.HELD_OUT[action]:
            assert verbs.phrase_words(template) & verbs.held_out_words(), template
            assert not verbs.phrase_words(template) <= trained, template
    assert not verbs.held_out_words() & trained
    assert set(verbs.NOVEL_VERB_ACTIONS) < set(WORLD_ACTIONS)


@pytest.fixture(scope="module")
def world_v4(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic-v4")
    meta = generate(out, videos=60, seed=5, test_videos=30, fps=2, size=32, version=4)
    splits = {name: json.loads((out / f"{name}.json").read_text())
              for name in ("train", "test_iid", "test_novel_word", "test_novel_verb")}
    return out, meta, splits


def _phrases(templates):
    return [t.replace("{np} ", "") for t in templates]


def test_version_4_splits_hold_the_verbs_apart(world_v4):
    from vdi_plugins.synthetic import verbs

    out, meta, splits = world_v4
    assert meta["version"] == 4 and list(meta["splits"]) == [
        "train", "test-iid", "test-novel-word", "test-novel-verb"]
    assert meta["verbs"]["up"] == {"trained": list(verbs.TRAINED["up"]),
                                   "held_out": list(verbs.HELD_OUT["up"])}
    held_words = verbs.held_out_words()
    used = {a: set() for a in verbs.NOVEL_VERB_ACTIONS}
    for name in ("train", "test_iid", "test_novel_word"):
        for entry in splits[name].values():
            for sentence, action in zip(entry["sentences"], entry["actions"], strict=True):
                assert not set(sentence.split()) & held_words, sentence
                if action in used:
                    said = [p for p in _phrases(verbs.TRAINED[action]) if p in sentence]
                    assert said, sentence
                    used[action].update(said)
    # at this scale every trained synonym of every class is used in training
    assert all(used[a] == set(_phrases(verbs.TRAINED[a])) for a in used)
    train_words = {w for v in splits["train"].values() for s in v["sentences"] for w in s.split()}
    novel_actions = set()
    for entry in splits["test_novel_verb"].values():
        for sentence, action, news in zip(entry["sentences"], entry["actions"], entry["news"],
                                          strict=True):
            novel_actions.add(action)
            assert action in verbs.NOVEL_VERB_ACTIONS
            assert any(p in sentence for p in _phrases(verbs.HELD_OUT[action])), sentence
            words = set(sentence.split())
            assert {w for ws in news.values() for w in ws} == words - train_words
            assert set(news.get("VERB", ())) & held_words, (sentence, news)
            # the only novel words are the verb's: objects and scenes are the training ones
            assert not words & {w for ws in HELD_OUT.values() for w in ws}
    assert novel_actions == set(verbs.NOVEL_VERB_ACTIONS)
    assert splits["test_novel_verb"]["test-novel-verb-00000"]["news"][0].keys() <= {"VERB",
                                                                                    "ADV"}


def test_version_4_keeps_the_other_splits_plans():
    """Version 4 changes words, not videos: the same seed plans the same events as version 3."""
    for i in range(20):
        v3 = plan_video(np.random.default_rng([5, 0, i]), "v", "train", 32, 3)
        v4 = plan_video(np.random.default_rng([5, 0, i]), "v", "train", 32, 4)
        assert v3.events == v4.events and v3.objects == v4.objects


def test_generate_version_option_and_its_errors(tmp_path):
    ok = invoke(["datasets", "generate", "synthetic-shapes", "--out", tmp_path / "g",
                 "--videos", "3", "--test-videos", "2", "--size", "32", "--fps", "2",
                 "-o", "version=4", "--json"])
    assert ok.exit_code == 0, ok.stderr
    assert ok.json()["splits"]["test-novel-verb"]["file"] == "test_novel_verb.json"
    report = load_dataset("synthetic-shapes", tmp_path / "g" / "test_novel_verb.json")
    assert all(a.extra["news"].get("VERB") for a in report.annotations)
    # replacing it with a version-3 set leaves no stale test-novel-verb split behind
    again = invoke(["datasets", "generate", "synthetic-shapes", "--out", tmp_path / "g",
                    "--videos", "3", "--test-videos", "2", "--size", "32", "--fps", "2",
                    "--force"])
    assert again.exit_code == 0, again.stderr
    assert not (tmp_path / "g" / "test_novel_verb.json").exists()
    assert json.loads((tmp_path / "g" / "meta.json").read_text())["version"] == 3
    for bad, says in ((["-o", "versoin=4"], "did you mean 'version'?"),
                      (["-o", "version=5"], "version")):
        result = invoke(["datasets", "generate", "synthetic-shapes", "--out", tmp_path / "b",
                         *bad])
        assert result.exit_code == 1 and says in result.stderr and "Hint:" in result.stderr
        assert "Traceback" not in result.stderr and not (tmp_path / "b").exists()
    with pytest.raises(Exception, match="no world version 2"):
        generate(tmp_path / "lib", videos=1, seed=0, version=2)


def test_a_trail_shows_where_the_object_came_from():
    from vdi_plugins.synthetic.trails import draw, trail

    state = ObjectState("square", COLOURS["red"], x=20.0, y=32.0, size=4.0)
    img = background("snow", 64)
    for copy, how in trail("left", state, 20.0):
        draw(img, copy, how)
    bg, red = background("snow", 64)[32], np.array(COLOURS["red"], float)
    # the object itself is opaque; the copies to its right (where it was) fade with distance
    assert img[32, 20] == pytest.approx(red)
    share = [float((bg[x] - img[32, x])[1] / (bg[x] - red)[1]) for x in (27, 32, 37)]
    assert 0.1 < share[2] < share[1] < share[0] < 1.0
    assert img[32, 10] == pytest.approx(bg[10])  # nothing ahead of it
    grown = background("snow", 64)
    for copy, how in trail("grow", state, 20.0):
        draw(grown, copy, how)
    assert (grown[32, 17:24] != red).any(axis=1).any()  # earlier outlines inside it
    assert grown[32, 20] == pytest.approx(red)  # its centre is the object


def test_motion_stills_stay_in_frame_and_use_every_synonym():
    from vdi_plugins.synthetic import verbs
    from vdi_plugins.synthetic.trails import motion_still
    from vdi_plugins.synthetic.world import SCENES, SHAPES

    vocab = {"colour": tuple(COLOURS), "shape": SHAPES, "scene": SCENES}
    rng = np.random.default_rng(0)
    captions = [motion_still(rng, 64, vocab)[1] for _ in range(400)]
    said = {p for a in verbs.NOVEL_VERB_ACTIONS for p in _phrases(verbs.synonyms(a))
            if any(p in c for c in captions)}
    assert said == {p for a in verbs.NOVEL_VERB_ACTIONS for p in _phrases(verbs.synonyms(a))}
    assert sum(" and " not in c and not any(p in c for p in said) for c in captions) > 10
    frame, _ = motion_still(np.random.default_rng(1), 64, vocab)
    assert frame.dtype == np.uint8 and frame.shape == (64, 64, 3)
    from vdi_plugins.synthetic.trails import room_for, trail

    for action in verbs.NOVEL_VERB_ACTIONS:  # every copy of every trail inside the frame
        for i in range(50):
            r, travel = 9.0, 25.0
            x, y = room_for(action, r, travel, 64, np.random.default_rng(i))
            for copy, _ in trail(action, ObjectState("circle", (0, 0, 0), x, y, r), travel):
                assert copy.size - 1e-6 <= copy.x <= 64 - copy.size + 1e-6, (action, copy)
                assert copy.size - 1e-6 <= copy.y <= 64 - copy.size + 1e-6, (action, copy)


def test_twin_stills_differ_only_in_one_motion():
    from vdi_plugins.synthetic import verbs
    from vdi_plugins.synthetic.trails import OPPOSITE, twin_stills
    from vdi_plugins.synthetic.world import SCENES, SHAPES

    vocab = {"colour": tuple(COLOURS), "shape": SHAPES, "scene": SCENES}
    rng = np.random.default_rng(0)
    for _ in range(30):
        (fa, ca), (fb, cb) = twin_stills(rng, 64, vocab)
        assert ca != cb and not np.array_equal(fa, fb)
        said = []
        for caption in (ca, cb):
            first = caption.split(" and ")[0] + " "
            action, phrase = next((a, p) for a in verbs.NOVEL_VERB_ACTIONS
                                  for p in _phrases(verbs.synonyms(a)) if f" {p} " in first)
            said.append((action, caption.replace(f" {phrase} ", " VERB ", 1)))
        assert said[1][0] == OPPOSITE[said[0][0]]
        # the rest of the caption, the first object's position words included, is the same
        assert said[0][1] == said[1][1]
