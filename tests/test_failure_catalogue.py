"""The failure catalogue: bad inputs and faults, one row each, and what vdi must do about them.

Every row is a `vdi` command, the input it makes, the exit code it must end with, a pattern the
`Error:` line must match, and what must and must not be on disk afterwards. Besides what a row
states, every row checks the promises that hold for all of them (see `_check_common`):

- no traceback and no "this is a bug" hint on stderr; an error exit prints `Error:` and `Hint:`;
- no partial file is left (nothing named `*.tmp*` / `*.partial` under the row's folder or the
  home), and the database still opens and passes SQLite's integrity check;
- a command that recorded a run row leaves it finished (`error` / `interrupted` / `ok`), never
  `running`, and an error row says what failed.

Rows run in-process through `vdi_cli.testing.invoke` unless they need a real process (signals,
concurrency, import-time faults), and rows that take more than a few seconds are marked slow so
`pytest -m "not slow"` stays quick. Add a row for every fault you handle: a class (video, query,
annotations, options, checkpoint, database, plugin, environment, signal, concurrency), a command,
and a `make` that builds its input under the row's folder.

Placeholders in a row's arguments: `{tmp}` the row's own folder, `{video}` a good 20 s mp4,
`{ckpt}` a trained tiny checkpoint folder, `{run}` its training run id, `{data}` a generated
synthetic dataset (train.json, videos/), `{db}` the row's database file.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from vdi_cli.hookspecs import hookimpl  # noqa: E402
from vdi_cli.testing import (  # noqa: E402
    invoke,
    make_video,
    plugin_host,
    register_tiny_open_clip,
    run_vdi,
)

TINY = "open_clip:vdi-tiny"
SMALL_HEAD = {"hidden_size": 32, "joint_size": 16, "conv_layers": 2}
PARTIAL = ("*.tmp*", "*.partial", "*.part")
FINISHED = {"ok", "error", "interrupted"}


@dataclass(frozen=True)
class Row:
    """One catalogue entry (see the module docstring)."""

    id: str
    kind: str  # video | query | annotations | options | checkpoint | database | plugin |
    #            environment | signal | concurrency
    args: tuple[str, ...]
    exit: int = 1
    error: str | None = ""  # regex searched in the `Error:` line; None: the command succeeds
    make: Callable[[Path, dict[str, Any]], None] | None = None
    stderr: tuple[str, ...] = ()  # more regexes stderr must match (warnings, counts)
    must_exist: tuple[str, ...] = ()  # globs under {tmp}
    must_not_exist: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    process: bool = False  # run in a subprocess
    slow: bool = False
    after: Callable[[Path, dict[str, Any], Any], None] | None = None  # extra checks


# --- input makers ------------------------------------------------------------------------------

def _write(name: str, content: bytes | str) -> Callable[[Path, dict[str, Any]], None]:
    def make(tmp: Path, world: dict[str, Any]) -> None:
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
    return make


def _truncated(name: str, keep: float) -> Callable[[Path, dict[str, Any]], None]:
    """The good video cut to the first `keep` fraction of its bytes (a download cut short)."""
    def make(tmp: Path, world: dict[str, Any]) -> None:
        data = Path(world["video"]).read_bytes()
        (tmp / name).write_bytes(data[: int(len(data) * keep)])
    return make


def _audio_only(tmp: Path, world: dict[str, Any]) -> None:
    make_video(tmp / "audio.m4a.mp4", seconds=1, audio=True, with_video=False)


def _one_frame(tmp: Path, world: dict[str, Any]) -> None:
    make_video(tmp / "one.mp4", seconds=0.1, fps=10, size=(32, 32))


def _folder(tmp: Path, world: dict[str, Any]) -> None:
    (tmp / "clips.mp4").mkdir()


def _empty_folder(tmp: Path, world: dict[str, Any]) -> None:
    (tmp / "empty").mkdir()


def _random_bytes(tmp: Path, world: dict[str, Any]) -> None:
    import numpy as np

    (tmp / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(20_000))


RET = ("retrieve",)
CK = ("--checkpoint", "{ckpt}")

ROWS: list[Row] = [
    # --- video files ---------------------------------------------------------------------------
    Row("video-missing", "video", (*RET, "{tmp}/nope.mp4", "a red square", *CK),
        error=r"no such video file"),
    Row("video-missing-unicode", "video", (*RET, "{tmp}/vidéo ☃.mp4", "a red square", *CK),
        error=r"vidéo ☃\.mp4.*no such video file"),
    Row("video-empty-file", "video", (*RET, "{tmp}/empty.mp4", "a red square", *CK),
        make=_write("empty.mp4", b""), error=r"empty\.mp4"),
    Row("video-random-bytes", "video", (*RET, "{tmp}/noise.mp4", "a red square", *CK),
        make=_random_bytes, error=r"noise\.mp4"),
    Row("video-text-file", "video", (*RET, "{tmp}/notes.mp4", "a red square", *CK),
        make=_write("notes.mp4", "these are my notes, not a video\n" * 50), error=r"notes\.mp4"),
    Row("video-audio-only", "video", (*RET, "{tmp}/audio.m4a.mp4", "a red square", *CK),
        make=_audio_only, error=r"audio but no video stream"),
    Row("video-truncated-header", "video", (*RET, "{tmp}/cut.mp4", "a red square", *CK),
        make=_truncated("cut.mp4", 0.02), error=r"cut\.mp4"),
    Row("video-folder-without-videos", "video", (*RET, "{tmp}/empty", "a red square", *CK),
        make=_empty_folder, error=r"no video files in folder"),
    Row("video-folder-named-mp4", "video", (*RET, "{tmp}/clips.mp4", "a red square", *CK),
        make=_folder, error=r"no video files in folder"),
    Row("video-one-frame", "video", (*RET, "{tmp}/one.mp4", "a red square", *CK, "--json"),
        make=_one_frame, exit=0, error=None),
    # --- queries -------------------------------------------------------------------------------
    Row("query-none", "query", (*RET, "{video}", *CK), error=r"no query given"),
    Row("query-empty", "query", (*RET, "{video}", "", *CK), error=r"query 1 is empty"),
    Row("query-whitespace", "query", (*RET, "{video}", " \t\n ", *CK),
        error=r"query 1 is empty"),
    Row("query-second-empty", "query", (*RET, "{video}", "a red square", "  ", *CK),
        error=r"query 2 is empty"),
    Row("query-300-words", "query", (*RET, "{video}", " ".join(["square"] * 300), *CK, "--json"),
        exit=0, error=None),
    Row("query-256-bytes-is-not-a-path", "query",
        (*RET, "{video}", "a red square moves " * 14, *CK, "--json"), exit=0, error=None),
    Row("query-nul-byte-text", "query", (*RET, "{video}", "a red\x01square.mp4", *CK, "--json"),
        exit=0, error=None),
    Row("query-emoji", "query", (*RET, "{video}", "🟥 moves ➡️ fast 🚀", *CK, "--json"),
        exit=0, error=None),
    # --- options -------------------------------------------------------------------------------
    Row("option-unknown-backbone", "options",
        (*RET, "{video}", "a red square", "--training-free", "--backbone", "tiny-shape"),
        error=r"unknown backbone 'tiny-shape'", stderr=(r"tiny-shapes",)),
    Row("option-overlap-one", "options", (*RET, "{video}", "a red square", *CK, "--overlap", "1"),
        error=r"--overlap must be in \[0, 1\)"),
    Row("option-bad-format", "options", (*RET, "{video}", "a red square", *CK, "-f", "xml"),
        exit=2, error=r"xml"),
    # --- checkpoints ---------------------------------------------------------------------------
    Row("checkpoint-missing", "checkpoint",
        (*RET, "{video}", "a red square", "--checkpoint", "{tmp}/nothing"), error=r"nothing"),
    Row("checkpoint-empty-folder", "checkpoint",
        (*RET, "{video}", "a red square", "--checkpoint", "{tmp}/empty"),
        make=_empty_folder, error=r"empty"),
    Row("checkpoint-unknown-run", "checkpoint", (*RET, "{video}", "a red square", "--run", "999"),
        error=r"999"),
]


# --- TRAIN: training runs, resume, checkpoints, run storage -----------------------------------

def _train_in_row(tmp: Path, world: dict[str, Any], db_name: str = "vdi.db", **kw: Any
                  ) -> dict[str, Any]:
    """Train a tiny run into the row's own database (or `db_name` beside it) and home (run id
    1); returns its summary."""
    from vdi_cli.pipeline.train_config import TrainConfig
    from vdi_cli.pipeline.train_run import run_training
    from vdi_cli.store import open_db, run_context

    data = Path(world["data"])
    values = dict(dataset="mmn-json", annotations=str(data / "train.json"),
                  video_dir=str(data / "videos"), backbone=TINY, fps=1, epochs=1, batch_size=2,
                  lr=1e-3, patience=0, freeze_text_epochs=0, head_options=SMALL_HEAD,
                  objectives=[])
    values.update(kw)
    config = TrainConfig(**values)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VDI_HOME", str(tmp / "home"))
        mp.setenv("VDI_DB", str(tmp / db_name))
        db = open_db()
        with run_context(db, "train", config.resolved().model_dump()) as run:
            summary = run_training(config, db, run, quiet=True, show_progress=False)
        db.conn.close()
    return summary


def _trained(**kw: Any) -> Callable[[Path, dict[str, Any]], None]:
    def make(tmp: Path, world: dict[str, Any]) -> None:
        _train_in_row(tmp, world, **kw)
    return make


def _db(tmp: Path) -> Any:
    from vdi_cli.store import open_db

    return open_db(tmp / "vdi.db")


def _row_run_dir(tmp: Path, run_id: int) -> Path:
    """Run `run_id`'s checkpoint folder in the row's database (inside its own artifact folder)."""
    from vdi_cli.pipeline.train import run_folder

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VDI_HOME", str(tmp / "home"))
        return run_folder(_db(tmp), run_id)


def _refused_up_front(tmp: Path, world: dict[str, Any], result: Any) -> None:
    """No second run row, no feature of another backbone extracted."""
    db = _db(tmp)
    assert db["runs"].count == 1
    assert {r["backbone"] for r in db["features"].rows} == {TINY}


def _best_agrees(tmp: Path, world: dict[str, Any], result: Any) -> None:
    """The resumed run's best epoch, its best row and the file that row names agree."""
    from vdi_cli.checkpoints import sha256_file

    out = _json(result[1])
    best = [r for r in _db(tmp)["checkpoints"].rows_where("run_id = ?", [out["run_id"]])
            if r["best"]]
    assert len(best) == 1 and best[0]["epoch"] == out["best_epoch"], best
    assert best[0]["path"] == out["best_checkpoint"]
    assert Path(out["best_checkpoint"]).name == f"epoch-{out['best_epoch']:03d}"
    assert sha256_file(Path(best[0]["path"]) / "model.safetensors") == best[0]["sha256"]


