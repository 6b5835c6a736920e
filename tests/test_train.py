"""VDI training end to end on generated videos with the tiny open_clip model: losses fall,
checkpoints reload to identical predictions, resume continues the same trajectory, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from vdi_cli.errors import VdiError  # noqa: E402
from vdi_cli.hookspecs import hookimpl  # noqa: E402
from vdi_cli.pipeline.train import select_text_parameters  # noqa: E402
from vdi_cli.pipeline.train_config import TrainConfig  # noqa: E402
from vdi_cli.pipeline.train_data import VideoSample, collate, epoch_batches  # noqa: E402
from vdi_cli.runs import run_context  # noqa: E402
from vdi_cli.store import open_db  # noqa: E402
from vdi_cli.testing import invoke, register_tiny_open_clip  # noqa: E402

SMALL_HEAD = {"hidden_size": 32, "joint_size": 16, "conv_layers": 2}
SMALL_OBJ = {"visual-context": {"heads": 2}, "spatial-dynamic": {"sequence_options": {"heads": 2}}}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from vdi_plugins.synthetic.generate import generate

    root = tmp_path_factory.mktemp("train-world")
    generate(root / "data", videos=4, seed=5, test_videos=2, fps=4, size=32)
    return root


@pytest.fixture
def home(world, monkeypatch):
    """Share one VDI_HOME/database across a test so features are extracted once per test."""
    monkeypatch.setenv("VDI_HOME", str(world / "home"))
    monkeypatch.setenv("VDI_DB", str(world / "vdi.db"))
    register_tiny_open_clip()
    return world


def _config(world, **kw):
    values = dict(dataset="mmn-json", annotations=str(world / "data" / "train.json"),
                  val=str(world / "data" / "test_iid.json"),
                  video_dir=str(world / "data" / "videos"), backbone="open_clip:vdi-tiny",
                  fps=2, epochs=3, batch_size=2, lr=1e-3, patience=0, freeze_text_epochs=0,
                  head_options=SMALL_HEAD, objective_options=SMALL_OBJ)
    values.update(kw)
    return TrainConfig(**values)


def _train(world, resume=None, **kw):
    from vdi_cli.pipeline.train_run import run_training

    db = open_db(world / "vdi.db")
    with run_context(db, "train", {}) as run:
        summary = run_training(_config(world, **kw), db, run, resume=resume, quiet=True,
                               show_progress=False)
    return db, run.id, summary


def test_training_lowers_the_loss_and_writes_checkpoints_and_metrics(home):
    db, run_id, summary = _train(home, keep_checkpoints="all")
    losses = [h["losses"]["loss"] for h in summary["history"]]
    assert losses[-1] < losses[0]
    assert {"iou", "vid", "sent", "visual-context", "spatial-dynamic"} <= set(
        summary["history"][0]["losses"])
    rows = list(db["checkpoints"].rows_where("run_id = ?", [run_id], order_by="epoch"))
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert sum(r["best"] for r in rows) == 1
    names = {r["name"] for r in db["metrics"].rows_where("run_id = ?", [run_id])}
    assert {"loss/iou", "loss/visual-context", "R@1,IoU=0.5", "mIoU"} <= names
    assert summary["torch_threads"] == torch.get_num_threads()
    assert summary["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert summary["cpu_capability"] in {"DEFAULT", "NO AVX", "AVX2", "AVX512", "Z VECTOR", "VSX",
                                         "SVE256"}


def test_prune_checkpoints_keeps_the_best_and_the_newest(tmp_path):
    from vdi_cli.pipeline.train_run import prune_checkpoints

    db = open_db(tmp_path / "vdi.db")
    with run_context(db, "train", {}) as mine, run_context(db, "train", {}) as other:
        pass
    folder = tmp_path / "runs" / f"run-{mine.id}"
    outside = tmp_path / "elsewhere" / "epoch-001"
    for path in (outside, *(folder / f"epoch-{k:03d}" for k in (2, 3, 4))):
        path.mkdir(parents=True)
        (path / "model.safetensors").write_text("x")
    rows = [(1, outside, 0), (2, folder / "epoch-002", 1), (3, folder / "epoch-003", 0),
            (4, folder / "epoch-004", 0)]
    db["checkpoints"].insert_all({"run_id": mine.id, "epoch": e, "path": str(p), "best": b}
                                 for e, p, b in rows)
    db["checkpoints"].insert({"run_id": other.id, "epoch": 3, "path": str(folder), "best": 0})

    assert prune_checkpoints(db, mine.id, folder, newest_epoch=4) == ([1, 3], 1)
    kept = db["checkpoints"].rows_where("run_id = ?", [mine.id], order_by="epoch")
    assert [r["epoch"] for r in kept] == [2, 4]
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-002", "epoch-004"]
    assert outside.is_dir()  # a row pointing outside the run's folder loses its row only
    assert db["checkpoints"].count_where("run_id = ?", [other.id]) == 1  # other runs untouched


def test_keep_best_last_leaves_two_checkpoints_and_resumes(home):
    db, run_id, summary = _train(home, epochs=3, keep_checkpoints="best-last")
    rows = list(db["checkpoints"].rows_where("run_id = ?", [run_id], order_by="epoch"))
    assert [r["epoch"] for r in rows] == sorted({summary["best_epoch"], 3})
    from vdi_cli.pipeline.train import run_folder

    on_disk = sorted(p.name for p in run_folder(db, run_id).iterdir())
    assert on_disk == [f"epoch-{r['epoch']:03d}" for r in rows]
    db, _, resumed = _train(home, epochs=4, resume=run_id, keep_checkpoints="best-last")
    assert [h["epoch"] for h in resumed["history"]] == [4]


def test_checkpoint_reload_gives_identical_predictions(home):
    from vdi_cli.model import load_model
    from vdi_cli.pipeline.train_data import group_by_video

    db, run_id, summary = _train(home, epochs=1, objectives=[], objective_options={})
    path = summary["best_checkpoint"]
    from vdi_cli.datasets import load_dataset
    from vdi_cli.pipeline.feature_source import FeatureSource
    from vdi_cli.pipeline.infer import predict

    model_a, config = load_model(path)
    model_b, _ = load_model(path)
    assert config["backbone"]["id"] == "open_clip:vdi-tiny"
    assert config["sampling"] == {"fps": 2.0}
    samples = group_by_video(load_dataset("mmn-json", home / "data" / "test_iid.json").annotations)
    source = FeatureSource(db, model_a.backbone, config["sampling"], patches=False)
    source.ensure([s.video_id for s in samples], home / "data" / "videos", show_progress=False)
    pa = predict(model_a, samples, source, top_k=5)
    pb = predict(model_b, samples, source, top_k=5)
    assert pa == pb and len(pa) == sum(len(s.queries) for s in samples)
    per_query = [v for v in samples for _ in v.queries]
    for s_windows, s in zip(pa, per_query, strict=True):
        assert 1 <= len(s_windows) <= 5
        assert all(0 <= a < b <= s.duration + 1e-4 for a, b, _ in s_windows)
        assert [w[2] for w in s_windows] == sorted((w[2] for w in s_windows), reverse=True)


def test_resume_continues_the_same_trajectory(home):
    from vdi_cli.checkpoints import load_tensors

    def epoch_path(run_id, epoch):
        return next(db["checkpoints"].rows_where("run_id = ? and epoch = ?",
                                                 [run_id, epoch]))["path"]

    db, straight_id, straight = _train(home, epochs=2)
    db, first, _ = _train(home, epochs=1)
    db, resumed_id, resumed = _train(home, epochs=2, resume=first)
    assert [h["epoch"] for h in resumed["history"]] == [2]
    a = load_tensors(epoch_path(straight_id, 2))
    b = load_tensors(epoch_path(resumed_id, 2))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)
    assert straight["history"][-1]["losses"] == pytest.approx(resumed["history"][0]["losses"])


def test_text_layer_selection_on_open_clip_names():
    names = [("token_embedding.weight", 0), ("positional_embedding", 1),
             ("transformer.resblocks.0.attn.in_proj_weight", 2),
             ("transformer.resblocks.1.attn.in_proj_weight", 3),
             ("transformer.resblocks.1.mlp.c_fc.weight", 4), ("ln_final.weight", 5),
             ("text_projection", 6)]
    assert select_text_parameters(names, None) == [0, 1, 2, 3, 4, 5, 6]
    assert select_text_parameters(names, 1) == [3, 4, 5, 6]
    assert select_text_parameters(names, 0) == []
    assert select_text_parameters(names, None, "token-embeddings") == [0]


def test_token_embeddings_only_and_mean_pooling_train_and_reload(home):
    import torch

    from vdi_cli.backbones import load_backbone
    from vdi_cli.checkpoints import load_tensors
    from vdi_cli.model import load_model

    _, _, summary = _train(home, epochs=1, objectives=[], objective_options={},
                           text_trainable="token-embeddings", text_pool="mean")
    path = summary["best_checkpoint"]
    trained = {k[len("text."):]: v for k, v in load_tensors(path).items()
               if k.startswith("text.")}
    pretrained = load_backbone("open_clip:vdi-tiny").text_state_dict()
    # only what trained is stored; everything else stayed pretrained and is referenced
    assert list(trained) == ["token_embedding.weight"]
    assert not torch.equal(trained["token_embedding.weight"], pretrained["token_embedding.weight"])
    model, config = load_model(path)
    assert config["text_pool"] == "mean" and model.text_pool == "mean"
    texts = ["a red square slides left", "the blue circle grows"]
    with torch.no_grad():
        want = model.backbone.encode_text(model.backbone.tokenize(texts), pool="mean")
        torch.testing.assert_close(model.encode_texts(texts), want, atol=1e-5, rtol=1e-5)


def test_batches_depend_only_on_seed_and_epoch():
    a = epoch_batches(10, 4, seed=1, epoch=2)
    assert a == epoch_batches(10, 4, seed=1, epoch=2)
    assert a != epoch_batches(10, 4, seed=1, epoch=3)
    assert sorted(i for b in a for i in b) == list(range(10)) and [len(b) for b in a] == [4, 4, 2]


def test_moment_scope_masks_frames_outside_the_moment():
    from vdi_cli.pipeline.train_data import VideoFeatures
    from vdi_cli.types import ParsedQuery

    pq = ParsedQuery("q", (), (), "", "", (), ())
    sample = VideoSample("v", 4.0, ["a", "b"], [pq, pq], [(1.0, 2.0), (3.2, 3.4)], ["0", "1"])
    feats = VideoFeatures(torch.zeros(4, 3), None, torch.tensor([0.0, 1.0, 2.0, 3.0]))
    batch = collate([sample], lambda _: feats)
    assert batch.sentence_frame_mask("video").tolist() == [[True] * 4] * 2
    assert batch.sentence_frame_mask("moment").tolist() == [[False, True, True, False],
                                                           [False, False, False, True]]


def test_train_command_errors(home):
    result = invoke(["train", "--dataset", "mmn-json", "--annotations",
                     home / "data" / "train.json", "--video-dir", home / "nowhere",
                     "--backbone", "open_clip:vdi-tiny", "--epochs", "1"])
    assert result.exit_code == 1
    assert "Error: no usable video" in result.stderr and "Hint:" in result.stderr
    runs = invoke(["runs", "list", "--json"]).json()
    assert runs[0]["command"] == "train" and runs[0]["status"] == "error"
    both = invoke(["train", "--dataset", "mmn-json", "--annotations", "x", "--video-dir", "y",
                   "--objective", "visual-context", "--no-objective"])
    assert both.exit_code == 1 and "contradict" in both.stderr
    bad = invoke(["train", "--dataset", "mmn-json", "--annotations", "x", "--video-dir", "y",
                  "-o", "scope=everywhere"])
    assert bad.exit_code == 1 and "invalid training options: scope" in bad.stderr
    keep = invoke(["train", "--dataset", "mmn-json", "--annotations", "x", "--video-dir", "y",
                   "-o", "keep_checkpoints=best"])
    assert keep.exit_code == 1 and "invalid training options: keep_checkpoints" in keep.stderr
    assert "'all' or 'best-last'" in keep.stderr
    unused = invoke(["train", "--dataset", "mmn-json", "--annotations", "x", "--video-dir", "y",
                     "--objective", "visual-context", "-O", "spatial-dynamic.weight=1"])
    assert unused.exit_code == 1 and "Traceback" not in unused.stderr
    assert ("invalid training options: objective options for 'spatial-dynamic', which this run "
            "does not use (objectives: visual-context)") in unused.stderr
    assert "Hint:" in unused.stderr
    both_text = invoke(["train", "--dataset", "mmn-json", "--annotations", "x",
                        "--video-dir", "y", "-o", "text_trainable=token-embeddings",
                        "-o", "train_text_layers=1"])
    assert both_text.exit_code == 1 and "contradict: choose one" in both_text.stderr
    malformed = invoke(["train", "--dataset", "mmn-json", "--annotations", "x",
                        "--video-dir", "y", "-O", "visual-context.=1"])
    assert malformed.exit_code == 1 and "is not ID.key=value" in malformed.stderr
    with pytest.raises(VdiError, match="no run with id 999"):
        _train(home, epochs=1, resume=999)


def test_objective_options_split_at_the_first_dot_and_nest():
    from vdi_cli.commands.train_cmd import _component_options

    got = _component_options(["visual-context.probe=query", "spatial-dynamic.weight=0.1",
                              "spatial-dynamic.sequence_options.heads=4",
                              "spatial-dynamic.sequence_options.layers=2"], "objective")
    assert got == {"visual-context": {"probe": "query"},
                   "spatial-dynamic": {"weight": 0.1,
                                       "sequence_options": {"heads": 4, "layers": 2}}}


def test_eval_model_mode_with_query_forms(home):
    db, run_id, summary = _train(home, epochs=1)
    args = ["eval", "--run", run_id, "--annotations", home / "data" / "test_iid.json",
            "--format", "mmn-json", "--video-dir", home / "data" / "videos"]
    result = invoke([*args, "--query-form", "q,static,dynamic", "--json"])
    assert result.exit_code == 0, result.stderr
    out = result.json()
    assert out["checkpoint"] == summary["best_checkpoint"]
    assert set(out["forms"]) == {"q", "static", "dynamic"}
    q = out["forms"]["q"]
    assert q["queries"] == q["predictions"] and q["missing"] == 0
    for form in out["forms"].values():
        assert all(0.0 <= v <= 100.0 for v in form["metrics"].values())
        assert form["metrics"]["R@1,IoU=0.3"] >= form["metrics"]["R@1,IoU=0.7"]
        assert form["metrics"]["R@5,IoU=0.5"] >= form["metrics"]["R@1,IoU=0.5"]
    # the same checkpoint gives the same numbers through --checkpoint
    again = invoke(["eval", "--checkpoint", summary["best_checkpoint"], *args[3:], "--json"])
    assert again.json()["forms"]["q"]["metrics"] == q["metrics"]
    rows = list(db["predictions"].rows_where("run_id = ?", [out["run_id"]]))
    assert rows and min(r["rank"] for r in rows) == 1
    splits = {r["split"] for r in db["metrics"].rows_where("run_id = ?", [out["run_id"]])}
    assert splits == {"test_iid", "test_iid/static", "test_iid/dynamic"}
    table = invoke([*args, "--query-form", "q,dynamic"])
    assert table.stdout.splitlines()[2].startswith("q ") and "dynamic" in table.stdout
    # per action: the groups add up to the whole, and each group's prior comes with it
    grouped = invoke([*args, "--by", "actions", "--train", home / "data" / "train.json",
                      "--json"]).json()
    groups = grouped["groups"]
    assert sum(g["queries"] for g in groups) == q["queries"]
    hits = sum(g["recall"] * g["queries"] for g in groups) / q["queries"]
    assert hits == pytest.approx(q["metrics"]["R@1,IoU=0.5"], abs=0.01)
    assert [p["group"] for p in grouped["prior"]] == [g["group"] for g in groups]
    assert "per actions:" in invoke([*args, "--by", "actions"]).stdout
    unknown = invoke([*args, "--by", "colour"])
    assert unknown.exit_code == 1 and "no annotated query has a 'colour' field" in unknown.stderr


def test_eval_model_mode_errors(home):
    base = ["eval", "--annotations", home / "data" / "test_iid.json", "--format", "mmn-json"]
    nothing = invoke(base)
    assert nothing.exit_code == 2 and "Error: nothing to evaluate" in nothing.stderr
    no_dir = invoke([*base, "--checkpoint", home / "nope"])
    assert no_dir.exit_code == 2 and "--video-dir" in no_dir.stderr
    missing = invoke([*base, "--checkpoint", home / "nope", "--video-dir", home])
    assert missing.exit_code == 1 and "does not exist" in missing.stderr
    bad_run = invoke([*base, "--run", "424242", "--video-dir", home])
    assert bad_run.exit_code == 1 and "no run with id 424242" in bad_run.stderr
    form = invoke([*base, "--run", "1", "--video-dir", home, "--query-form", "verbs"])
    assert form.exit_code == 1 and "unknown query form 'verbs'" in form.stderr
    runs = invoke(["runs", "list", "--json", "--command", "eval"]).json()
    assert runs[0]["status"] == "error"


def test_checkpoint_refuses_another_backbone_or_sampling():
    from vdi_cli.checkpoints import check_compatible

    config = {"backbone": {"id": "tiny-shapes", "weights": "sha256:ab"}, "sampling": {"fps": 2.0}}
    check_compatible(config, backbone="tiny-shapes", weights="sha256:ab", sampling={"fps": 2.0})
    with pytest.raises(VdiError, match="trained with backbone 'tiny-shapes', not 'clip-vit-b32'"):
        check_compatible(config, backbone="clip-vit-b32")
    with pytest.raises(VdiError, match="weights 'sha256:ab', not 'openai'"):
        check_compatible(config, weights="openai")
    with pytest.raises(VdiError) as exc:
        check_compatible(config, sampling={"fps": 1.0})
    assert "sampled with {'fps': 2.0}" in exc.value.message


@pytest.mark.gpu
def test_training_steps_on_cuda_with_mixed_precision(home):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    _, _, summary = _train(home, epochs=1, device="cuda")
    assert torch.isfinite(torch.tensor(summary["history"][0]["losses"]["loss"]))


def test_runs_prune_command_keeps_best_and_newest_and_refuses_bad_ids(home):
    from vdi_cli.runs import start_run

    db, run_id, summary = _train(home, epochs=3, keep_checkpoints="all")
    from vdi_cli.pipeline.train import run_folder

    folder = run_folder(db, run_id)
    assert len(list(folder.iterdir())) == 3
    keep = sorted({summary["best_epoch"], 3})
    gone = [e for e in (1, 2, 3) if e not in keep]
    running = start_run(db, "train")  # a run whose process is still going (or was killed)
    with run_context(db, "extract", {}) as extract:
        pass
    for args, message in (([run_id, 99999], "Error: no run with id 99999"),
                          ([extract.id], f"Error: run {extract.id} was made by `vdi extract`"),
                          ([running], f"Error: run {running} is still running")):
        bad = invoke(["runs", "prune", *args])
        assert bad.exit_code == 1 and message in bad.stderr and "Hint:" in bad.stderr
        assert len(list(folder.iterdir())) == 3  # checked before anything is deleted

    result = invoke(["runs", "prune", run_id, running, "--force", "--json"])
    assert result.exit_code == 0, result.stderr
    first, second = result.json()
    assert first["removed_epochs"] == gone and first["kept_epochs"] == keep
    assert first["freed_bytes"] > 1_000_000  # a tiny model's weights and optimiser state
    assert second == {"run_id": running, "removed_epochs": [], "kept_epochs": [],
                      "removed_temporaries": [], "freed_bytes": 0}
    assert sorted(p.name for p in folder.iterdir()) == [f"epoch-{e:03d}" for e in keep]
    rows = db["checkpoints"].rows_where("run_id = ?", [run_id], order_by="epoch")
    assert [r["epoch"] for r in rows] == keep
    again = invoke(["runs", "prune", run_id])
    assert again.exit_code == 0
    assert again.stdout.strip() == (f"run {run_id}: removed epochs none (0.0 MB), kept "
                                    + ", ".join(map(str, keep)))


def test_sigterm_stops_training_like_ctrl_c_and_keeps_its_checkpoints(world, tmp_path):
    """`kill` (or a closed terminal) mid-training: exit 143, no traceback, the run row says
    `interrupted` and why instead of staying `running`, finished epochs are kept."""
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "VDI_HOME": str(tmp_path / "home"),
           "VDI_DB": str(tmp_path / "vdi.db"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vdi_cli", "train", "--dataset", "mmn-json", "--annotations",
         str(world / "data" / "train.json"), "--video-dir", str(world / "data" / "videos"),
         "--backbone", "tiny-shapes", "--fps", "2", "--epochs", "1000", "--batch-size", "2",
         "--no-objective", "-H", "hidden_size=32", "-H", "conv_layers=2", "-o", "patience=0",
         "-o", "keep_checkpoints=all"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    db = None
    while time.monotonic() < deadline and proc.poll() is None:
        if (tmp_path / "vdi.db").exists():
            db = open_db(tmp_path / "vdi.db")
            if db["checkpoints"].exists() and db["checkpoints"].count >= 2:
                break
        time.sleep(0.5)
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert err.rstrip().endswith("Stopped by SIGTERM.") and "Traceback" not in err
    run = db["runs"].get(1)
    assert (run["command"], run["status"], run["error"]) == ("train", "interrupted",
                                                             "stopped by SIGTERM")
    rows = list(db["checkpoints"].rows_where("run_id = 1", order_by="epoch"))
    assert len(rows) >= 2
    for row in rows:
        assert (Path(row["path"]) / "model.safetensors").is_file()


def test_two_processes_with_the_same_seed_train_bit_identical_models(world, tmp_path):
    """The experiment's tables are reproducible from their command: `vdi train` with both VDI
    objectives, run twice in fresh processes with different hash seeds (so any dependence on set
    or dict order would show), gives the same losses and bit-identical weights."""
    from vdi_cli.checkpoints import load_tensors
    from vdi_cli.testing import run_vdi

    env = {"VDI_HOME": str(tmp_path / "home"), "VDI_DB": str(tmp_path / "vdi.db")}
    argv = ["train", "--dataset", "mmn-json", "--annotations", world / "data" / "train.json",
            "--video-dir", world / "data" / "videos", "--backbone", "tiny-shapes", "--fps", "2",
            "--epochs", "2", "--batch-size", "2", "-H", "hidden_size=32", "-H", "conv_layers=2",
            "-o", "patience=0", "-o", "freeze_text_epochs=0", "-O", "visual-context.heads=2",
            "-O", "spatial-dynamic.sequence_options.heads=2", "--seed", "3", "--json"]
    runs = []
    for hash_seed in ("1", "2"):
        done = run_vdi(argv, env={**env, "PYTHONHASHSEED": hash_seed})
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(json.loads(done.stdout))
    assert runs[0]["history"] == runs[1]["history"]
    assert {"visual-context", "spatial-dynamic"} <= set(runs[0]["history"][-1]["losses"])
    a, b = (load_tensors(Path(r["best_checkpoint"])) for r in runs)
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_a_resumed_run_records_the_best_checkpoint_it_really_has(home):
    """R@1,IoU=0.7 stays 0 on this data, so the best is epoch 1, trained by the parent run: the
    resumed run's best row must name epoch 1 *and* point at its weights, and `--run` loads them."""
    from vdi_cli.checkpoints import load_tensors
    from vdi_cli.pipeline.evaluate_model import resolve_checkpoint

    metric = "R@1,IoU=0.7"
    db, first, one = _train(home, epochs=2, select_metric=metric)
    assert one["best_epoch"] == 1
    db, second, resumed = _train(home, epochs=4, resume=first, select_metric=metric)
    assert [h["epoch"] for h in resumed["history"]] == [3, 4]
    assert all(h["val"][metric] == 0 for h in one["history"] + resumed["history"])
    best = [r for r in db["checkpoints"].rows_where("run_id = ?", [second]) if r["best"]]
    assert len(best) == 1 and best[0]["epoch"] == 1 == resumed["best_epoch"]
    assert best[0]["path"] == one["best_checkpoint"] == resumed["best_checkpoint"]
    assert Path(best[0]["path"]).name == "epoch-001"
    assert resolve_checkpoint(db, None, second) == one["best_checkpoint"]
    out = invoke(["eval", "--run", second, "--annotations", home / "data" / "test_iid.json",
                  "--format", "mmn-json", "--video-dir", home / "data" / "videos", "--json"])
    assert out.exit_code == 0, out.stderr
    assert out.json()["checkpoint"] == one["best_checkpoint"]
    want = load_tensors(one["best_checkpoint"])
    got = load_tensors(out.json()["checkpoint"])
    assert all(torch.equal(want[k], got[k]) for k in want)


