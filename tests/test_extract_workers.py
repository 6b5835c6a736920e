"""`vdi extract --workers K`: K decoding processes feeding one model give the thread path's
features and report, fail only the video a damaged file or a dead worker spoils, and leave no
worker (and no partial file) behind when the extraction is interrupted or killed."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from vdi_cli.hookspecs import hookimpl  # noqa: E402
from vdi_cli.testing import invoke, make_video, plugin_host, tiny_backbone  # noqa: E402

TINY = "open_clip:vdi-tiny"


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Five 6 s videos of different sizes (24 frames each at 4 fps), a corrupt file and a
    missing name among them."""
    folder = tmp_path_factory.mktemp("clips")
    sizes = [(160, 120), (96, 72), (160, 120), (64, 48), (128, 96)]
    paths = [make_video(folder / f"v{i}.mp4", seconds=6, fps=10, size=s, seed=i)
             for i, s in enumerate(sizes)]
    (folder / "bad.mp4").write_bytes(b"not a video at all " * 64)
    return [paths[0], paths[1], folder / "bad.mp4", paths[2], folder / "gone.mp4", *paths[3:]]


def _extract(items, workers, root, **kw):
    from vdi_cli.pipeline.extract import extract_features
    from vdi_cli.store import open_db

    db = open_db(Path(root) / "vdi.db")
    report = extract_features(db, items, loaded=tiny_backbone(), sampling={"fps": 4},
                              batch_size=8, show_progress=False, workers=workers,
                              root=Path(root) / "features", **kw)
    return db, report


def _tensors(report):
    from safetensors.torch import load_file

    return [load_file(v.features_path) if v.features_path else None for v in report.videos]


def _same(a, b):
    return a is b is None or (a is not None and b is not None and sorted(a) == sorted(b)
                              and all(torch.equal(a[k], b[k]) for k in a))


def test_workers_give_the_thread_paths_features_and_report(clips, tmp_path):
    _, ref = _extract(clips, 0, tmp_path / "k0")
    want = ["extracted", "extracted", "failed", "extracted", "failed", "extracted", "extracted"]
    assert [v.status for v in ref.videos] == want
    assert [v.frames for v in ref.videos if v.status == "extracted"] == [24] * 5  # 6 s x 4 fps
    for k in (1, 2, 3):  # 3 workers on a 2-core machine still work
        db, got = _extract(clips, k, tmp_path / f"k{k}")
        assert [(v.name, v.status, v.reason, v.frames) for v in got.videos] == \
            [(v.name, v.status, v.reason, v.frames) for v in ref.videos]
        assert [v.error for v in got.videos] == [v.error for v in ref.videos]
        assert all(_same(a, b) for a, b in zip(_tensors(ref), _tensors(got), strict=True))
        assert got.frames_encoded == 120 and db["features"].count == 5
        assert not [p for p in (tmp_path / f"k{k}").rglob("*.tmp*") if p.is_file()]
    again = _extract(clips, 2, tmp_path / "k2")[1]  # a rerun decodes nothing
    assert [v.status for v in again.videos] == [s.replace("extracted", "cached") for s in want]
    assert again.frames_encoded == 0


class _CrashOn:
    """A reader plugin that kills its own (decoding) process on one file name: a decoder crash
    as a segfault in a native library would cause one."""

    def __init__(self, name: str) -> None:
        self.name = name

    @hookimpl(tryfirst=True)
    def open_video(self, path, options):
        if Path(path).name == self.name:
            os.kill(os.getpid(), signal.SIGKILL)
        return None


class _CrashPartWay:
    """A reader plugin that reads one file with the real PyAV reader and kills its process
    after `after` frames: a worker that dies with batches of that video already sent."""

    def __init__(self, name: str, after: int) -> None:
        self.name, self.after = name, after

    @hookimpl(tryfirst=True)
    def open_video(self, path, options):
        if Path(path).name != self.name:
            return None
        from vdi_plugins.video_pyav import open_video as pyav_open

        reader, after = pyav_open(path=path, options=options), self.after
        real = reader.frames

        def frames():
            for i, frame in enumerate(real()):
                if i == after:
                    os.kill(os.getpid(), signal.SIGKILL)
                yield frame
        reader.frames = frames
        return reader


def test_a_worker_dying_part_way_through_a_video(clips, tmp_path):
    """Batches of the video already encoded are dropped with its writer (no partial file, no
    features row); the video fails and the rest are whole."""
    good = [p for p in clips if p.name.startswith("v")]
    _, ref = _extract(good, 0, tmp_path / "ref")
    crash = make_video(tmp_path / "crash.mp4", seconds=6, fps=10, size=(96, 72))
    with plugin_host(_CrashPartWay("crash.mp4", after=14)):  # batches of 2 + 8 frames sent
        db, got = _extract([crash, *good], 2, tmp_path / "w2")
    assert [(v.status, v.reason) for v in got.videos] == \
        [("failed", "corrupt")] + [("extracted", None)] * len(good)
    assert "killed by SIGKILL" in got.videos[0].error
    assert all(_same(a, b) for a, b in zip(_tensors(ref), _tensors(got)[1:], strict=True))
    assert got.frames_encoded <= 120 + 10 and db["features"].count == len(good)
    assert not [p for p in (tmp_path / "w2").rglob("*.tmp*") if p.is_file()]