class _StopAfter:
    """A logger plugin that presses Ctrl-C once epoch `epoch`'s checkpoint is saved."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def track_event(self, event: Any) -> None:
        if event.kind == "checkpoint_saved" and event.payload["epoch"] == self.epoch:
            raise KeyboardInterrupt

    track_event = hookimpl(track_event)


def _killed_after_first_epoch(tmp: Path, world: dict[str, Any], **kw: Any) -> None:
    """A 3-epoch run with validation (on the training file; R@1,IoU=0.7 selects the best),
    stopped right after epoch 1 (Ctrl-C; its row finished `interrupted`)."""
    with plugin_host(_StopAfter(1)), pytest.raises(KeyboardInterrupt):
        _train_in_row(tmp, world, **{"epochs": 3, "val": str(Path(world["data"]) / "train.json"),
                                     "select_metric": "R@1,IoU=0.7", **kw})


def _killed_while_saving(tmp: Path, world: dict[str, Any]) -> None:
    """A SIGKILL inside `save_checkpoint` of epoch 2: its `epoch-002.tmp/` folder stays, with
    the safetensors file half written (here the run stopped after epoch 1 and the folder is
    written as the kill leaves it; the row is left finished)."""
    import numpy as np

    _killed_after_first_epoch(tmp, world, val=None, epochs=2)
    stale = _row_run_dir(tmp, 1) / "epoch-002.tmp"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(np.random.default_rng(1).bytes(300_000))


def _no_nan_and_readable(tmp: Path, world: dict[str, Any], result: Any) -> None:
    """Without --val the epoch table has no validation columns (was: columns of nan), and the
    checkpoint files are written with the umask's mode (was: 0600 for the weights)."""
    import os

    out = result[1]
    assert "nan" not in out and "val" not in out.splitlines()[0], out
    mask = os.umask(0o022)
    os.umask(mask)
    files = list(_row_run_dir(tmp, 1).glob("epoch-001/*"))
    assert {f.name for f in files} >= {"model.safetensors", "config.json"}
    assert {f.stat().st_mode & 0o777 for f in files} == {0o666 & ~mask}