class StopAfter:
    """A logger plugin that presses Ctrl-C once epoch `epoch`'s checkpoint is saved."""

    def __init__(self, epoch):
        self.epoch = epoch

    @hookimpl
    def track_event(self, event):
        if event.kind == "checkpoint_saved" and event.payload["epoch"] == self.epoch:
            raise KeyboardInterrupt


def _train_stopped(world, after, **kw):
    """A run stopped (Ctrl-C, finished `interrupted`) right after epoch `after`."""
    from vdi_cli.testing import plugin_host

    db = open_db(world / "vdi.db")
    with plugin_host(StopAfter(after)), pytest.raises(KeyboardInterrupt):
        _train(world, **kw)
    run_id = max(r["id"] for r in db["runs"].rows)
    assert db["runs"].get(run_id)["status"] == "interrupted"
    return db, run_id


def test_resume_alone_continues_with_the_stored_options(home):
    """`vdi train --resume ID` needs no other option: it trains the stored configuration (lr,
    head, objectives, data...), so it ends where an uninterrupted run ends."""
    from vdi_cli.checkpoints import load_tensors

    db, straight_id, straight = _train(home, epochs=3)
    db, cut = _train_stopped(home, 1, epochs=3)
    result = invoke(["train", "--resume", cut, "--json"])
    assert result.exit_code == 0, result.stderr
    out = result.json()
    assert out["epochs"] == [2, 3] and out["resumed_from"] == cut
    for got, want in zip(out["history"], straight["history"][1:], strict=True):
        assert got["losses"] == pytest.approx(want["losses"])
    a = load_tensors(next(db["checkpoints"].rows_where("run_id = ? and epoch = 3",
                                                       [straight_id]))["path"])
    b = load_tensors(next(db["checkpoints"].rows_where("run_id = ? and epoch = 3",
                                                       [out["run_id"]]))["path"])
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)
    recorded = json.loads(db["runs"].get(out["run_id"])["config"])
    assert recorded["lr"] == 1e-3 and recorded["head_options"] == SMALL_HEAD


