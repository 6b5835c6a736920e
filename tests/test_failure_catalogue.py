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
synthetic dataset (train.json, videos/), `{many}` a folder of 12 videos of 20 s, `{db}` the
row's database file.

Signal rows start the command in a process, wait until it is part-way (`ready`), send the
signal, check how it ended, then run `then` (the rerun or resume a user would run) and check that
the result equals an uninterrupted run's.
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
    damage_video,
    invoke,
    make_video,
    plugin_host,
    register_tiny_open_clip,
    run_vdi,
    train_tiny_checkpoint,
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
    signal: int | None = None  # sent to the (subprocess) command once `ready(tmp)` is true
    ready: Callable[[Path], bool] | None = None
    then: tuple[str, ...] = ()  # a command run afterwards (a rerun, a resume): must exit 0;
    #                             the disk and database checks apply after it
    # runs after the command, before any check: waits for processes that `make` started
    settle: Callable[[Path, dict[str, Any]], None] | None = None


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


def _damaged(tmp: Path, world: dict[str, Any]) -> None:
    damage_video(world["video"], tmp / "flip.mp4", packets=[20])


def _cut_mkv(keep: float) -> Callable[[Path, dict[str, Any]], None]:
    def make(tmp: Path, world: dict[str, Any]) -> None:
        full = make_video(tmp / "full.mkv", seconds=20, fps=2, size=(48, 32))
        data = full.read_bytes()
        full.unlink()
        (tmp / "cut.mkv").write_bytes(data[: int(len(data) * keep)])
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


MANY = 12  # videos of the signal rows' extraction: enough to still be running when signalled


def _features_of(home: Path, db: Path) -> dict[str, Any]:
    """{video file name: global features} of every cached video of a store."""
    from vdi_cli.features import load_features
    from vdi_cli.store import open_db

    store = open_db(db)
    out = {}
    for row in store.query("select v.sha256, v.path from videos v join features f "
                           "on f.video_id = v.id"):
        g, _, _ = load_features(store, row["sha256"], "tiny-shapes", patches=False)
        out[Path(row["path"]).name] = g
    return out


_REFERENCE: dict[str, Any] = {}


def _reference_features(world: dict[str, Any]) -> dict[str, Any]:
    """The signal rows' videos extracted once, uninterrupted (computed on first use)."""
    if not _REFERENCE:
        ref = Path(world["root"]) / "reference"
        env = {"VDI_HOME": str(ref / "home"), "VDI_DB": str(ref / "vdi.db")}
        done = run_vdi(["extract", world["many"], "-b", "tiny-shapes", "--fps", "4"], env=env)
        assert done.returncode == 0, done.stderr
        _REFERENCE.update(_features_of(ref / "home", ref / "vdi.db"))
    return _REFERENCE


def _extract_completes(first_status: str) -> Callable[[Path, dict[str, Any], Any], None]:
    """After an interrupted extract and its rerun: every video cached once, features equal to
    an uninterrupted run's, the interrupted run's row says how it ended."""
    def check(tmp: Path, world: dict[str, Any], result: Any) -> None:
        got = _features_of(tmp / "home", tmp / "vdi.db")
        ref = _reference_features(world)
        assert sorted(got) == sorted(ref) and len(got) == MANY
        assert [name for name in ref if not torch.equal(got[name], ref[name])] == []
        conn = sqlite3.connect(tmp / "vdi.db")
        status = conn.execute("select status from runs order by id limit 1").fetchone()[0]
        assert conn.execute("select count(*) from features").fetchone()[0] == MANY
        conn.close()
        assert status == first_status
    return check


def _has_features(n: int) -> Callable[[Path], bool]:
    return lambda tmp: _rows(tmp / "vdi.db", "features") >= n


EXTRACT_MANY = ("extract", "{many}", "-b", "tiny-shapes", "--fps", "4")


TRAIN_SIG = ("train", "--dataset", "mmn-json", "--annotations", "{root}/train24/train.json",
             "--video-dir", "{root}/train24/videos", "--backbone", "tiny-shapes", "--fps", "2",
             "--epochs", "4", "--batch-size", "2", "--no-objective", "-H", "hidden_size=32",
             "-H", "conv_layers=2", "-o", "patience=0", "--seed", "3")
_TRAINED: dict[str, Any] = {}


def _train_data(tmp: Path, world: dict[str, Any]) -> None:
    """24 synthetic videos for the training signal rows (made once, in the world's folder)."""
    from vdi_plugins.synthetic.generate import generate

    target = Path(world["root"]) / "train24"
    if not (target / "train.json").exists():
        generate(target, videos=24, seed=7, test_videos=0, fps=2, size=32)


def _newest_weights(home: Path, db: Path) -> dict[str, Any]:
    from vdi_cli.checkpoints import load_tensors

    conn = sqlite3.connect(db)
    path = conn.execute("select path from checkpoints order by run_id desc, epoch desc "
                        "limit 1").fetchone()[0]
    conn.close()
    return load_tensors(path)


def _train_resumes_to_the_uninterrupted_weights(first_status: str
                                                ) -> Callable[[Path, dict[str, Any], Any], None]:
    """After a signalled `vdi train` and `vdi train --resume 1`: the first run's row says how
    it ended, and the resumed run's last weights equal an uninterrupted run's, tensor for
    tensor."""
    def check(tmp: Path, world: dict[str, Any], result: Any) -> None:
        if not _TRAINED:
            ref = Path(world["root"]) / "train-reference"
            env = {"VDI_HOME": str(ref / "home"), "VDI_DB": str(ref / "vdi.db")}
            values = {k: str(v) for k, v in world.items()}
            done = run_vdi([_fill(a, values) for a in TRAIN_SIG], env=env)
            assert done.returncode == 0, done.stderr[-2000:]
            _TRAINED.update(_newest_weights(ref / "home", ref / "vdi.db"))
        got = _newest_weights(tmp / "home", tmp / "vdi.db")
        assert sorted(got) == sorted(_TRAINED)
        assert [k for k in got if not torch.equal(got[k], _TRAINED[k])] == []
        conn = sqlite3.connect(tmp / "vdi.db")
        rows = conn.execute("select status from runs order by id").fetchall()
        epochs = conn.execute("select max(epoch) from checkpoints").fetchone()[0]
        conn.close()
        assert rows[0][0] == first_status and rows[-1][0] == "ok" and epochs == 4
    return check


def _epochs_done(n: int) -> Callable[[Path], bool]:
    """True once a checkpoint of epoch n or later is recorded (older ones may be pruned)."""
    def ready(tmp: Path) -> bool:
        db = tmp / "vdi.db"
        if not db.exists():
            return False
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
            try:
                return (conn.execute("select max(epoch) from checkpoints").fetchone()[0]
                        or 0) >= n
            finally:
                conn.close()
        except sqlite3.Error:
            return False
    return ready


def _signal_rows() -> list[Row]:
    """SIGINT, SIGTERM and SIGKILL part-way through `vdi extract` (then the rerun) and through
    `vdi train` (then `vdi train --resume 1`)."""
    import signal

    rows = []
    for sig, code, says, status in ((signal.SIGINT, 130, r"Interrupted\.", "interrupted"),
                                    (signal.SIGTERM, 143, r"Stopped by SIGTERM\.",
                                     "interrupted"),
                                    (signal.SIGKILL, -9, "", "running")):
        name, said = sig.name.lower(), (says,) if says else ()
        rows.append(Row(f"signal-{name}-during-extract-then-rerun", "signal", EXTRACT_MANY,
                        exit=code, error=None, stderr=said, signal=sig, ready=_has_features(2),
                        then=EXTRACT_MANY, slow=True, after=_extract_completes(status)))
        rows.append(Row(f"signal-{name}-during-train-then-resume", "signal", TRAIN_SIG,
                        exit=code, error=None, stderr=said, make=_train_data, signal=sig,
                        ready=_epochs_done(2), then=("train", "--resume", "1"), slow=True,
                        after=_train_resumes_to_the_uninterrupted_weights(status)))
    return rows


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
    Row("video-one-damaged-packet", "video", (*RET, "{tmp}/flip.mp4", "a red square", *CK),
        make=_damaged, exit=0, error=None,
        stderr=(r"Warning: .*flip\.mp4: 1 of 40 frames could not be decoded \(1 damaged",)),
    Row("video-extract-damaged-packet", "video", ("extract", "{tmp}/flip.mp4", "-b", TINY),
        make=_damaged, exit=0, error=None, stderr=(r"1 of 40 frames could not be decoded",)),
    Row("video-download-cut-short", "video", (*RET, "{tmp}/cut.mkv", "a red square", *CK),
        make=_cut_mkv(0.7), exit=0, error=None,
        stderr=(r"Warning: .*cut\.mkv: \d+ of 40 frames .*the stream ends early",)),
    Row("video-cut-to-a-stub", "video", (*RET, "{tmp}/cut.mkv", "a red square", *CK),
        make=_cut_mkv(0.25), error=r"only \d+ of 40 frames could be decoded"),
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


ROWS += _signal_rows()


# --- OPTIONS: option keys and values, early checks, plugins ------------------------------------

TRAIN = ("train", "--dataset", "mmn-json", "--annotations", "{data}/train.json", "--video-dir",
         "{data}/videos", "--backbone", TINY, "--epochs", "1", "--batch-size", "2")
# A tripwire: weights that do not exist. Were the bad option noticed only after the backbone is
# resolved or loaded, the error would name these weights instead of the option.
NO_WEIGHTS = ("--weights", "{tmp}/absent.safetensors")
FREE = ("--training-free", "--backbone", TINY, *NO_WEIGHTS)
EXTRACT = ("extract", "{video}", "--backbone", TINY)


def _count(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in conn.execute("select name from sqlite_master")}
        return conn.execute(f"select count(*) from {table}").fetchone()[0] if table in tables \
            else 0
    finally:
        conn.close()