def _ckpt_copy(edit: Callable[[Path], None]) -> Callable[[Path, dict[str, Any]], None]:
    """The world's checkpoint copied to {tmp}/ckpt, then changed by `edit(folder)`."""
    def make(tmp: Path, world: dict[str, Any]) -> None:
        import shutil

        shutil.copytree(world["ckpt"], tmp / "ckpt")
        edit(tmp / "ckpt")
    return make


def _edit_config(**changes: Any) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        for key, value in changes.items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value
        (folder / "config.json").write_text(json.dumps(config))
    return edit


def _truncate_weights(folder: Path) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 3])


_SHINY = {"id": "shiny-mmn", "config": SMALL_HEAD}
_SHINY_FROM = {"head": {"id": "shiny-mmn", "plugin": "shiny", "distribution": "vdi-shiny-heads",
                        "version": "1.2.0"}}


def _other_database_first(tmp: Path, world: dict[str, Any]) -> None:
    """Another database under the same home has already trained its run 1."""
    summary = _train_in_row(tmp, world, db_name="other.db", seed=7)
    (tmp / "other.json").write_text(json.dumps(summary, default=str))


def _other_database_intact(tmp: Path, world: dict[str, Any], result: Any) -> None:
    from vdi_cli.checkpoints import sha256_file
    from vdi_cli.store import open_db

    mine = _json(result[1])
    other = json.loads((tmp / "other.json").read_text())
    assert mine["run_id"] == 1 and mine["best_checkpoint"] != other["best_checkpoint"]
    row = next(open_db(tmp / "other.db")["checkpoints"].rows_where("run_id = 1"))
    assert row["path"] == other["best_checkpoint"]
    assert sha256_file(Path(row["path"]) / "model.safetensors") == row["sha256"]