def test_resume_refuses_changed_options_before_loading_anything(home):
    db, parent, _ = _train(home, epochs=1)
    runs, features = db["runs"].count, db["features"].count
    changed = invoke(["train", "--resume", parent, "--epochs", "2", "--lr", "0.5",
                      "-H", "hidden_size=64", "--backbone", "tiny-shapes", "--fps", "1"])
    assert changed.exit_code == 1, changed.stderr
    error = changed.stderr.splitlines()[0]
    assert error.startswith(f"Error: --resume {parent} continues with the stored options")
    for diff in ("backbone: 'open_clip:vdi-tiny' -> 'tiny-shapes'", "fps: 2.0 -> 1.0",
                 "head_options.hidden_size: 32 -> 64", "lr: 0.001 -> 0.5"):
        assert diff in error
    assert "Hint: " in changed.stderr and "Traceback" not in changed.stderr
    # refused up front: no run row, no feature of the other backbone extracted
    assert (db["runs"].count, db["features"].count) == (runs, features)
    done = invoke(["train", "--resume", parent])
    assert done.exit_code == 1 and f"run {parent} has already trained 1 of 1 epochs" in done.stderr
    other = invoke(["train", "--resume", parent, "--epochs", "2", "--lr", "0.001",
                    "--batch-size", "2", "-H", "hidden_size=32", "--annotations",
                    home / "data" / ".." / "data" / "train.json", "-o", "patience=5", "--json"])
    assert other.exit_code == 0, other.stderr  # equal to the stored values, or may change
    assert other.json()["epochs"] == [2]
    missing = invoke(["train", "--annotations", "x.json"])
    assert missing.exit_code == 2 and "missing options --dataset, --video-dir" in missing.stderr
    with run_context(db, "extract", {}) as extract:
        pass
    wrong = invoke(["train", "--resume", extract.id])
    assert wrong.exit_code == 1 and "nothing to resume" in wrong.stderr


