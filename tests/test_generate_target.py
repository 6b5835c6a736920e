"""`vdi datasets generate --out DIR`: a folder that already holds something is refused (or
replaced whole with --force), a failed or killed generate leaves no file a folder scan could take
for a video, and folder scans skip temporary and partial files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vdi_cli.errors import VdiError
from vdi_cli.testing import invoke, make_video
from vdi_cli.video import find_videos, is_video_name

pytest.importorskip("av")

from vdi_plugins.synthetic.generate import generate  # noqa: E402

SMALL = {"test_videos": 1, "fps": 2, "size": 32}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _gen_args(out: Path, videos: int, seed: int, *more: str) -> list[str]:
    return ["datasets", "generate", "synthetic-shapes", "--out", str(out), "--videos",
            str(videos), "--seed", str(seed), "--test-videos", "1", "--fps", "2", "--size", "32",
            *more]


def test_a_second_generate_into_the_same_folder_is_refused_and_changes_nothing(tmp_path):
    out = tmp_path / "g"
    generate(out, videos=3, seed=1, **SMALL)
    before = _snapshot(out)
    result = invoke(_gen_args(out, 2, 7))
    assert result.exit_code == 1
    assert "Error: --out" in result.stderr and "already holds a generated dataset" in result.stderr
    assert "--force" in result.stderr and "Traceback" not in result.stderr
    assert _snapshot(out) == before
    runs = invoke(["runs", "list", "--json"]).json()
    assert runs[0]["status"] == "error" and "already holds" in runs[0]["error"]


def test_force_replaces_the_set_whole(tmp_path):
    out = tmp_path / "g"
    generate(out, videos=5, seed=1, **SMALL)
    result = invoke(_gen_args(out, 2, 7, "--force", "--json"))
    assert result.exit_code == 0, result.stderr
    train = json.loads((out / "train.json").read_text())
    videos = sorted(p.stem for p in (out / "videos").iterdir())
    # the three training videos of the old set are gone; the annotations describe these videos
    assert videos == ["test-iid-00000", "test-novel-word-00000", "train-00000", "train-00001"]
    assert sorted(train) == ["train-00000", "train-00001"]
    fresh = tmp_path / "fresh"
    generate(fresh, videos=2, seed=7, **{**SMALL, "fps": 2.0})
    for name in ("train.json", "test_iid.json", "test_novel_word.json", "meta.json"):
        assert (out / name).read_text() == (fresh / name).read_text()  # what a fresh folder gets
    assert sorted(_snapshot(out)) == sorted(_snapshot(fresh))


def test_force_never_deletes_files_generate_did_not_write(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("months of work")
    with pytest.raises(VdiError, match="did not generate .*thesis.tex"):
        generate(out, videos=2, seed=1, force=True, **SMALL)
    assert (out / "thesis.tex").read_text() == "months of work"
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]


def test_an_empty_folder_is_fine_and_out_naming_a_file_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    generate(tmp_path / "empty", videos=2, seed=1, **SMALL)
    assert (tmp_path / "empty" / "meta.json").is_file()
    (tmp_path / "notes.txt").write_text("x")
    result = invoke(_gen_args(tmp_path / "notes.txt", 2, 1))
    assert result.exit_code == 1 and "is a file, not a folder" in result.stderr
    assert "Hint: " in result.stderr and "this is a bug" not in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "x"


def test_a_generate_that_fails_midway_leaves_the_old_set_and_no_temporary_file(tmp_path):
    out = tmp_path / "g"
    generate(out, videos=3, seed=1, **SMALL)
    before = _snapshot(out)
    done = []

    class Bar:  # the progress callback: Ctrl-C after the second video is written
        def __init__(self, **kw):
            pass

        def update(self, n):
            done.append(n)
            if len(done) == 2:
                raise KeyboardInterrupt

        def close(self):
            pass

    with pytest.raises(KeyboardInterrupt):
        generate(out, videos=4, seed=9, force=True, progress=Bar, **SMALL)
    assert _snapshot(out) == before
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_a_killed_generate_leaves_nothing_a_scan_takes_for_a_video(tmp_path):
    """SIGKILL (no cleanup runs) in the middle of writing videos: the folder's videos/ holds no
    half-written file, `vdi extract` finds no video there, and the next generate succeeds."""
    out = tmp_path / "g"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "vdi_cli", *_gen_args(out, 40, 3)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(out.glob(".generate.tmp-*/videos/*.mp4"))) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "generate ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "videos").exists() and not (out / "meta.json").exists()
    assert list(out.glob(".generate.tmp-*"))  # only the hidden staging folder is left
    result = invoke(["extract", str(out), "--backbone", "open_clip:vdi-tiny"])
    assert result.exit_code == 1 and "no video files in folder" in result.stderr
    again = invoke(_gen_args(out, 2, 3))
    assert again.exit_code == 0, again.stderr
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "test_iid.json",
                                                     "test_novel_word.json", "train.json",
                                                     "videos"]


def test_folder_scans_skip_temporary_and_partial_files(tmp_path):
    good = make_video(tmp_path / "good.mp4", seconds=0.5)
    data = good.read_bytes()
    names = [".good.mp4.tmp", "good.tmp.mp4", ".hidden.mp4", "clip.part.mp4", "clip.PARTIAL.mkv",
             "._good.mp4"]
    for name in names:
        (tmp_path / name).write_bytes(data[: len(data) // 2])
    assert find_videos(tmp_path) == [good]
    assert is_video_name("my.holiday.2019.mp4") and not is_video_name("notes.txt")