def _weights_overwritten(tmp: Path, world: dict[str, Any]) -> None:
    """The row's run 1 whose weights file was since replaced by another run's (valid) one."""
    import shutil

    summary = _train_in_row(tmp, world, seed=7)  # the world's run has the default seed
    shutil.copy(Path(world["ckpt"]) / "model.safetensors",
                Path(summary["best_checkpoint"]) / "model.safetensors")


def _stale_gone(tmp: Path, world: dict[str, Any], result: Any) -> None:
    assert not list(_row_run_dir(tmp, 1).glob("*.tmp")), list(_row_run_dir(tmp, 1).iterdir())
    assert (_row_run_dir(tmp, 1) / "epoch-001" / "model.safetensors").is_file()


ROWS_TRAIN: list[Row] = [
    Row("resume-changed-options", "options",
        ("train", "--resume", "1", "--epochs", "2", "--lr", "0.5", "-H", "hidden_size=64",
         "--backbone", "tiny-shapes"),
        make=_trained(), after=_refused_up_front,
        error=r"--resume 1 continues with the stored options, and these differ: backbone: "
        r"'open_clip:vdi-tiny' -> 'tiny-shapes'; head_options\.hidden_size: 32 -> 64; "
        r"lr: 0\.001 -> 0\.5"),
    Row("resume-nothing-left", "options", ("train", "--resume", "1"), make=_trained(),
        after=_refused_up_front, error=r"run 1 has already trained 1 of 1 epochs"),
    Row("resume-not-a-training-run", "options", ("train", "--resume", "1"),
        make=lambda tmp, world: _db(tmp)["runs"].insert(
            {"command": "extract", "status": "ok", "started_at": "2026-01-01"}),
        error=r"run 1 was made by `vdi extract`.*nothing to resume"),
    Row("resume-unknown-run", "options", ("train", "--resume", "7"), error=r"no run with id 7"),
    Row("resume-with-the-stored-options", "options",
        ("train", "--resume", "1", "--epochs", "5", "--lr", "0.001", "--json"),
        make=_killed_after_first_epoch, exit=0, error=None, after=_best_agrees, slow=True),
    Row("train-without-val", "options",
        ("train", "--dataset", "mmn-json", "--annotations", "{data}/train.json", "--video-dir",
         "{data}/videos", "--backbone", TINY, "--fps", "1", "--epochs", "1", "--batch-size", "2",
         "--no-objective", "-H", "hidden_size=32", "-H", "joint_size=16", "-H", "conv_layers=2"),
        exit=0, error=None, after=_no_nan_and_readable),
    Row("checkpoint-head-plugin-missing", "checkpoint",
        (*RET, "{video}", "a red square", "--checkpoint", "{tmp}/ckpt"),
        make=_ckpt_copy(_edit_config(head=_SHINY, components=_SHINY_FROM)),
        error=r"the checkpoint's head 'shiny-mmn' is not installed: it was provided by plugin "
        r"'shiny' of the distribution 'vdi-shiny-heads 1\.2\.0'",
        stderr=(r"Hint: install vdi-shiny-heads==1\.2\.0",)),
    Row("checkpoint-head-plugin-missing-unrecorded", "checkpoint",
        ("eval", "--checkpoint", "{tmp}/ckpt", "--annotations", "{data}/train.json",
         "--format", "mmn-json", "--video-dir", "{data}/videos"),
        make=_ckpt_copy(_edit_config(head=_SHINY, components=None)),
        error=r"head 'shiny-mmn' is not installed \(the checkpoint does not record which plugin"),
    Row("checkpoint-old-format-loads", "checkpoint",
        (*RET, "{video}", "a red square", "--checkpoint", "{tmp}/ckpt", "--json"),
        make=_ckpt_copy(_edit_config(components=None, text_tensors=None)), exit=0, error=None),
    Row("checkpoint-truncated-weights", "checkpoint",
        (*RET, "{video}", "a red square", "--checkpoint", "{tmp}/ckpt"),
        make=_ckpt_copy(_truncate_weights), error=r"model\.safetensors"),
    Row("checkpoint-config-corrupt", "checkpoint",
        (*RET, "{video}", "a red square", "--checkpoint", "{tmp}/ckpt"),
        make=_ckpt_copy(lambda f: (f / "config.json").write_text('{"format": 1, "backb')),
        error=r"config\.json.*corrupt"),
    Row("checkpoint-other-backbone", "checkpoint",
        (*RET, "{video}", "a red square", *CK, "--backbone", "tiny-shapes"),
        error=r"trained with backbone 'open_clip:vdi-tiny', not 'tiny-shapes'"),
    Row("two-databases-one-home", "database",
        ("train", "--dataset", "mmn-json", "--annotations", "{data}/train.json", "--video-dir",
         "{data}/videos", "--backbone", TINY, "--fps", "1", "--epochs", "1", "--batch-size", "2",
         "--no-objective", "-H", "hidden_size=32", "-H", "joint_size=16", "-H", "conv_layers=2",
         "--json"),
        make=_other_database_first, exit=0, error=None, after=_other_database_intact,
        slow=True),
    Row("checkpoint-weights-overwritten", "checkpoint",
        (*RET, "{video}", "a red square", "--run", "1"), make=_weights_overwritten,
        error=r"model\.safetensors' are not the ones the database recorded \(sha256 "),
    Row("stale-checkpoint-tmp-resume", "signal", ("train", "--resume", "1", "--json"),
        make=_killed_while_saving, exit=0, error=None, after=_stale_gone, slow=True,
        stderr=(r"removed 1 unfinished checkpoint folder\(s\) of run 1.*epoch-002\.tmp",)),
    Row("stale-checkpoint-tmp-gc", "signal", ("runs", "gc", "--json"),
        make=_killed_while_saving, exit=0, error=None, slow=True,
        after=lambda tmp, world, result: (
            _stale_gone(tmp, world, result),
            _json(result[1])["temporaries"] == [str(_row_run_dir(tmp, 1) / "epoch-002.tmp")]
            or pytest.fail(result[1]))),
    Row("gc-empty-database", "database", ("runs", "gc"), exit=0, error=None,
        after=lambda tmp, world, result: "removed 0 items (0.0 MB)" in result[1]
        or pytest.fail(result[1])),
    Row("stale-checkpoint-tmp-prune", "signal", ("runs", "prune", "1"),
        make=_killed_while_saving, exit=0, error=None, slow=True,
        after=lambda tmp, world, result: (
            _stale_gone(tmp, world, result),
            re.search(r"run 1: removed epochs none and unfinished epoch-002\.tmp \(0\.3 MB\)",
                      result[1]) or pytest.fail(result[1]))),
]