def _nothing_loaded(tmp: Path, world: dict[str, Any], result: Any) -> None:
    """The error came before any feature was extracted (no features rows, no feature files)."""
    assert _count(tmp / "vdi.db", "features") == 0
    assert not list((tmp / "home").rglob("*.safetensors"))


def _before_the_run(tmp: Path, world: dict[str, Any], result: Any) -> None:
    """Checked while reading the arguments: no run row (the model loads only inside a run)."""
    _nothing_loaded(tmp, world, result)
    assert _count(tmp / "vdi.db", "runs") == 0


def _no_others_claimed(tmp: Path, world: dict[str, Any], result: Any) -> None:
    assert "the others were extracted" not in result[2]
    assert "Hint: no video has features" in result[2]


def _site(*plugins: tuple[str, str, str]) -> Callable[[Path, dict[str, Any]], None]:
    """Installed-looking third-party distributions under {tmp}/site: (name, module, body)."""
    def make(tmp: Path, world: dict[str, Any]) -> None:
        import textwrap

        root = tmp / "site"
        root.mkdir()
        for name, module, body in plugins:
            (root / f"{module}.py").write_text(textwrap.dedent(body), encoding="utf-8")
            info = root / f"{name.replace('-', '_')}-1.0.dist-info"
            info.mkdir()
            (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\n"
                                           "Version: 1.0\n", encoding="utf-8")
            (info / "entry_points.txt").write_text(f"[vdi]\n{module} = {module}\n",
                                                  encoding="utf-8")
    return make


def _path_env(**extra: str) -> dict[str, str]:
    """{tmp}/site ahead of this checkout's own path (the subprocess must run this vdi)."""
    import os

    rest = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": "{tmp}/site" + (os.pathsep + rest if rest else ""), **extra}


BROKEN = ("broken-vdi-plugin", "broken_vdi_plugin", "raise ImportError('needs libfoo')\n")
RAISES_IN_HOOK = ("hook-raises", "hook_raises", """
    from vdi_cli.hookspecs import hookimpl

    @hookimpl
    def register_heads(register):
        register("early-head", "hook_raises:build")
        raise RuntimeError("registry down")
    """)
BAD_ID = ("bad-id-plugin", "bad_id_plugin", """
    from vdi_cli.hookspecs import hookimpl

    @hookimpl
    def register_heads(register):
        register("Bad_Head", "bad_id_plugin:build")
        register("fine-head", "bad_id_plugin:build")
    """)
# "aaa-" sorts before "vdi": the built-in must keep the id even so.
SPACY_TWIN = ("aaa-spacy", "aaa_spacy", """
    from vdi_cli.hookspecs import hookimpl

    @hookimpl
    def register_query_parsers(register):
        register("spacy", "aaa_spacy:build", description="a third-party spacy")
        register("aaa-parser", "aaa_spacy:build", description="its own parser")
    """)
GOOD = ("good-vdi-plugin", "good_vdi_plugin", """
    from vdi_cli.hookspecs import hookimpl

    @hookimpl
    def register_heads(register):
        register("good-head", "good_vdi_plugin:build")
    """)


def _listed(**want: Any) -> Callable[[Path, dict[str, Any], Any], None]:
    def after(tmp: Path, world: dict[str, Any], result: Any) -> None:
        items = {c["id"]: c for c in json.loads(result[1])}
        for cid, fields in want.items():
            cid = cid.replace("_", "-")
            if fields is None:
                assert cid not in items, cid
            else:
                assert items[cid] == {**items[cid], **fields}, items[cid]
    return after


def _plugins_json(**status: str) -> Callable[[Path, dict[str, Any], Any], None]:
    def after(tmp: Path, world: dict[str, Any], result: Any) -> None:
        infos = {i["name"]: i for i in json.loads(result[1])}
        for name, want in status.items():
            assert want in json.dumps(infos[name]), infos[name]
    return after


def _no_conflict_warning(tmp: Path, world: dict[str, Any], result: Any) -> None:
    assert "registered by two plugins" not in result[2]
    _listed(spacy={"plugin": "aaa_spacy"})(tmp, world, result)


