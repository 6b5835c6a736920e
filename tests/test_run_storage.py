"""Where training runs keep their files: one artifact folder per database, weights checked
against the hash the database recorded, old layouts still loading."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from vdi_cli.runs import run_context  # noqa: E402
from vdi_cli.store import open_db  # noqa: E402
from vdi_cli.testing import invoke, register_tiny_open_clip  # noqa: E402

SMALL_HEAD = {"hidden_size": 32, "joint_size": 16, "conv_layers": 2}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from vdi_plugins.synthetic.generate import generate

    root = tmp_path_factory.mktemp("storage-world")
    generate(root / "data", videos=4, seed=5, test_videos=1, fps=2, size=32)
    return root / "data"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("VDI_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("VDI_DB", raising=False)
    register_tiny_open_clip()
    return tmp_path / "home"


def train(db_path, data, **kw):
    from vdi_cli.pipeline.train_config import TrainConfig
    from vdi_cli.pipeline.train_run import run_training

    values = dict(dataset="mmn-json", annotations=str(data / "train.json"),
                  video_dir=str(data / "videos"), backbone="open_clip:vdi-tiny", fps=1,
                  epochs=1, batch_size=2, lr=1e-3, patience=0, freeze_text_epochs=0,
                  head_options=SMALL_HEAD, objectives=[])
    values.update(kw)
    db = open_db(db_path)
    with run_context(db, "train", {}) as run:
        summary = run_training(TrainConfig(**values), db, run, quiet=True, show_progress=False)
    return db, run.id, summary


def evaluate(db_path, data, *args):
    return invoke(["--db", db_path, "eval", *args, "--annotations", data / "test_iid.json",
                   "--format", "mmn-json", "--video-dir", data / "videos", "--json"])


def test_two_databases_under_one_home_keep_their_own_checkpoints(home, data, tmp_path):
    from vdi_cli.checkpoints import load_tensors, sha256_file
    from vdi_cli.store.artifacts import store_id

    db_a, run_a, a = train(tmp_path / "a.db", data, seed=1)
    db_b, run_b, b = train(tmp_path / "b.db", data, seed=2)
    assert run_a == run_b == 1  # the same run id in both databases...
    assert a["best_checkpoint"] != b["best_checkpoint"]  # ...and two folders, not one
    assert Path(a["best_checkpoint"]).is_relative_to(home / "stores" / store_id(db_a))
    assert Path(b["best_checkpoint"]).is_relative_to(home / "stores" / store_id(db_b))
    for db, summary in ((db_a, a), (db_b, b)):
        row = next(db["checkpoints"].rows_where("run_id = 1"))
        assert sha256_file(Path(row["path"]) / "model.safetensors") == row["sha256"]
        assert evaluate(db.conn.execute("PRAGMA database_list").fetchone()[2], data,
                        "--run", "1").json()["checkpoint"] == summary["best_checkpoint"]
    wa, wb = load_tensors(a["best_checkpoint"]), load_tensors(b["best_checkpoint"])
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)  # different seeds, different weights


def test_weights_that_are_not_the_recorded_ones_are_refused(home, data, tmp_path):
    """b's weights copied over a's (what the shared run folder used to do): loading a's run
    is refused, naming the hash, before any model is built; the eval run row says why."""
    db_a, _, a = train(tmp_path / "a.db", data, seed=1)
    _, _, b = train(tmp_path / "b.db", data, seed=2)
    shutil.copy(Path(b["best_checkpoint"]) / "model.safetensors",
                Path(a["best_checkpoint"]) / "model.safetensors")
    for args in (("--run", "1"), ("--checkpoint", a["best_checkpoint"])):
        result = evaluate(tmp_path / "a.db", data, *args)
        assert result.exit_code == 1, result.stderr
        assert "are not the ones the database recorded" in result.stderr
        assert "Hint: " in result.stderr and "Traceback" not in result.stderr
    retrieve = invoke(["--db", tmp_path / "a.db", "retrieve", data / "videos",
                       "a shape", "--run", "1"])
    assert retrieve.exit_code == 1 and "not the ones the database recorded" in retrieve.stderr
    errors = [r["error"] for r in db_a["runs"].rows_where("command = 'eval'")]
    assert errors and all("not the ones the database recorded" in e for e in errors)
    # a checkpoint folder no database recorded loads as before (nothing to check it against)
    assert evaluate(tmp_path / "c.db", data, "--checkpoint", b["best_checkpoint"]).exit_code == 0


def test_runs_in_the_old_layout_still_load_prune_and_resume(home, data, tmp_path):
    """A database from before per-database folders: its rows point at VDI_HOME/runs/run-<id>."""
    from vdi_cli.pipeline.train import run_folder

    db, run_id, summary = train(tmp_path / "a.db", data, epochs=2)
    legacy = home / "runs" / f"run-{run_id}"
    shutil.move(str(run_folder(db, run_id)), legacy)
    with db.conn:
        for row in list(db["checkpoints"].rows_where("run_id = ?", [run_id])):
            db["checkpoints"].update(row["id"], {"path": str(legacy / Path(row["path"]).name)})
    assert run_folder(db, run_id) == legacy
    shown = evaluate(tmp_path / "a.db", data, "--run", str(run_id))
    assert shown.exit_code == 0 and shown.json()["checkpoint"] == str(legacy / "epoch-002")
    (legacy / "epoch-003.tmp").mkdir()
    pruned = invoke(["--db", tmp_path / "a.db", "runs", "prune", str(run_id), "--json"])
    assert pruned.exit_code == 0 and pruned.json()[0]["removed_temporaries"] == ["epoch-003.tmp"]
    resumed = invoke(["--db", tmp_path / "a.db", "train", "--resume", str(run_id), "--epochs", "3",
                      "--json"])
    assert resumed.exit_code == 0, resumed.stderr
    out = resumed.json()
    assert Path(out["best_checkpoint"]).parent == run_folder(db, out["run_id"])


def test_checkpoints_store_only_what_training_changed(home, data, tmp_path):
    """Epoch 1 (text tower frozen) stores no text tensor, epoch 2 only the trainable last block
    and what follows it; only the newest epoch keeps the optimiser state; each loads to the
    weights training had (the rest from the pretrained backbone)."""
    from vdi_cli.backbones import load_backbone
    from vdi_cli.checkpoints import load_tensors, read_config
    from vdi_cli.model import load_model

    db, run_id, _ = train(tmp_path / "a.db", data, epochs=2, freeze_text_epochs=1,
                          train_text_layers=1, keep_checkpoints="all")
    rows = {r["epoch"]: Path(r["path"]) for r in db["checkpoints"].rows_where("run_id = 1")}
    first, second = load_tensors(rows[1]), load_tensors(rows[2])
    assert not [k for k in first if k.startswith("text.")]
    stored = sorted(k[len("text."):] for k in second if k.startswith("text."))
    assert stored and all("resblocks.0." not in k and "embedding" not in k for k in stored)
    assert read_config(rows[2])["text_tensors"] == {
        "stored": len(stored), "total": len(load_backbone("open_clip:vdi-tiny")
                                            .named_text_parameters()), "rest": "pretrained"}
    assert [p.name for p in sorted(rows[1].iterdir())] == ["config.json", "model.safetensors"]
    assert (rows[2] / "train_state.pt").is_file()
    pretrained = load_backbone("open_clip:vdi-tiny").text_state_dict()
    for epoch, tensors in ((1, first), (2, second)):
        model, _ = load_model(rows[epoch])
        text = model.backbone.text_state_dict()
        for name, value in text.items():
            want = tensors.get(f"text.{name}", pretrained[name])
            assert torch.equal(value, want), (epoch, name)


def test_best_last_is_the_default_and_old_full_checkpoints_still_load(home, data, tmp_path):
    from vdi_cli.checkpoints import save_checkpoint
    from vdi_cli.model import load_model

    db, run_id, summary = train(tmp_path / "a.db", data, epochs=3)
    assert len(list(db["checkpoints"].rows_where("run_id = 1"))) <= 2
    # the old format: every text tensor and the optimiser state in every epoch
    model, config = load_model(summary["best_checkpoint"])
    old = model.state_tensors()
    for name in list(old):
        if name.startswith("text."):
            old[name] = old[name] + 0.5  # unlike the pretrained values, so a fallback would show
    old_config = {k: v for k, v in config.items() if k not in ("text_tensors", "components",
                                                                "format")}
    save_checkpoint(tmp_path / "old" / "epoch-003", old_config, old, {"epoch": 3})
    reloaded, _ = load_model(tmp_path / "old" / "epoch-003")
    for name, value in reloaded.backbone.text_state_dict().items():
        assert torch.equal(value, old[f"text.{name}"]), name


def test_runs_gc_removes_leftovers_of_this_database_only(home, data, tmp_path):
    import json
    import os

    from vdi_cli.pipeline.train import run_folder

    db, run_id, summary = train(tmp_path / "a.db", data, epochs=2, keep_checkpoints="all")
    _, _, other = train(tmp_path / "b.db", data, seed=3, fps=2)  # another database, same home
    folder = run_folder(db, run_id)
    rows = {r["epoch"]: r for r in db["checkpoints"].rows_where("run_id = ?", [run_id])}
    stale = folder / "epoch-003.tmp"  # a kill inside save_checkpoint
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"x" * 1000)
    orphan = folder / "epoch-009"  # a folder no row points at
    orphan.mkdir()
    (orphan / "model.safetensors").write_bytes(b"y" * 2000)
    ghost = folder.parent / "run-77"  # a run folder whose run is not in this database
    ghost.mkdir()
    shutil.rmtree(rows[1]["path"])  # a row whose files are gone
    feature = next(db["features"].rows)
    Path(feature["path"]).unlink()  # a feature row whose file is gone
    cache = Path(feature["path"]).parent
    old_staging, new_staging = cache / ".abc.x1.tmp", cache / ".abc.x2.tmp"
    for path in (old_staging, new_staging):
        path.write_bytes(b"z" * 500)
    os.utime(old_staging, (0, 0))  # left by an extraction killed long ago
    legacy = home / "runs" / "run-1" / "epoch-001.tmp"  # the old shared layout: not ours
    legacy.mkdir(parents=True)

    args = ["--db", tmp_path / "a.db", "runs", "gc"]
    dry = invoke([*args, "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.stderr
    plan = dry.json()
    assert plan["dry_run"] and stale.is_dir() and orphan.is_dir() and old_staging.is_file()
    result = invoke([*args, "--json"])
    assert result.exit_code == 0, result.stderr
    done = result.json()
    assert {k: v for k, v in done.items() if k != "dry_run"} == {
        k: v for k, v in plan.items() if k != "dry_run"}
    assert done["temporaries"] == [str(stale)]
    assert done["checkpoint_folders"] == [str(orphan), str(ghost)]
    assert done["checkpoint_rows"] == [{"run_id": run_id, "epoch": 1, "path": rows[1]["path"]}]
    assert done["feature_rows"] == [{"id": feature["id"], "path": feature["path"]}]
    assert done["feature_staging"] == [str(old_staging)]
    assert done["freed_bytes"] == 1000 + 2000 + 500
    assert done["unreferenced_features_kept"]["files"] >= 1  # b.db's features, shared cache
    assert not stale.exists() and not orphan.exists() and not ghost.exists()
    assert not old_staging.exists() and new_staging.is_file() and legacy.is_dir()
    assert [r["epoch"] for r in db["checkpoints"].rows_where("run_id = ?", [run_id])] == [2]
    assert db["features"].count_where("id = ?", [feature["id"]]) == 0
    assert (Path(other["best_checkpoint"]) / "model.safetensors").is_file()  # b.db untouched
    assert evaluate(tmp_path / "b.db", data, "--run", "1").exit_code == 0
    assert evaluate(tmp_path / "a.db", data, "--run", str(run_id)).exit_code == 0
    again = invoke(args)
    assert again.exit_code == 0 and "removed 0 items (0.0 MB)" in again.stdout
    assert "kept" in again.stdout and json.loads(invoke([*args, "--json"]).stdout)[
        "freed_bytes"] == 0