ROWS += ROWS_TRAIN

# --- the shared world: one good video, one trained tiny checkpoint, one generated dataset ----

@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Any]:
    from vdi_cli import plugins
    from vdi_cli.pipeline.train_config import TrainConfig
    from vdi_cli.pipeline.train_run import run_training
    from vdi_cli.store import open_db, run_context
    from vdi_plugins.synthetic.generate import generate

    root = tmp_path_factory.mktemp("catalogue")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VDI_HOME", str(root / "home"))
        mp.setenv("VDI_DB", str(root / "world.db"))
        mp.setenv("VDI_PLUGINS", "")
        plugins.reset_host()
        register_tiny_open_clip()
        generate(root / "data", videos=4, seed=5, test_videos=0, fps=2, size=32)
        config = TrainConfig(
            dataset="mmn-json", annotations=str(root / "data" / "train.json"),
            video_dir=str(root / "data" / "videos"), backbone=TINY, fps=1, epochs=1,
            batch_size=2, lr=1e-3, patience=0, freeze_text_epochs=0, head_options=SMALL_HEAD,
            objectives=[])
        db = open_db()
        with run_context(db, "train", {}) as run:
            summary = run_training(config, db, run, quiet=True, show_progress=False)
        video = make_video(root / "clip.mp4", seconds=20, fps=2, size=(48, 32))
        plugins.reset_host()
    return {"root": root, "video": str(video), "ckpt": summary["best_checkpoint"],
            "run": str(run.id), "data": str(root / "data"), "home": root / "home",
            "db": str(root / "world.db")}