def test_a_worker_that_dies_fails_only_its_video(clips, tmp_path):
    good = [p for p in clips if p.name.startswith("v")]
    _, ref = _extract(good, 0, tmp_path / "ref")
    crash = make_video(tmp_path / "crash.mp4", seconds=2, fps=10)
    items = [good[0], crash, *good[1:]]
    with plugin_host(_CrashOn("crash.mp4")):
        db, got = _extract(items, 2, tmp_path / "w2")
    statuses = [(v.name, v.status, v.reason) for v in got.videos]
    assert statuses == [("v0.mp4", "extracted", None), ("crash.mp4", "failed", "corrupt"),
                        *[(p.name, "extracted", None) for p in good[1:]]]
    assert "the decoding process died (killed by SIGKILL)" in got.videos[1].error
    kept = [t for t, v in zip(_tensors(got), got.videos, strict=True) if v.status != "failed"]
    assert all(_same(a, b) for a, b in zip(_tensors(ref), kept, strict=True))
    assert db["features"].count == 5
    assert not [p for p in (tmp_path / "w2").rglob("*.tmp*") if p.is_file()]


def test_cli_workers_option_and_its_run_row(clips, tmp_path):
    from vdi_cli.testing import register_tiny_open_clip

    register_tiny_open_clip()
    good = [str(p) for p in clips if p.name.startswith("v")][:3]
    r = invoke(["extract", *good, "-b", TINY, "--fps", "2", "--workers", "2", "--json"])
    assert r.exit_code == 0, r.stderr
    assert [v["status"] for v in r.json()["videos"]] == ["extracted"] * 3
    conn = sqlite3.connect(os.environ["VDI_DB"])
    config = json.loads(conn.execute("select config from runs").fetchone()[0])
    conn.close()
    assert config["workers"] == 2
    bad = invoke(["extract", *good, "-b", TINY, "--workers", "-1"])
    assert bad.exit_code == 2 and "--workers must be 0 or more, got -1" in bad.stderr


def _children(pid: int) -> list[int]:
    """Pids whose parent is `pid` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_or_killed_extraction_leaves_no_worker_behind(tmp_path, sig):
    """Ctrl-C (to the whole process group, as a terminal sends it) stops the workers and exits
    130; SIGKILL to the parent alone: the orphaned workers notice and exit within seconds."""
    from vdi_cli.testing import register_tiny_open_clip

    folder = tmp_path / "many"
    for i in range(6):
        make_video(folder / f"v{i}.mp4", seconds=10, fps=10, size=(64, 48), seed=i)
    env = {**os.environ, "VDI_HOME": str(tmp_path / "home"), "VDI_DB": str(tmp_path / "vdi.db"),
           "VDI_PLUGINS": "", "HF_HUB_OFFLINE": "1"}
    register_tiny_open_clip()  # writes the tiny architecture's JSON under this VDI_HOME
    code = ("import sys; from vdi_cli.testing import register_tiny_open_clip; "
            "register_tiny_open_clip(); from vdi_cli.cli import run; sys.exit(run(sys.argv[1:]))")
    args = ["extract", str(folder), "-b", TINY, "--fps", "4", "--batch-size", "4",
            "--workers", "2"]
    proc = subprocess.Popen([sys.executable, "-c", code, *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    workers: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None:
        workers = _children(proc.pid)
        if len(workers) == 2 and _features(tmp_path / "vdi.db") >= 1:
            break
        time.sleep(0.1)
    assert proc.poll() is None and len(workers) == 2, proc.communicate()[1][-2000:]
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (130 if sig == signal.SIGINT else -9), err[-2000:]
    assert "Traceback" not in err
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not all(_gone(w) for w in workers):
        time.sleep(0.1)
    assert all(_gone(w) for w in workers)
    if sig == signal.SIGINT:
        assert "Interrupted." in err
        assert not [p for p in (tmp_path / "home").rglob("*.tmp*") if p.is_file()]
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, text=True,
                          capture_output=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _features(tmp_path / "vdi.db") == 6


def _features(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute("select count(*) from features").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_shared_memory_check_by_hand():
    from vdi_cli.errors import VdiError
    from vdi_cli.pipeline.extract_workers import check_shared_memory, shared_memory_needed

    # 2 workers x (2 credits + 1) batches x 32 images x 3 x 224 x 224 float32 = 110.25 MiB
    assert shared_memory_needed(2, 32, 224) == 2 * 3 * 32 * 3 * 224 * 224 * 4 == 115_605_504
    check_shared_memory(2, 32, 224, free=200 * 2**20)
    with pytest.raises(VdiError, match=r"needs about 110 MiB .* has 64 MiB free") as info:
        check_shared_memory(2, 32, 224, free=64 * 2**20)  # a container's default /dev/shm
    assert "--shm-size" in info.value.hint


def test_model_threads_leave_the_workers_their_cores():
    from vdi_cli.pipeline.extract_sources import model_threads

    assert model_threads(16, 4, cpus=16) == 12
    assert model_threads(2, 2, cpus=2) == 1 and model_threads(2, 3, cpus=2) == 1
    assert model_threads(4, 1, cpus=16) == 4  # never more than it had