def test_checkpoint_files_follow_the_umask(tmp_path):
    """safetensors writes 0600; a checkpoint is as readable as any other file the user makes."""
    from vdi_cli.checkpoints import save_checkpoint

    old = os.umask(0o022)
    try:
        folder, _ = save_checkpoint(tmp_path / "epoch-001", {"epoch": 1},
                                    {"head.w": torch.ones(3)}, {"epoch": 1})
        assert {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()} == {
            "config.json": 0o644, "model.safetensors": 0o644, "train_state.pt": 0o644}
        os.umask(0o077)
        folder, _ = save_checkpoint(tmp_path / "epoch-002", {"epoch": 2}, {"head.w": torch.ones(3)})
        assert {p.stat().st_mode & 0o777 for p in folder.iterdir()} == {0o600}
    finally:
        os.umask(old)


class _ShinyHeads:
    """A third-party head plugin (in-process): the MMN head under another id."""

    @staticmethod
    def register_heads(register):
        from vdi_plugins.heads.mmn_config import MMNConfig

        register("shiny-mmn", "vdi_plugins.heads.mmn_model:build_mmn", config=MMNConfig)


def test_a_checkpoint_whose_head_plugin_is_gone_names_plugin_and_distribution(home):
    from vdi_cli import plugins
    from vdi_cli.checkpoints import read_config
    from vdi_cli.hookspecs import hookimpl
    from vdi_cli.model import load_model

    plugin = _ShinyHeads()
    plugin.register_heads = hookimpl(_ShinyHeads.register_heads)
    plugins.get_host().register_object(plugin, "vdi-shiny-heads:shiny")
    try:
        _, _, summary = _train(home, epochs=1, head="shiny-mmn", objectives=[],
                               objective_options={})
    finally:
        plugins.reset_host()
    path = summary["best_checkpoint"]
    recorded = read_config(path)["components"]
    assert recorded["head"] == {"id": "shiny-mmn", "plugin": "shiny",
                                "distribution": "vdi-shiny-heads", "version": None}
    assert recorded["backbone"]["distribution"] == "vdi"
    with pytest.raises(VdiError) as exc:
        load_model(path)
    assert exc.value.message == (
        "the checkpoint's head 'shiny-mmn' is not installed: it was provided by plugin 'shiny' "
        "of the distribution 'vdi-shiny-heads' when the checkpoint was trained")
    assert "did you mean" not in exc.value.message and "vdi-shiny-heads" in exc.value.hint
    result = invoke(["retrieve", home / "data" / "videos" / "test-iid-00000.mp4", "a shape",
                     "--checkpoint", path])
    assert result.exit_code == 1 and "head 'shiny-mmn' is not installed" in result.stderr