def _fill(arg: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), arg)


def _partial_files(*folders: Path) -> list[Path]:
    found: list[Path] = []
    for folder in folders:
        if folder.exists():
            for pattern in PARTIAL:
                found += [p for p in folder.rglob(pattern)
                          if p.is_file() or (p.is_dir() and any(p.iterdir()))]
    return found


def _check_common(row: Row, code: int, stderr: str, tmp: Path, home: Path, db: Path) -> None:
    assert "Traceback" not in stderr, stderr
    assert "this is a bug" not in stderr, stderr
    assert code == row.exit, f"exit {code}, expected {row.exit}\n{stderr}"
    if row.error is not None and row.exit != 0:
        lines = [line for line in stderr.splitlines() if line.startswith("Error: ")]
        assert lines, stderr
        assert re.search(row.error, lines[0]), (row.error, lines[0])
        if row.exit == 1:
            assert "Hint: " in stderr, stderr
    for pattern in row.stderr:
        assert re.search(pattern, stderr), (pattern, stderr)
    assert not _partial_files(tmp, home), _partial_files(tmp, home)
    if db.exists():
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
            tables = {r[0] for r in conn.execute("select name from sqlite_master")}
            if "runs" in tables:
                for status, error in conn.execute("select status, error from runs"):
                    assert status in FINISHED, status
                    if status == "error":
                        assert error, "an error row must say what failed"
        finally:
            conn.close()