ROWS_OPTIONS: list[Row] = [
    # --- unknown option keys: refused with a did-you-mean and the listing command -------------
    Row("option-train-unknown-head-key", "options", (*TRAIN, *NO_WEIGHTS, "-H", "hiden_size=64"),
        error=r"unknown option 'hiden_size' for head 'mmn' \(did you mean 'hidden_size'\?\)",
        stderr=(r"Hint: `vdi heads show mmn` lists its options",), after=_before_the_run),
    Row("option-train-unknown-training-key", "options", (*TRAIN, *NO_WEIGHTS, "-o", "patiense=0"),
        error=r"unknown training option 'patiense' \(did you mean 'patience'\?\)",
        stderr=(r"`vdi train --list-options`",), after=_before_the_run),
    Row("option-train-unknown-objective-key", "options",
        (*TRAIN, *NO_WEIGHTS, "-O", "visual-context.prob=query"),
        error=r"unknown option 'prob' for objective 'visual-context' \(did you mean 'probe'\?\)",
        stderr=(r"`vdi objectives show visual-context`",), after=_before_the_run),
    Row("option-train-unknown-sequence-model-key", "options",
        (*TRAIN, *NO_WEIGHTS, "-O", "spatial-dynamic.sequence_options.hedas=4"),
        error=r"unknown option 'hedas' for sequence-model 'transformer' "
        r"\(did you mean 'heads'\?\)", after=_before_the_run),
    Row("option-train-unknown-parser-key", "options",
        (*TRAIN, *NO_WEIGHTS, "--parser-option", "maskin=placeholder"),
        error=r"unknown option 'maskin' for parser 'spacy' \(did you mean 'masking'\?\)",
        after=_before_the_run),
    Row("option-train-unknown-backbone-key", "options",
        (*TRAIN, *NO_WEIGHTS, "-o", "backbone_options.cache=x"),
        error=r"unknown option 'cache' for backbone 'open-clip' \(did you mean 'cache_dir'\?\)",
        after=_before_the_run),
    Row("option-train-two-unknown-keys", "options",
        (*TRAIN, *NO_WEIGHTS, "-H", "hiden_size=64", "-H", "zzz=1"),
        error=r"unknown options for head 'mmn': 'hiden_size' \(did you mean 'hidden_size'\?\), "
        r"'zzz'$", after=_before_the_run),
    # --- values checked before a model loads --------------------------------------------------
    Row("option-train-bad-head-value", "options", (*TRAIN, *NO_WEIGHTS, "-H", "num_clips=1"),
        error=r"invalid options for head 'mmn': num_clips", after=_before_the_run),
    Row("option-train-unknown-select-metric", "options",
        (*TRAIN, *NO_WEIGHTS, "-o", "select_metric=R@1,IoU=0.55"),
        error=r"unknown validation metric 'R@1,IoU=0\.55' \(did you mean 'R@1,IoU=0\.5'\?\)",
        after=_before_the_run),
    Row("option-train-batch-size-zero", "options", (*TRAIN, *NO_WEIGHTS, "--batch-size", "0"),
        error=r"batch_size", after=_before_the_run),
    Row("option-train-device-banana", "options", ("--device", "banana", *TRAIN, *NO_WEIGHTS),
        error=r"unknown device 'banana'", stderr=(r"Hint: --device takes cpu, cuda",),
        after=_before_the_run),
    Row("option-train-device-typo", "options", ("--device", "cdua", *TRAIN, *NO_WEIGHTS),
        error=r"unknown device 'cdua' \(did you mean 'cuda'\?\)", after=_before_the_run),
    Row("option-retrieve-unknown-head-key", "options",
        (*RET, "{video}", "a red square", *FREE, "-H", "num_clip=8"),
        error=r"unknown option 'num_clip' for head 'clip-similarity' "
        r"\(did you mean 'num_clips'\?\)", after=_nothing_loaded),
    Row("option-retrieve-bad-head-value", "options",
        (*RET, "{video}", "a red square", *FREE, "-H", "num_clips=1"),
        error=r"invalid options for head 'clip-similarity': num_clips", after=_nothing_loaded),
    Row("option-retrieve-top-k-zero", "options",
        (*RET, "{video}", "a red square", *FREE, "-k", "0"),
        error=r"--top-k must be at least 1, got 0", after=_nothing_loaded),
    Row("option-retrieve-batch-size-zero", "options",
        (*RET, "{video}", "a red square", *FREE, "--batch-size", "0"),
        error=r"--batch-size must be at least 1, got 0", after=_nothing_loaded),
    Row("option-retrieve-device-banana", "options",
        ("--device", "banana", *RET, "{video}", "a red square", *FREE),
        error=r"unknown device 'banana'", after=_nothing_loaded),
    Row("option-retrieve-checkpoint-device-banana", "options",
        ("--device", "banana", *RET, "{video}", "a red square", *CK),
        error=r"unknown device 'banana'", after=_nothing_loaded),
    Row("option-retrieve-cuda-index", "options",
        ("--device", "cuda:99", *RET, "{video}", "a red square", *FREE),
        error=r"device 'cuda:99'", after=_nothing_loaded),
    Row("option-extract-unknown-backbone-key", "options", (*EXTRACT, *NO_WEIGHTS, "-o", "foo=1"),
        error=r"unknown option 'foo' for backbone 'open-clip'",
        stderr=(r"`vdi backbones show open-clip`",), after=_before_the_run),
    Row("option-extract-unknown-dataset-key", "options",
        ("extract", "--dataset", "mmn-json", "--annotations", "{data}/train.json", "--video-dir",
         "{data}/videos", "--backbone", TINY, *NO_WEIGHTS, "--dataset-option", "foo=1"),
        error=r"unknown option 'foo' for dataset 'mmn-json'", after=_before_the_run),
    Row("option-extract-device-banana", "options",
        (*EXTRACT, *NO_WEIGHTS, "--device", "banana"),
        error=r"unknown device 'banana'", after=_before_the_run),
    Row("option-extract-batch-size-zero", "options",
        (*EXTRACT, *NO_WEIGHTS, "--batch-size", "0"), error=r"--batch-size must be at least 1",
        after=_nothing_loaded),
    Row("option-eval-unknown-dataset-key", "options",
        ("eval", "--predictions", "{tmp}/p.jsonl", "--annotations", "{data}/train.json",
         "--format", "mmn-json", "-o", "durations=x.csv"),
        make=_write("p.jsonl", ""), error=r"unknown option 'durations' for dataset 'mmn-json'",
        after=_before_the_run),
    Row("option-eval-unknown-dataset-key-suggests", "options",
        ("eval", "--baseline", "random", "--annotations", "{data}/train.json",
         "--format", "charades-sta", "-o", "duration=x.csv"),
        error=r"unknown option 'duration' for dataset 'charades-sta' "
        r"\(did you mean 'durations'\?\)", after=_before_the_run),
    Row("option-eval-model-device-banana", "options",
        ("--device", "banana", "eval", *CK, "--annotations", "{data}/train.json",
         "--format", "mmn-json", "--video-dir", "{data}/videos"),
        error=r"unknown device 'banana'", after=_before_the_run),
    Row("option-parse-unknown-parser-key", "options",
        ("parse", "a red square", "-o", "maskin=placeholder"),
        error=r"unknown option 'maskin' for parser 'spacy' \(did you mean 'masking'\?\)",
        stderr=(r"`vdi parsers show spacy`",)),
    Row("option-parse-unknown-dataset-key", "options",
        ("parse", "--dataset", "mmn-json", "--annotations", "{data}/train.json",
         "--dataset-option", "foo=1"), error=r"unknown option 'foo' for dataset 'mmn-json'"),
    Row("option-datasets-check-unknown-key", "options",
        ("datasets", "check", "mmn-json", "{data}/train.json", "-o", "foo=1"),
        error=r"unknown option 'foo' for dataset 'mmn-json'",
        stderr=(r"`vdi datasets show mmn-json`",)),
    Row("option-runs-unknown-status", "options", ("runs", "list", "--status", "okk"),
        exit=2, error=r"unknown --status 'okk' \(did you mean 'ok'\?\)",
        stderr=(r"Hint: --status is one of ok, error, interrupted, running",)),
    Row("option-extract-one-of-one-failed", "video", ("extract", "{tmp}/nope.mp4",
                                                       "--backbone", TINY),
        error=r"1 of 1 video could not be read", after=_no_others_claimed),
    # --- plugins ------------------------------------------------------------------------------
    Row("plugin-raises-at-import", "plugin", ("heads", "--json"), exit=0, error=None,
        make=_site(BROKEN, GOOD), process=True,
        env=_path_env(VDI_PLUGINS="broken-vdi-plugin,good-vdi-plugin"),
        stderr=(r"Warning: plugin 'broken_vdi_plugin' \(broken-vdi-plugin 1\.0\) failed to "
                r"load: ImportError: needs libfoo",),
        after=_listed(mmn={"plugin": "heads"}, good_head={"plugin": "good_vdi_plugin"})),
    Row("plugin-raises-at-import-listed", "plugin", ("plugins", "--json"), exit=0, error=None,
        make=_site(BROKEN, GOOD), process=True,
        env=_path_env(VDI_PLUGINS="broken-vdi-plugin,good-vdi-plugin"),
        after=_plugins_json(broken_vdi_plugin='"error": "ImportError: needs libfoo"',
                            good_vdi_plugin='"status": "loaded"')),
    Row("plugin-raises-in-register-hook", "plugin", ("heads", "--json"), exit=0, error=None,
        make=_site(RAISES_IN_HOOK), process=True, env=_path_env(VDI_PLUGINS="hook-raises"),
        stderr=(r"Warning: plugin 'hook_raises' failed in register_heads: RuntimeError: "
                r"registry down",),
        after=_listed(mmn={"plugin": "heads"}, early_head={"plugin": "hook_raises"})),
    Row("plugin-raises-in-register-hook-listed", "plugin", ("plugins", "--json"), exit=0,
        error=None, make=_site(RAISES_IN_HOOK), process=True,
        env=_path_env(VDI_PLUGINS="hook-raises"),
        after=_plugins_json(hook_raises="register_heads: RuntimeError: registry down")),
    Row("plugin-id-not-kebab-case", "plugin", ("heads", "--json"), exit=0, error=None,
        make=_site(BAD_ID), process=True, env=_path_env(VDI_PLUGINS="bad-id-plugin"),
        stderr=(r"registered head id 'Bad_Head', which is not kebab-case; it is left out",),
        after=_listed(fine_head={"plugin": "bad_id_plugin"}, Bad_Head=None)),
    Row("plugin-duplicate-id-listing-works", "plugin", ("parsers", "--json"), exit=0,
        error=None, make=_site(SPACY_TWIN), process=True, env=_path_env(VDI_PLUGINS="aaa-spacy"),
        stderr=(r"Warning: parser id 'spacy' is registered by two plugins: 'parsers' \(vdi\) "
                r"and 'aaa_spacy' \(aaa-spacy\); 'parsers' keeps it",
                r"VDI_PREFER=aaa_spacy"),
        after=_listed(spacy={"plugin": "parsers", "also_registered_by": [
            {"plugin": "aaa_spacy", "distribution": "aaa-spacy"}]},
            aaa_parser={"plugin": "aaa_spacy"})),
    Row("plugin-duplicate-id-vdi-plugins-lists-it", "plugin", ("plugins",), exit=0, error=None,
        make=_site(SPACY_TWIN), process=True, env=_path_env(VDI_PLUGINS="aaa-spacy"),
        after=lambda tmp, world, r: _assert_all(
            ("id conflicts", "parser", "spacy", "parsers (vdi)", "aaa_spacy (aaa-spacy)",
             "registered first"), r[1])),
    Row("plugin-duplicate-id-chosen-by-vdi-prefer", "plugin", ("parsers", "--json"), exit=0,
        error=None, make=_site(SPACY_TWIN), process=True,
        env=_path_env(VDI_PLUGINS="aaa-spacy", VDI_PREFER="aaa-spacy"),
        after=_no_conflict_warning),
    Row("plugin-selection-names-no-plugin", "plugin", ("heads", "--json"), exit=0, error=None,
        make=_site(GOOD), process=True, env=_path_env(VDI_PLUGINS="good-vdi-plugn"),
        stderr=(r"Warning: VDI_PLUGINS names 'good-vdi-plugn', which matches no installed "
                r"plugin \(did you mean 'good-vdi-plugin'\?\)",),
        after=_listed(good_head=None)),
]


def _assert_all(needles: tuple[str, ...], text: str) -> None:
    for needle in needles:
        assert needle in text, (needle, text)


ROWS += ROWS_OPTIONS


# --- ENV: environment, annotation, generated-dataset, database and concurrency faults ---------

GEN = ("datasets", "generate", "synthetic-shapes", "--test-videos", "1", "--fps", "2",
       "--size", "32", "--videos", "2")


def _generated(tmp: Path, world: dict[str, Any]) -> None:
    from vdi_plugins.synthetic.generate import generate

    generate(tmp / "g", videos=3, seed=1, test_videos=1, fps=2, size=32)


def _set_from_seed(seed: int, train_videos: int) -> Callable[[Path, dict[str, Any], Any], None]:
    """After: {tmp}/g is one whole set (its annotations name exactly its videos) from `seed`."""
    def after(tmp: Path, world: dict[str, Any], result: Any) -> None:
        out = tmp / "g"
        assert json.loads((out / "meta.json").read_text())["seed"] == seed
        named = set()
        for split in ("train", "test_iid", "test_novel_word"):
            named |= set(json.loads((out / f"{split}.json").read_text()))
        assert {p.stem for p in (out / "videos").iterdir()} == named
        assert len(json.loads((out / "train.json").read_text())) == train_videos
    return after