def run_row(row: Row, world: dict[str, Any], tmp: Path) -> tuple[int, str, str]:
    """Make the row's input, run its command against a database and home of its own (the
    world's checkpoint and dataset are read, never written), check it; (exit, stdout, stderr)."""
    home, db = tmp / "home", tmp / "vdi.db"
    values = {**{k: str(v) for k, v in world.items()}, "tmp": str(tmp), "db": str(db)}
    if row.make is not None:
        row.make(tmp, world)
    args = [_fill(a, values) for a in row.args]
    env = {"VDI_HOME": str(home), "VDI_DB": str(db), "VDI_PLUGINS": "",
           **{k: _fill(v, values) for k, v in row.env.items()}}
    if row.process:
        proc = run_vdi(args, env=env)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    else:
        result = invoke(args, env=env)
        code, out, err = result.exit_code, result.stdout, result.stderr
    _check_common(row, code, err, tmp, home, db)
    for pattern in row.must_exist:
        assert list(tmp.glob(pattern)), f"{pattern} should exist"
    for pattern in row.must_not_exist:
        assert not list(tmp.glob(pattern)), f"{pattern} should not exist"
    if row.after is not None:
        row.after(tmp, world, (code, out, err))
    return code, out, err


def _params() -> list[Any]:
    return [pytest.param(row, id=row.id, marks=[pytest.mark.slow] if row.slow else [])
            for row in ROWS]


@pytest.mark.parametrize("row", _params())
def test_row(row: Row, world: dict[str, Any], tmp_path: Path, monkeypatch) -> None:
    from vdi_cli import plugins

    register_tiny_open_clip()
    monkeypatch.chdir(tmp_path)
    run_row(row, world, tmp_path)
    plugins.reset_host()


def test_catalogue_ids_are_unique_and_classes_known() -> None:
    kinds = {"video", "query", "annotations", "options", "checkpoint", "database", "plugin",
             "environment", "signal", "concurrency"}
    ids = [row.id for row in ROWS]
    assert len(ids) == len(set(ids))
    assert {row.kind for row in ROWS} <= kinds


def test_common_checks_catch_what_they_promise(tmp_path: Path) -> None:
    """The shared checks themselves fail on a traceback, a partial file and a running row."""
    row = Row("self-check", "video", ("x",), error=r"boom")
    home, db = tmp_path / "home", tmp_path / "vdi.db"
    with pytest.raises(AssertionError):
        _check_common(row, 1, "Traceback (most recent call last)\nError: boom\nHint: x",
                      tmp_path, home, db)
    (tmp_path / "video.tmp.mp4").write_bytes(b"x")
    with pytest.raises(AssertionError):
        _check_common(row, 1, "Error: boom\nHint: x", tmp_path, home, db)
    (tmp_path / "video.tmp.mp4").unlink()
    conn = sqlite3.connect(db)
    conn.execute("create table runs (id integer primary key, status text, error text)")
    conn.execute("insert into runs (status, error) values ('running', null)")
    conn.commit()
    conn.close()
    with pytest.raises(AssertionError):
        _check_common(row, 1, "Error: boom\nHint: x", tmp_path, home, db)


def _json(out: str) -> Any:
    return json.loads(out)