def _clips_with_partial_download(tmp: Path, world: dict[str, Any]) -> None:
    clips = tmp / "clips"
    clips.mkdir()
    data = Path(world["video"]).read_bytes()
    (clips / "good.mp4").write_bytes(data)
    (clips / "good.part.mp4").write_bytes(data[: len(data) // 3])  # a download cut short


def _extracted(names: list[str]) -> Callable[[Path, dict[str, Any], Any], None]:
    def after(tmp: Path, world: dict[str, Any], result: Any) -> None:
        report = _json(result[1])
        assert sorted(v["name"] for v in report["videos"]) == names, report["videos"]
    return after


def _mount(target: Path, *args: str) -> None:
    """A real mount on `target` (tmpfs of a given size, or a read-only bind): the only way to
    get a full disk or a read-only folder when tests run as root (root ignores permission
    bits). Skips where mounting is not allowed; unmounted (lazily) when the session ends."""
    import atexit
    import subprocess

    target.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount here ({proc.stderr.strip() or proc.returncode}): needs root")
    atexit.register(subprocess.run, ["umount", "-l", str(target)], capture_output=True)


def _tmpfs(rel: str, size: str, fill: bool = False) -> Callable[[Path, dict[str, Any]], None]:
    """{tmp}/REL becomes a `size` tmpfs (a small disk); `fill` fills it to the last byte."""
    def make(tmp: Path, world: dict[str, Any]) -> None:
        _mount(tmp / rel, "-t", "tmpfs", "-o", f"size={size}", "tmpfs")
        if fill:
            with open(tmp / rel / "filler.bin", "wb", buffering=0) as f:
                try:
                    while True:
                        f.write(b"\0" * 4096)
                except OSError:
                    pass
    return make


def _read_only(rel: str, fill: Callable[[Path], None] | None = None
               ) -> Callable[[Path, dict[str, Any]], None]:
    """{tmp}/REL becomes a read-only bind mount of a hidden folder (filled by `fill` first)."""
    def make(tmp: Path, world: dict[str, Any]) -> None:
        source = tmp / f".ro-{rel.replace('/', '-')}"
        source.mkdir(parents=True)
        if fill is not None:
            fill(source)
        _mount(tmp / rel, "--bind", str(source))
        _mount(tmp / rel, "-o", "remount,bind,ro")
    return make


def _db_with_a_run(folder: Path) -> None:
    """A vdi database holding one finished run, checkpointed so the folder holds only vdi.db."""
    from vdi_cli.runs import run_context
    from vdi_cli.store import open_db

    db = open_db(folder / "vdi.db")
    with run_context(db, "datasets generate", {"seed": 1}):
        pass
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.close()


def _locked_db(tmp: Path, world: dict[str, Any]) -> None:
    """The row's database, held under an exclusive lock by another process for 20 s."""
    import subprocess
    import sys

    _db_with_a_run(tmp)
    code = ("import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
            "c.execute('begin exclusive'); print('locked', flush=True); time.sleep(20)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp / "vdi.db")],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    _LOCKERS.append(proc)


_LOCKERS: list[Any] = []


def _release_lock(tmp: Path, world: dict[str, Any], result: Any) -> None:
    while _LOCKERS:
        proc = _LOCKERS.pop()
        proc.kill()
        proc.wait()


def _unchanged(name: str, content: str) -> Callable[[Path, dict[str, Any], Any], None]:
    def after(tmp: Path, world: dict[str, Any], result: Any) -> None:
        assert (tmp / name).read_text() == content
    return after


def _listed_run(tmp: Path, world: dict[str, Any], result: Any) -> None:
    runs = _json(result[1])
    assert [(r["command"], r["status"]) for r in runs] == [("datasets generate", "ok")]


def _run_error(pattern: str) -> Callable[[Path, dict[str, Any], Any], None]:
    """After: the row's run finished as error with a message matching `pattern`."""
    def after(tmp: Path, world: dict[str, Any], result: Any) -> None:
        conn = sqlite3.connect(tmp / "vdi.db")
        try:
            rows = conn.execute("select status, error from runs").fetchall()
        finally:
            conn.close()
        assert len(rows) == 1 and rows[0][0] == "error", rows
        assert re.search(pattern, rows[0][1]), rows
    return after


XB32 = ("--backbone", "clip-vit-b32")  # OpenAI weights: offline, loading it would fail at once,
# so an error about the folder proves the folder was checked before any model loads
TRAIN = ("train", "--dataset", "mmn-json", "--annotations", "{data}/train.json", "--video-dir",
         "{data}/videos", "--fps", "1", "--epochs", "1")


def _charades(txt: str, csv: str | None) -> Callable[[Path, dict[str, Any]], None]:
    """{tmp}/sta.txt (2D-TAN lines) and, beside it, Charades_v1_test.csv."""
    def make(tmp: Path, world: dict[str, Any]) -> None:
        (tmp / "sta.txt").write_text(txt, encoding="utf-8")
        if csv is not None:
            (tmp / "Charades_v1_test.csv").write_text(csv, encoding="utf-8")
    return make


def _binary(name: str) -> Callable[[Path, dict[str, Any]], None]:
    """A binary file (the good video) under an annotation file's name."""
    def make(tmp: Path, world: dict[str, Any]) -> None:
        (tmp / name).write_bytes(Path(world["video"]).read_bytes())
    return make


CHECK = ("datasets", "check")
CSV_OK = "id,subject,length\nAO8RW,a,33.2\n"
EVAL = ("eval", "--format", "mmn-json", "--annotations", "{data}/train.json", "--predictions")


_EXTRACTORS: list[Any] = []
_TINY_VDI = ("import sys; from vdi_cli.testing import register_tiny_open_clip as r; r(); "
             "from vdi_cli.cli import run; sys.exit(run(sys.argv[1:]))")


def _two_extracts_running(tmp: Path, world: dict[str, Any]) -> None:
    """Eight videos in {tmp}/clips; two `vdi extract` processes over overlapping halves (0-5 and
    2-7, same backbone and sampling as the checkpoint, so all three commands write the same
    rows), started and past their start-up when the row's `vdi retrieve` runs."""
    import os
    import subprocess
    import sys
    import time

    videos = [make_video(tmp / "clips" / f"v{i}.mp4", seconds=12, fps=5, size=(48, 32), seed=i)
              for i in range(8)]
    env = {**os.environ, "VDI_HOME": str(tmp / "home"), "VDI_DB": str(tmp / "vdi.db"),
           "VDI_PLUGINS": "", "HF_HUB_OFFLINE": "1"}
    for part in (videos[:6], videos[2:]):
        _EXTRACTORS.append(subprocess.Popen(
            [sys.executable, "-c", _TINY_VDI, "extract", *map(str, part), "--backbone", TINY,
             "--fps", "1", "--batch-size", "2", "--json"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # both have opened the database and started their run
        try:
            conn = sqlite3.connect(tmp / "vdi.db")
            started = conn.execute("select count(*) from runs where command = 'extract'"
                                   ).fetchone()[0]
            conn.close()
        except sqlite3.Error:
            started = 0
        if started == 2 or any(p.poll() is not None for p in _EXTRACTORS):
            break
        time.sleep(0.05)


def _extracts_finished(tmp: Path, world: dict[str, Any]) -> None:
    """Settle: wait for both extracts; each ended ok, without a traceback."""
    outcomes = []
    while _EXTRACTORS:
        proc = _EXTRACTORS.pop(0)
        out, err = proc.communicate(timeout=300)
        outcomes.append((proc.returncode, err[-2000:]))
    assert all(code == 0 for code, _ in outcomes), outcomes
    assert all("Traceback" not in err for _, err in outcomes), outcomes


def _all_whole(tmp: Path, world: dict[str, Any], result: Any) -> None:
    """After: the retrieve searched all eight videos, each video has one row and one features
    row, and every features file is whole (it opens and its shapes are the recorded ones)."""
    from safetensors import safe_open

    assert {m["vid"] for m in _json(result[1])["predictions"]} == {f"v{i}" for i in range(8)}
    conn = sqlite3.connect(tmp / "vdi.db")
    try:
        assert conn.execute("select count(*), count(distinct sha256) from videos"
                            ).fetchone() == (8, 8)
        rows = conn.execute("select video_id, backbone, sampling, path, global_shape, "
                            "patch_shape from features").fetchall()
        statuses = [r[0] for r in conn.execute("select status from runs")]
    finally:
        conn.close()
    assert statuses == ["ok", "ok", "ok"], statuses
    assert len(rows) == 8 and len({r[:3] for r in rows}) == 8
    for *_, path, global_shape, patch_shape in rows:
        with safe_open(path, framework="pt") as f:
            assert list(f.get_tensor("global").shape) == json.loads(global_shape)
            assert list(f.get_tensor("patches").shape) == json.loads(patch_shape)


ROWS_ENV: list[Row] = [
    # --- generated datasets (`vdi datasets generate --out`) ------------------------------------
    Row("generate-into-a-generated-set", "options", (*GEN, "--seed", "9", "--out", "{tmp}/g"),
        make=_generated, error=r"already holds a generated dataset", stderr=(r"--force",),
        after=_set_from_seed(1, 3)),
    Row("generate-force-replaces-the-set", "options",
        (*GEN, "--seed", "9", "--out", "{tmp}/g", "--force", "--json"), make=_generated,
        exit=0, error=None, after=_set_from_seed(9, 2)),
    Row("generate-out-is-a-file", "options", (*GEN, "--out", "{tmp}/notes.txt"),
        make=_write("notes.txt", "my notes"), error=r"notes\.txt' is a file, not a folder"),
    Row("generate-out-holds-other-files", "options", (*GEN, "--out", "{tmp}", "--force"),
        make=_write("thesis.tex", "months of work"), error=r"did not generate \(.*thesis\.tex",
        must_exist=("thesis.tex",), must_not_exist=("videos",)),
    Row("video-folder-partial-download", "video",
        ("extract", "{tmp}/clips", "--backbone", TINY, "--json"),
        make=_clips_with_partial_download, exit=0, error=None, after=_extracted(["good.mp4"])),
    # --- databases ---------------------------------------------------------------------------
    Row("db-is-a-folder", "database", ("--db", "{tmp}/dbs", "runs", "list"),
        make=lambda tmp, world: (tmp / "dbs").mkdir(), error=r"dbs' is a folder, not a file"),
    Row("db-not-sqlite", "database", ("--db", "{tmp}/notes.db", "runs", "list"),
        make=_write("notes.db", "not a database\n" * 100), error=r"not a usable vdi database",
        after=_unchanged("notes.db", "not a database\n" * 100)),
    Row("db-read-only-is-listed", "database", ("--db", "{tmp}/ro/vdi.db", "runs", "list", "--json"),
        make=_read_only("ro", _db_with_a_run), exit=0, error=None, after=_listed_run),
    Row("db-read-only-refuses-work", "database",
        ("--db", "{tmp}/ro/vdi.db", *GEN, "--out", "{tmp}/g"),
        make=_read_only("ro", _db_with_a_run),
        error=r"cannot write the run database .*ro/vdi\.db': read-only file system",
        stderr=(r"vdi runs list.*can still read",), must_not_exist=("g",)),
    Row("db-new-in-read-only-folder", "database", ("--db", "{tmp}/ro/new.db", "runs", "list"),
        make=_read_only("ro"), error=r"new\.db': read-only file system",
        must_not_exist=(".ro-ro/new.db",)),
    Row("db-disk-full", "database", ("--db", "{tmp}/small/vdi.db", *GEN, "--out", "{tmp}/g"),
        make=_tmpfs("small", "64k"), error=r"small/vdi\.db': database or disk is full",
        stderr=(r"Hint: free some space",), must_not_exist=("g",)),
    Row("db-locked-by-another-process", "database", (*GEN, "--out", "{tmp}/g"),
        make=_locked_db, env={"VDI_DB_TIMEOUT": "0.5"},
        error=r"vdi\.db' is locked by another process \(waited 0\.5 s\)",
        stderr=(r"VDI_DB_TIMEOUT",), must_not_exist=("g",), after=_release_lock),
    # --- environment: read-only folders, full disks --------------------------------------------
    Row("env-features-folder-read-only", "environment", ("extract", "{video}", *XB32),
        make=_read_only("home/features"),
        error=r"cannot write to the features folder .*home/features': Read-only file system",
        after=_run_error(r"features folder")),
    Row("env-runs-folder-read-only", "environment", (*TRAIN, *XB32),
        make=_read_only("home/stores"),  # where this database's run folders go
        error=r"home/stores/\w+': Read-only file system", after=_run_error(r"Read-only")),
    Row("env-features-disk-already-full", "environment", ("extract", "{video}", *XB32),
        make=_tmpfs("home/features", "16k", fill=True),
        error=r"features folder .*: No space left on device", after=_run_error(r"No space")),
    Row("env-features-disk-full-while-encoding", "environment",
        ("extract", "{video}", "--backbone", TINY, "--fps", "4"),
        make=_tmpfs("home/features", "32k"),
        error=r"cannot write features under .*home/features.*: No space left on device",
        must_not_exist=("home/features/**/*.safetensors",), after=_run_error(r"No space")),
    Row("env-features-disk-full-while-committing", "environment",
        ("extract", "{video}", "--backbone", TINY, "--fps", "4"),
        make=_tmpfs("home/features", "120k"),
        error=r"cannot write features under .*home/features.*: No space left on device",
        must_not_exist=("home/features/**/*.safetensors",), after=_run_error(r"No space")),
    # --- annotation files (`datasets check`, `parse --dataset`, `eval`, `train`, `extract`) ----
    Row("ann-folder", "annotations", (*CHECK, "mmn-json", "{tmp}/anns"),
        make=lambda tmp, world: (tmp / "anns").mkdir(), error=r"anns' is a folder, not a file"),
    Row("ann-binary", "annotations", (*CHECK, "mmn-json", "{tmp}/train.json"),
        make=_binary("train.json"), error=r"train\.json' is not a mmn-json .*not UTF-8 text"),
    Row("ann-binary-jsonl", "annotations", (*CHECK, "qvhighlights", "{tmp}/val.jsonl"),
        make=_binary("val.jsonl"), error=r"not a qvhighlights .*not UTF-8 text"),
    Row("ann-empty", "annotations", (*CHECK, "mmn-json", "{tmp}/empty.json"),
        make=_write("empty.json", "\n \n"), error=r"empty\.json' is empty"),
    Row("ann-bad-json", "annotations", (*CHECK, "mmn-json", "{tmp}/cut.json"),
        make=_write("cut.json", '{"v1": {"duration": 10, "timestamps": [[1, '),
        error=r"cut\.json' is not a mmn-json annotation file: invalid JSON"),
    Row("ann-mmn-timestamp-not-a-pair", "annotations", (*CHECK, "mmn-json", "{tmp}/a.json"),
        make=_write("a.json", '{"v1": {"duration": 10, "timestamps": ["12"], '
                    '"sentences": ["a man runs"]}}'),
        error=r"video 'v1', moment 0: timestamps must be \[start, end\]"),
    Row("ann-charades-time-not-a-number", "annotations", (*CHECK, "charades-sta", "{tmp}/sta.txt"),
        make=_charades("AO8RW 0.0 4.0##a person opens the door\nAO8RW 1,5 9.0##he sits\n",
                       CSV_OK),
        error=r"line 2: start and end must be numbers of seconds, got '1,5' and '9\.0'"),
    Row("ann-charades-csv-without-length", "annotations",
        (*CHECK, "charades-sta", "{tmp}/sta.txt"),
        make=_charades("AO8RW 0.0 4.0##a person opens the door\n", "id,subject\nAO8RW,a\n"),
        error=r"Charades_v1_test\.csv' is not a Charades csv .*no 'length' column "
        r"\(its columns: id, subject\)"),
    Row("ann-charades-durations-is-a-folder", "annotations",
        (*CHECK, "charades-sta", "{tmp}/sta.txt", "-o", "durations={tmp}"),
        make=_charades("AO8RW 0.0 4.0##a person opens the door\n", None),
        error=r"is not a Charades csv with video lengths: it is a folder"),
    Row("ann-charades-length-not-a-number", "annotations",
        (*CHECK, "charades-sta", "{tmp}/sta.txt"),
        make=_charades("AO8RW 0.0 4.0##a person opens the door\n", "id,length\nAO8RW,long\n"),
        error=r"line 2: length 'long' is not a number"),
    Row("ann-unknown-format", "annotations", (*CHECK, "mmn-jsn", "{data}/train.json"),
        error=r"unknown dataset 'mmn-jsn'", stderr=(r"mmn-json",)),
    Row("ann-parse-dataset-folder", "annotations",
        ("parse", "--dataset", "mmn-json", "--annotations", "{tmp}/anns"),
        make=lambda tmp, world: (tmp / "anns").mkdir(), error=r"is a folder, not a file"),
    Row("ann-parse-dataset-binary", "annotations",
        ("parse", "--dataset", "qvhighlights", "--annotations", "{tmp}/val.jsonl"),
        make=_binary("val.jsonl"), error=r"val\.jsonl' is not a qvhighlights .*not UTF-8"),
    Row("ann-eval-predictions-folder", "annotations", (*EVAL, "{tmp}/preds"),
        make=lambda tmp, world: (tmp / "preds").mkdir(), error=r"preds' is a folder, not a file"),
    Row("ann-eval-predictions-empty", "annotations", (*EVAL, "{tmp}/p.jsonl"),
        make=_write("p.jsonl", ""), error=r"predictions file .*p\.jsonl' is empty"),
    Row("ann-eval-predictions-binary", "annotations", (*EVAL, "{tmp}/p.jsonl"),
        make=_binary("p.jsonl"), error=r"cannot read predictions file .*p\.jsonl'"),
    Row("ann-eval-predictions-bad-json", "annotations", (*EVAL, "{tmp}/p.jsonl"),
        make=_write("p.jsonl", '{"qid": 1, "pred_relevant_windows": [[1, 2\n'),
        error=r"p\.jsonl: line 1: not valid JSON"),
    Row("ann-eval-annotations-binary", "annotations",
        ("eval", "--format", "mmn-json", "--annotations", "{tmp}/t.json", "--predictions",
         "{tmp}/p.jsonl"),
        make=lambda tmp, world: (_binary("t.json")(tmp, world),
                                 _write("p.jsonl", '{"qid": "v:0", "pred_relevant_windows": '
                                        '[[1, 2, 0.5]]}\n')(tmp, world)),
        error=r"t\.json' is not a mmn-json .*not UTF-8"),
    Row("ann-train-annotations-folder", "annotations",
        ("train", "--dataset", "mmn-json", "--annotations", "{tmp}/anns", "--video-dir",
         "{data}/videos", "--backbone", TINY, "--epochs", "1"),
        make=lambda tmp, world: (tmp / "anns").mkdir(), error=r"anns' is a folder, not a file",
        after=_run_error(r"is a folder")),
    Row("ann-train-charades-csv-without-length", "annotations",
        ("train", "--dataset", "charades-sta", "--annotations", "{tmp}/sta.txt", "--video-dir",
         "{data}/videos", "--backbone", TINY, "--epochs", "1"),
        make=_charades("AO8RW 0.0 4.0##a person opens the door\n", "id,subject\nAO8RW,a\n"),
        error=r"no 'length' column", after=_run_error(r"no 'length' column")),
    Row("ann-extract-dataset-empty", "annotations",
        ("extract", "--dataset", "mmn-json", "--annotations", "{tmp}/e.json", "--video-dir",
         "{data}/videos", "--backbone", TINY),
        make=_write("e.json", ""), error=r"e\.json' is empty"),
    # --- concurrency ---------------------------------------------------------------------------
    Row("concurrent-extracts-and-a-retrieve", "concurrency",
        (*RET, "{tmp}/clips", "a red square", *CK, "--json"), make=_two_extracts_running,
        exit=0, error=None, settle=_extracts_finished, after=_all_whole, slow=True),
]
ROWS += ROWS_ENV


# --- TRAIN: training runs, resume, checkpoints, run storage -----------------------------------

def _train_in_row(tmp: Path, world: dict[str, Any], db_name: str = "vdi.db", **kw: Any
                  ) -> dict[str, Any]:
    """Train a tiny run into the row's own database (or `db_name` beside it) and home (run id
    1); returns its summary."""
    from vdi_cli.pipeline.train_config import TrainConfig
    from vdi_cli.pipeline.train_run import run_training
    from vdi_cli.runs import run_context
    from vdi_cli.store import open_db

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


# --- FORMATS: benchmark formats, splits without answers, metrics (issue 21) -------------------

QVH_TEST = "".join(json.dumps(r) + "\n" for r in [
    {"qid": 3158, "query": "A video covering hill and water", "duration": 150, "vid": "a"},
    {"qid": 7920, "query": "Woman talks to the camera.", "duration": 150, "vid": "b"}])
QVH_PRED = json.dumps({"qid": 3158, "pred_relevant_windows": [[0, 10, 0.9]]}) + "\n"
MODEL_EVAL = ("eval", "--checkpoint", "{ckpt}", "--format", "qvhighlights", "--video-dir",
              "{data}/videos")


def _qvh_test_and_predictions(tmp: Path, world: dict[str, Any]) -> None:
    _write("test.jsonl", QVH_TEST)(tmp, world)
    _write("p.jsonl", QVH_PRED)(tmp, world)


ROWS_FORMATS: list[Row] = [
    Row("fmt-eval-predictions-on-split-without-answers", "annotations",
        ("eval", "--predictions", "{tmp}/p.jsonl", "--annotations", "{tmp}/test.jsonl",
         "--format", "qvhighlights"),
        make=_qvh_test_and_predictions,
        error=r"test\.jsonl' has no answers: its 2 queries have no moment",
        stderr=(r"Hint: score on a split with answers",), after=_run_error(r"has no answers")),
    Row("fmt-eval-model-on-split-without-answers", "annotations",
        (*MODEL_EVAL, "--annotations", "{tmp}/test.jsonl"), make=_write("test.jsonl", QVH_TEST),
        error=r"has no answers", stderr=(r"--save-predictions FILE",),
        after=_run_error(r"has no answers")),
    Row("fmt-train-on-split-without-answers", "annotations",
        ("train", "--dataset", "qvhighlights", "--annotations", "{tmp}/test.jsonl",
         "--video-dir", "{data}/videos", "--backbone", TINY, "--epochs", "1"),
        make=_write("test.jsonl", QVH_TEST), error=r"has no answers: its 2 queries",
        after=_run_error(r"has no answers")),
    Row("fmt-save-predictions-folder-missing", "options",
        (*MODEL_EVAL, "--annotations", "{tmp}/test.jsonl", "--save-predictions",
         "{tmp}/nowhere/sub.jsonl"),
        make=_write("test.jsonl", QVH_TEST),
        error=r"the folder of --save-predictions .*nowhere/sub\.jsonl' does not exist",
        must_not_exist=("nowhere",), after=_run_error(r"--save-predictions")),
    Row("fmt-save-predictions-without-a-model", "options",
        ("eval", "--predictions", "{tmp}/p.jsonl", "--annotations", "{tmp}/test.jsonl",
         "--format", "qvhighlights", "--save-predictions", "{tmp}/out.jsonl"),
        make=_qvh_test_and_predictions, exit=2,
        error=r"--save-predictions writes a model's predictions", must_not_exist=("out.jsonl",)),
    Row("fmt-unknown-metrics", "options",
        (*EVAL, "{tmp}/p.jsonl", "--metrics", "qvhighlight"),
        make=_write("p.jsonl", QVH_PRED), error=r"unknown --metrics 'qvhighlight'",
        stderr=(r"Hint: use recall .* qvhighlights",)),
    Row("fmt-check-every-row-dropped", "annotations", (*CHECK, "mmn-json", "{tmp}/a.json"),
        make=_write("a.json", '{"v1": {"duration": 10, "timestamps": [[5, 5], [12, 14]], '
                    '"sentences": ["a", "b"]}}'),
        error=r"every row of .*a\.json' was dropped \(1 moment outside the video after "
        r"clipping; 1 start >= end\)"),
    Row("fmt-tacos-file-is-not-tacos", "annotations", (*CHECK, "tacos", "{tmp}/cd.json"),
        make=_write("cd.json", '{"AO8RW": {"video_duration": 30, "timestamps": [[0, 5]], '
                    '"sentences": ["a"]}}'),
        error=r"not a tacos annotation file: video 'AO8RW' lacks num_frames/fps"),
    Row("fmt-json-of-no-known-shape", "annotations", (*CHECK, "mmn-json", "{tmp}/x.json"),
        make=_write("x.json", '{"v1": {"length": 30, "timestamps": [[0, 5]], '
                    '"sentences": ["a"]}}'),
        error=r"video 'v1' has none of duration, num_frames \+ fps \(TACoS\) or "
        r"video_duration"),
    Row("fmt-qvhighlights-line-without-qid", "annotations",
        (*CHECK, "qvhighlights", "{tmp}/v.jsonl"),
        make=_write("v.jsonl", '{"query": "q", "vid": "a", "duration": 150}\n'),
        error=r"line 1 has no 'qid'"),
]
ROWS += ROWS_FORMATS


# --- DDP: `vdi train` on several ranks (torchrun, --nproc; issue 22) ---------------------------

DDP_TRAIN = ("train", "--dataset", "mmn-json", "--annotations", "{data}/train.json",
             "--video-dir", "{data}/videos", "--backbone", "tiny-shapes", "--fps", "1",
             "--epochs", "2", "--batch-size", "2", "--no-objective", "-H", "hidden_size=32",
             "-H", "conv_layers=2", "-o", "patience=0", "--nproc", "2")


def _row_gone_with_its_process(tmp: Path, world: dict[str, Any], result: Any) -> None:
    """After rank 0 itself is killed: its run row cannot be finished, and reads as gone."""
    from vdi_cli.store.runs import process_gone

    conn = sqlite3.connect(tmp / "vdi.db")
    conn.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in conn.execute("select * from runs")]
    finally:
        conn.close()
    assert len(rows) == 1 and rows[0]["status"] == "running" and process_gone(rows[0]), rows


ROWS_DDP: list[Row] = [
    Row("ddp-rank-raises", "environment", DDP_TRAIN, error=r"rank 1\b",
        env={"VDI_FAULT_DDP": "1:2:raise"}, process=True, slow=True,
        stderr=(r"Error: training on 2 ranks stopped: rank 1: injected fault on rank 1 at "
                r"step 2", r"training on 2 processes failed \(.*rank 1 exited with 1"),
        after=_run_error(r"^training on 2 ranks stopped: rank 1: injected fault on rank 1 at "
                         r"step 2 \(hint: ")),
    Row("ddp-rank-killed", "environment", DDP_TRAIN, error=r"rank 1\b",
        env={"VDI_FAULT_DDP": "1:3:kill"}, process=True, slow=True,
        stderr=(r"rank 1 killed by SIGKILL",),
        after=_run_error(r"^training on 2 ranks stopped: rank 1 \(pid \d+\) ended without "
                         r"reporting an error")),
    Row("ddp-rank0-killed", "environment", DDP_TRAIN, error=r"rank 0 killed by SIGKILL|lost",
        env={"VDI_FAULT_DDP": "0:2:kill"}, process=True, slow=True,
        after=_row_gone_with_its_process),
    Row("ddp-nproc-zero", "options", (*DDP_TRAIN[:-1], "0"), exit=2, error=r"--nproc"),
]
ROWS += ROWS_DDP

# --- OBJECTIVES: the VDI terms in the train loop, their diagnostics (issue 20) ----------------

TRAIN_VDI = ("train", "--dataset", "mmn-json", "--annotations", "{data}/train.json",
             "--video-dir", "{data}/videos", "--backbone", TINY, "--fps", "1", "--epochs", "1",
             "--batch-size", "2", "-H", "hidden_size=32", "-H", "joint_size=16",
             "-H", "conv_layers=2", "-O", "visual-context.heads=2",
             "-O", "spatial-dynamic.sequence_options.heads=2", "-o", "patience=0")


def _diagnostic_warnings(tmp: Path, world: dict[str, Any], result: Any) -> None:
    """The run finished ok, its summary lists the collapse warnings, its diagnostics are
    stored (split "diagnostics", one `collapsed` flag per term set to 1)."""
    conn = sqlite3.connect(tmp / "vdi.db")
    try:
        (status, summary), = conn.execute("select status, summary from runs").fetchall()
        flags = dict(conn.execute("select name, value from metrics where split = "
                                  "'diagnostics' and name like '%/collapsed'").fetchall())
    finally:
        conn.close()
    assert status == "ok"
    warned = json.loads(summary)["diagnostic_warnings"]
    assert len(warned) == 2 and all("grad_ratio" in w for w in warned), warned
    assert flags == {"visual-context/collapsed": 1.0, "spatial-dynamic/collapsed": 1.0}


ROWS_OBJECTIVES: list[Row] = [
    Row("obj-train-unknown-vdi-form", "options", (*TRAIN_VDI, *NO_WEIGHTS, "-o", "vdi_form=lit"),
        error=r"vdi_form: Input should be 'paper' or 'stable'",
        stderr=(r"`vdi train --list-options`",), after=_before_the_run),
    Row("obj-train-unknown-objective-lr", "options",
        (*TRAIN_VDI, *NO_WEIGHTS, "-o", "objective_lr=fast"),
        error=r"objective_lr: Input should be 'head' or 'text'", after=_before_the_run),
    Row("obj-train-unknown-objectives-frozen", "options",
        (*TRAIN_VDI, *NO_WEIGHTS, "-o", "objectives_frozen=never"),
        error=r"objectives_frozen: Input should be 'train' or 'skip'", after=_before_the_run),
    Row("obj-train-negative-diagnostics-every", "options",
        (*TRAIN_VDI, *NO_WEIGHTS, "-o", "diagnostics_every=-1"),
        error=r"diagnostics_every: Input should be greater than or equal to 0",
        after=_before_the_run),
    Row("obj-train-vdi-terms-would-never-run", "options",
        (*TRAIN_VDI, *NO_WEIGHTS, "-o", "text_lr_ratio=0"),
        error=r"objectives_frozen=skip runs the VDI terms only while the text tower trains, "
        r"and text_lr_ratio=0 never trains it: visual-context, spatial-dynamic would never run",
        after=_before_the_run),
    Row("obj-train-ends-before-the-vdi-terms-start", "options", TRAIN_VDI, exit=0, error=None,
        stderr=(r"Warning: the VDI terms \(visual-context, spatial-dynamic\) start once the "
                r"text tower trains, after epoch 4 \(objectives_frozen=skip\), and this run "
                r"ends at epoch 1: it trains none of them",), slow=True),
    Row("obj-train-collapse-warning", "options",
        (*TRAIN_VDI, "-o", "freeze_text_epochs=0", "-o", "diagnostics_grad_floor=1e9",
         "-o", "diagnostics_spread_floor=0"), exit=0, error=None,
        stderr=(r"Warning: visual-context sat at its trivial minimum for all of epoch 1: "
                r"grad_ratio \S+ < 1e\+09 at each of the \d+ diagnosed steps",
                r"Warning: spatial-dynamic sat at its trivial minimum"),
        after=_diagnostic_warnings, slow=True),
]
ROWS += ROWS_OBJECTIVES

# --- EXTRACT: decoding processes (--workers), shards (--shard), launchers ----------------------

def _clips_with_noise(tmp: Path, world: dict[str, Any]) -> None:
    """{tmp}/clips: two good videos and random bytes named like a video between them."""
    make_video(tmp / "clips" / "a.mp4", seconds=4, fps=5, size=(48, 32), seed=1)
    import numpy as np

    (tmp / "clips" / "b-noise.mp4").write_bytes(np.random.default_rng(1).bytes(20_000))
    make_video(tmp / "clips" / "c.mp4", seconds=4, fps=5, size=(48, 32), seed=2)


def _features_rows(n: int) -> Callable[[Path, dict[str, Any], Any], None]:
    def after(tmp: Path, world: dict[str, Any], result: Any) -> None:
        assert _rows(tmp / "vdi.db", "features") == n
    return after


def _both(*checks: Callable[[Path, dict[str, Any], Any], None]
          ) -> Callable[[Path, dict[str, Any], Any], None]:
    def after(tmp: Path, world: dict[str, Any], result: Any) -> None:
        for check in checks:
            check(tmp, world, result)
    return after


EXTRACT_WORKERS = (*EXTRACT_MANY, "--workers", "2")

ROWS_EXTRACT: list[Row] = [
    Row("extract-workers-negative", "options",
        ("extract", "{video}", "-b", TINY, "--workers", "-1"), exit=2,
        error=r"--workers must be 0 or more, got -1"),
    Row("extract-workers-corrupt-video-among-good", "video",
        ("extract", "{tmp}/clips", "-b", TINY, "--workers", "2"), make=_clips_with_noise,
        error=r"1 of 3 videos could not be read: b-noise\.mp4 \(corrupt\)",
        stderr=(r"Hint: the other 2 videos have their features",),
        after=_both(_run_error(r"could not be read"), _features_rows(2))),
    Row("extract-shard-auto-without-a-launcher", "options",
        ("extract", "{video}", "-b", TINY, "--shard", "auto"),
        error=r"--shard auto found neither SLURM_ARRAY_TASK_ID"),
    Row("extract-shard-slurm-task-past-the-count", "environment",
        ("extract", "{video}", "-b", TINY, "--shard", "auto"),
        env={"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4"},
        error=r"SLURM_ARRAY_TASK_ID gives shard 4 of 4, outside 0\.\.3"),
    Row("extract-torchrun-rank-past-world-size", "environment",
        ("extract", "{video}", "-b", TINY, "--shard", "auto"),
        env={"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"},
        error=r"RANK gives shard 2 of 2, outside 0\.\.1"),
    Row("signal-sigint-during-extract-with-workers-then-rerun", "signal", EXTRACT_WORKERS,
        exit=130, error=None, stderr=(r"Interrupted\.",), signal=2,  # SIGINT
        ready=_has_features(2), then=EXTRACT_WORKERS, slow=True,
        after=_extract_completes("interrupted")),
]
ROWS += ROWS_EXTRACT

def _indexed(tmp: Path, world: dict[str, Any]) -> None:
    """The row's database gets an exact index 'lib' over the world's video."""
    done = invoke(["index", "build", "lib", world["video"], "-c", world["ckpt"]],
                  env={"VDI_HOME": str(tmp / "home"), "VDI_DB": str(tmp / "vdi.db"),
                       "VDI_PLUGINS": ""})
    assert done.exit_code == 0, done.stderr


def _search_run_error(pattern: str) -> Callable[[Path, dict[str, Any], Any], None]:
    """After: the search run (the build's run row is the other one) finished as error."""
    def after(tmp: Path, world: dict[str, Any], result: Any) -> None:
        conn = sqlite3.connect(tmp / "vdi.db")
        try:
            rows = conn.execute("select status, error from runs where command = 'search'"
                                ).fetchall()
        finally:
            conn.close()
        assert len(rows) == 1 and rows[0][0] == "error" and re.search(pattern, rows[0][1]), rows
    return after


def _indexed_then(damage: str) -> Callable[[Path, dict[str, Any]], None]:
    """`_indexed`, then the video's rows file removed ("gone") or cut to half ("cut")."""
    def make(tmp: Path, world: dict[str, Any]) -> None:
        _indexed(tmp, world)
        rows = tmp / "vdi.indexes" / "lib" / "videos" / "0-rows.npy"
        if damage == "gone":
            rows.unlink()
        else:
            data = rows.read_bytes()
            rows.write_bytes(data[: len(data) // 2])
    return make


SEARCH = ("search", "a red square moves", "-i", "lib")
ROWS_SEARCH: list[Row] = [
    Row("search-vector-files-missing", "database", SEARCH, make=_indexed_then("gone"),
        error=r"the vector files of video '.*' in index 'lib' are missing \(.*0-rows\.npy\)",
        stderr=(r"Hint: rebuild the index: vdi index build NAME SOURCES\.\.\. --force",),
        after=_search_run_error(r"are missing")),
    Row("search-vector-file-truncated", "database", SEARCH, make=_indexed_then("cut"),
        error=r"the index's vector file '.*0-rows\.npy' cannot be read whole .*truncated",
        stderr=(r"Hint: rebuild the index",), after=_search_run_error(r"truncated")),
    Row("search-threads-not-a-number", "environment", SEARCH, make=_indexed,
        env={"VDI_SEARCH_THREADS": "two"},
        error=r"VDI_SEARCH_THREADS must be a whole number of threads, 1 or more; got 'two'",
        stderr=(r"Hint: unset VDI_SEARCH_THREADS",),
        after=_search_run_error(r"VDI_SEARCH_THREADS must be a whole number")),
    Row("search-threads-zero", "environment", SEARCH, make=_indexed,
        env={"VDI_SEARCH_THREADS": "0"}, error=r"VDI_SEARCH_THREADS .* got '0'"),
    Row("index-flat-fp16-not-a-flag", "options",
        ("index", "build", "lib", "{video}", "-c", "{ckpt}", "-O", "fp16=2"),
        error=r"option 'fp16' of a flat index is 0 or 1, got 2",
        stderr=(r"Hint: --index-option fp16=1 scans half-precision codes",),
        must_not_exist=("vdi.indexes/lib",)),
    Row("index-option-not-a-number", "options",
        ("index", "build", "lib", "{video}", "-c", "{ckpt}", "--kind", "ivfpq", "-O",
         "nprobe=many"),
        error=r"option 'nprobe' of a ivfpq index takes a whole number, got 'many'",
        stderr=(r"Hint: e\.g\. --index-option nprobe=128",)),
]
ROWS += ROWS_SEARCH

# --- vdi serve (issue 23): refused before anything listens; the store is only read ----------

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


TAKEN_PORT = _free_port()
_held: list[Any] = []


def _hold_port(tmp: Path, world: dict[str, Any]) -> None:
    """Another program listening on TAKEN_PORT while the row runs."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", TAKEN_PORT))
    sock.listen(1)
    _held.append(sock)


def _release_port(tmp: Path, world: dict[str, Any]) -> None:
    while _held:
        _held.pop().close()


def _no_runs_table(tmp: Path, world: dict[str, Any]) -> None:
    conn = sqlite3.connect(tmp / "other.db")
    conn.execute("create table notes (text)")
    conn.commit()
    conn.close()


def _index_of_a_gone_checkpoint(tmp: Path, world: dict[str, Any]) -> None:
    """An index built with a copy of the world's checkpoint, then the copy deleted."""
    import shutil

    shutil.copytree(world["ckpt"], tmp / "ckpt")
    env = {"VDI_HOME": str(tmp / "home"), "VDI_DB": str(tmp / "vdi.db"), "VDI_PLUGINS": ""}
    built = invoke(["index", "build", "lib", world["video"], "-c", str(tmp / "ckpt")], env=env)
    assert built.exit_code == 0, built.stderr
    shutil.rmtree(tmp / "ckpt")


def _db_untouched_by_serve(tmp: Path, world: dict[str, Any], result: Any) -> None:
    """serve opened the database read-only: still one run (the index build), no new one."""
    conn = sqlite3.connect(f"file:{tmp / 'vdi.db'}?mode=ro", uri=True)
    try:
        assert conn.execute("select command, status from runs").fetchall() == [("index", "ok")]
    finally:
        conn.close()


ROWS_SERVE: list[Row] = [
    Row("serve-port-out-of-range", "options", ("serve", "--port", "70000"), exit=2,
        error=r"--port must be in 1\.\.65535, got 70000"),
    Row("serve-port-taken", "environment", ("serve", "--port", str(TAKEN_PORT), "--lazy"),
        make=_hold_port, settle=_release_port,
        error=rf"cannot listen on 127\.0\.0\.1:{TAKEN_PORT}: .*in use",
        stderr=(r"Hint: pick another --port",)),
    Row("serve-candidates-zero", "options", ("serve", "--candidates", "0"), exit=2,
        error=r"--candidates must be at least 1, got 0"),
    Row("serve-unknown-host", "options", ("serve", "--host", "no-such-host.invalid"),
        error=r"cannot listen on no-such-host\.invalid:8765: ",
        stderr=(r"Hint: --host takes an address of this machine",)),
    Row("serve-no-database", "database", ("--db", "{tmp}/none.db", "serve"),
        error=r"no run database at '.*none\.db'", must_not_exist=("none.db", "none.db-*")),
    Row("serve-not-a-database", "database", ("--db", "{tmp}/junk.db", "serve"),
        make=_write("junk.db", "not a database\n" * 200),
        error=r"junk\.db' is not a usable vdi database",
        after=_unchanged("junk.db", "not a database\n" * 200)),
    Row("serve-database-without-runs", "database", ("--db", "{tmp}/other.db", "serve"),
        make=_no_runs_table, error=r"other\.db' holds no vdi runs"),
    Row("serve-unknown-index", "options", ("serve", "--index", "nope"),
        make=lambda tmp, world: _db_with_a_run(tmp), error=r"no index named 'nope'",
        stderr=(r"Hint: .*vdi index list",)),
    Row("serve-index-checkpoint-gone", "checkpoint", ("serve", "--port", str(TAKEN_PORT)),
        make=_index_of_a_gone_checkpoint, slow=True,
        error=r"the index's checkpoint '.*ckpt' is gone",
        stderr=(r"Hint: rebuild the index",), after=_db_untouched_by_serve),
]
ROWS += ROWS_SERVE

# --- training recipes (`vdi train --recipe NAME|FILE`, `vdi recipes show`) --------------------

RECIPE_DATA = ("--annotations", "{data}/train.json", "--video-dir", "{data}/videos")

ROWS_RECIPES: list[Row] = [
    Row("recipe-unknown-name", "options", ("train", "--recipe", "charades-vdi", *RECIPE_DATA),
        error=r"unknown recipe 'charades-vdi' \(did you mean 'charades-sta-vdi'\?\)",
        stderr=(r"Hint: `vdi recipes` lists them: activitynet-mmn, .*charades-sta-vdi",),
        after=_before_the_run),
    Row("recipe-unknown-key", "options", ("train", "--recipe", "{tmp}/typo.toml", *RECIPE_DATA),
        make=_write("typo.toml", "epochs = 2\nbatch_sise = 4\n"),
        error=r"unknown recipe key 'batch_sise' in recipe file '.*typo\.toml' "
        r"\(did you mean 'batch_size'\?\)", stderr=(r"Hint: `vdi train --list-options`",),
        after=_before_the_run),
    Row("recipe-device-key", "options", ("train", "--recipe", "{tmp}/gpu.toml", *RECIPE_DATA),
        make=_write("gpu.toml", 'device = "cuda"\n'),
        error=r"unknown recipe key 'device' in recipe file '.*gpu\.toml'",
        stderr=(r"Hint: the device is the global option",), after=_before_the_run),
    Row("recipe-file-missing", "options", ("train", "--recipe", "{tmp}/gone.toml", *RECIPE_DATA),
        error=r"recipe file '.*gone\.toml' does not exist", after=_before_the_run),
    Row("recipe-not-toml", "options", ("train", "--recipe", "{tmp}/bad.toml", *RECIPE_DATA),
        make=_write("bad.toml", "epochs = = 2\n"),
        error=r"recipe file '.*bad\.toml' is not valid TOML", after=_before_the_run),
    Row("recipe-wrong-type", "options",
        ("train", "--recipe", "{tmp}/wrong.toml", "--dataset", "mmn-json", *RECIPE_DATA),
        make=_write("wrong.toml", 'epochs = "many"\n'),
        error=r"invalid training options \(with recipe 'wrong', .*wrong\.toml\): epochs",
        after=_before_the_run),
    Row("recipe-unknown-head-key", "options",
        ("train", "--recipe", "{tmp}/head.toml", "--dataset", "mmn-json", *RECIPE_DATA),
        make=_write("head.toml", "[head_options]\nhiden_size = 64\n"),
        error=r"unknown option 'hiden_size' for head 'mmn' \(did you mean 'hidden_size'\?\) "
        r"\(training with recipe 'head', .*head\.toml\)",
        stderr=(r"Hint: `vdi heads show mmn` lists its options",), after=_before_the_run),
    Row("recipe-show-unknown", "options", ("recipes", "show", "synthetic-dem"),
        error=r"unknown recipe 'synthetic-dem' \(did you mean 'synthetic-demo'\?\)"),
    Row("recipe-show-invalid", "options", ("recipes", "show", "{tmp}/unused.toml"),
        make=_write("unused.toml", "objectives = []\n[objective_options.visual-context]\n"
                    "heads = 2\n"),
        error=r"recipe 'unused' \(.*unused\.toml\) does not validate: objective options for "
        r"'visual-context', which this run does not use"),
]
ROWS += ROWS_RECIPES

# --- one CLI vocabulary: deprecated spellings, vdi eval's one rule (issue 24 item 5) ----------

STA = "AAA 0.0 4.0##person opens the door.\n"
VOCAB_EVAL = ("eval", "--dataset", "mmn-json", "--annotations", "{data}/train.json")
NO_MATCH = json.dumps({"qid": "nope", "pred_relevant_windows": [[0, 1, 0.5]]}) + "\n"
DEPRECATED = r"Warning: vdi {} is deprecated; use {} \(vdi 0\.2 removes it\)"

ROWS_VOCAB: list[Row] = [
    Row("vocab-eval-checkpoint-and-run", "options",
        (*VOCAB_EVAL, "--checkpoint", "{ckpt}", "--run", "{run}", "--video-dir", "{data}/videos"),
        exit=2, error=r"give exactly one of --checkpoint PATH and --run ID",
        stderr=(r"Hint: --run ID evaluates that training run's best checkpoint",),
        after=_before_the_run),
    Row("vocab-eval-predictions-and-baseline", "options",
        (*VOCAB_EVAL, "--predictions", "{tmp}/p.jsonl", "--baseline", "random"),
        make=_write("p.jsonl", NO_MATCH), exit=2, error=r"--baseline is a mode of its own",
        stderr=(r"Hint: drop --predictions / --checkpoint / --run",), after=_before_the_run),
    Row("vocab-eval-nothing-to-evaluate", "options", VOCAB_EVAL, exit=2,
        error=r"nothing to evaluate", stderr=(r"Hint: give --predictions FILE, or --checkpoint "
                                               r"PATH / --run ID with --video-dir, or --baseline",),
        after=_before_the_run),
    Row("vocab-eval-model-option-with-predictions", "options",
        (*VOCAB_EVAL, "--predictions", "{tmp}/p.jsonl", "--video-dir", "{data}/videos"),
        make=_write("p.jsonl", NO_MATCH), error=None, exit=0,
        stderr=(r"Warning: --video-dir is read only when evaluating a model; ignored with "
                r"--predictions",)),
    Row("vocab-deprecated-eval-format-still-works", "options",
        ("eval", "--format", "mmn-json", "--annotations", "{data}/train.json", "--predictions",
         "{tmp}/p.jsonl"), make=_write("p.jsonl", NO_MATCH), error=None, exit=0,
        stderr=(DEPRECATED.format("eval --format", "--dataset"),)),
    Row("vocab-deprecated-option-with-a-typo", "options",
        ("datasets", "check", "charades-sta", "{tmp}/sta.txt", "-o", "durashuns={tmp}/l.csv"),
        make=_write("sta.txt", STA),
        error=r"unknown option 'durashuns' for dataset 'charades-sta' \(did you mean "
        r"'durations'\?\)",
        stderr=(DEPRECATED.format("datasets check -o", "--dataset-option"),)),
]
ROWS += ROWS_VOCAB

# --- the shared world: one good video, one trained tiny checkpoint, one generated dataset ----

@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("catalogue")
    trained = train_tiny_checkpoint(root, db_name="world.db")
    summary, run_id = trained["summary"], trained["run"]
    video = make_video(root / "clip.mp4", seconds=20, fps=2, size=(48, 32))
    for i in range(MANY):
        make_video(root / "many" / f"v{i:02d}.mp4", seconds=20, fps=10, size=(64, 48), seed=i)
    return {"root": root, "video": str(video), "ckpt": summary["best_checkpoint"],
            "run": str(run_id), "data": str(root / "data"), "home": root / "home",
            "db": str(root / "world.db"), "many": str(root / "many")}


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
    _check_output(row, code, stderr)
    _check_disk(tmp, home, db)


def _check_output(row: Row, code: int, stderr: str) -> None:
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


def _check_disk(tmp: Path, home: Path, db: Path) -> None:
    from vdi_cli.store.runs import process_gone

    assert not _partial_files(tmp, home), _partial_files(tmp, home)
    if db.exists():
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
            tables = {r[0] for r in conn.execute("select name from sqlite_master")}
            if "runs" in tables:
                conn.row_factory = sqlite3.Row
                for run in map(dict, conn.execute("select * from runs")):
                    status, error = run["status"], run["error"]
                    # a SIGKILLed command cannot finish its row: it must read as gone
                    assert status in FINISHED or process_gone(run), status
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
    if row.signal is not None:
        code, out, err = _signalled(row, args, env, tmp)
    elif row.process:
        proc = run_vdi(args, env=env)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    else:
        result = invoke(args, env=env)
        code, out, err = result.exit_code, result.stdout, result.stderr
    if row.settle is not None:
        row.settle(tmp, world)
    _check_output(row, code, err)
    if row.then:
        again = run_vdi([_fill(a, values) for a in row.then], env=env)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "Traceback" not in again.stderr
        out, err = again.stdout, err + again.stderr
    _check_disk(tmp, home, db)
    for pattern in row.must_exist:
        assert list(tmp.glob(pattern)), f"{pattern} should exist"
    for pattern in row.must_not_exist:
        assert not list(tmp.glob(pattern)), f"{pattern} should not exist"
    if row.after is not None:
        row.after(tmp, world, (code, out, err))
    return code, out, err


def _signalled(row: Row, args: list[str], env: dict[str, str], tmp: Path
               ) -> tuple[int, str, str]:
    """Start the command, wait until `row.ready(tmp)`, send `row.signal`, collect the result."""
    import os
    import subprocess
    import sys
    import time

    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **env}
    proc = subprocess.Popen([sys.executable, "-m", "vdi_cli", *args], env=full_env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline and not row.ready(tmp):
        time.sleep(0.2)
    assert proc.poll() is None, "finished before the signal: " + proc.stderr.read()[-2000:]
    proc.send_signal(row.signal)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def _rows(db: Path, table: str) -> int:
    """Rows in a table of a database another process is writing (0 while it does not exist)."""
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute(f"select count(*) from {table}").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


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
