"""examples/experiment.py: aggregation over seeds, the markdown table and its acceptance checks
(on hand-made run records; the full experiment is an hours-long job, not a test)."""

from __future__ import annotations

import argparse
import os

import pytest


@pytest.fixture(scope="module")
def experiment(load_example):
    return load_example("experiment")


def _eval(r1: float, groups: dict[str, float]) -> dict:
    metrics = {"R@1,IoU=0.5": r1, "R@1,IoU=0.7": r1 / 2, "mIoU": 30.0}
    return {
        "forms": {f: {"metrics": metrics} for f in ("q", "static", "dynamic")},
        "groups": [{"group": g, "queries": 10, "recall": v, "miou": 0.0}
                   for g, v in groups.items()],
        "prior": [{"group": g, "queries": 10, "recall": 20.0, "miou": 0.0} for g in groups],
    }


def _run(config: str, seed: int, r1: float, groups: dict[str, float]) -> dict:
    return {"config": config, "seed": seed, "seconds": 60.0,
            "eval": {s: _eval(r1, groups) for s in ("test_iid", "test_novel_word")}}


def _baselines() -> dict:
    m = {"R@1,IoU=0.5": 20.0, "R@1,IoU=0.7": 5.0, "mIoU": 25.0}
    r = {"R@1,IoU=0.5": 4.0, "R@1,IoU=0.7": 1.0, "mIoU": 13.0}
    return {s: {"most-frequent": {"metrics": m}, "random": [{"metrics": r}, {"metrics": r}]}
            for s in ("test_iid", "test_novel_word")}


def test_aggregate_and_markdown(experiment):
    runs = [_run("vdi", 0, 40.0, {"left": 30.0, "up": 10.0}),
            _run("vdi", 1, 44.0, {"left": 34.0, "up": 50.0}),
            _run("baseline", 0, 22.0, {"left": 20.0, "up": 20.0})]
    agg = experiment.aggregate(runs, _baselines())
    assert agg["table"]["vdi"]["test_iid"]["q"]["R@1,IoU=0.5"] == [40.0, 44.0]
    assert agg["actions"]["vdi"]["test_iid"]["up"] == {"recall": [10.0, 50.0], "prior": 20.0,
                                                       "queries": 10}
    args = argparse.Namespace(seeds=[0, 1], epochs=16, milestones=[14], batch_size=8, lr=1e-3,
                              text_lr=1.0, temporal_delta=5.0, span_delta=0.0, pool_hidden=256,
                              text_pool="mean", text_trainable="token-embeddings")
    meta = {"seed": 0, "version": 3, "splits": {"train": {"videos": 4, "queries": 9}}}
    md = experiment.markdown(agg, args, meta, 180.0, "python examples/experiment.py")
    assert "World: generator version 3, seed 0, train 4 videos / 9 queries." in md
    # mean +- sample std: (40, 44) -> 42.00 +- 2.83; one seed prints no std
    assert "| VDI (L_vc w/ Qs + L_sd w/ Trans) | 42.00 ± 2.83 |" in md
    assert "| MMN + CLIP (no VDI term) | 22.00 |" in md
    assert "pool_linear (1x1 conv + ReLU, width 256)" in md
    assert "temporal_delta 5, span_delta 0," in md
    assert "16 epochs, lr x0.1 after epoch 14, batch 8" in md
    assert "text tower: token-embeddings trained, mean pooling" in md
    assert f"on {os.cpu_count()} CPU cores, torch's default threads" in md
    assert "| most frequent moment | 20.00 |" in md
    # 42 >= 2 x 20; "up" averages 30 > its prior 20, "left" 32 > 20
    assert "R@1,IoU=0.5 42.00 vs 2 x most frequent moment 40.00: met" in md
    assert "every action above its prior: met" in md
    runs[1]["eval"]["test_iid"]["groups"][1]["recall"] = 20.0  # up: (10 + 20) / 2 = 15 <= 20
    md = experiment.markdown(experiment.aggregate(runs, _baselines()), args, meta, 180.0, "x")
    assert "NOT met (at or below: up)" in md


def test_cpu_text_reports_what_the_runs_recorded(experiment):
    assert experiment.cpu_text([{"torch_threads": 2}, {"torch_threads": 2}]) == \
        "2 torch threads"
    assert experiment.cpu_text([{"torch_threads": 1}]) == "1 torch thread"
    assert experiment.cpu_text([{"torch_threads": 4}, {"torch_threads": 2}]) == \
        "2/4 torch threads (the runs differ)"
    assert experiment.cpu_text([{"torch_threads": 2, "cpu_capability": "AVX512"}]) == \
        "2 torch threads, AVX512 kernels"
    assert experiment.cpu_text([{"torch_threads": 2, "cpu_capability": "AVX512"},
                                {"torch_threads": 2, "cpu_capability": "AVX2"}]) == \
        "2 torch threads, AVX2/AVX512 kernels (the runs differ)"
    # runs from before vdi recorded the count (or reused from such runs)
    assert experiment.cpu_text([{"seed": 0}, {"torch_threads": None}]) == \
        "torch's default threads"
    args = argparse.Namespace(seeds=[0], epochs=8, milestones=[7], batch_size=8, lr=1e-3,
                              text_lr=1.0, temporal_delta=5.0, span_delta=0.0, pool_hidden=0,
                              text_pool="mean", text_trainable="all")
    meta = {"seed": 0, "version": 3, "splits": {"train": {"videos": 4, "queries": 9}}}
    agg = experiment.aggregate([_run("vdi", 0, 40.0, {"left": 30.0})], _baselines())
    md = experiment.markdown(agg, args, meta, 60.0, "cmd", "2 torch threads")
    assert f"on {os.cpu_count()} CPU cores, 2 torch threads). The thread count and" in md


def test_every_configuration_maps_to_train_flags(experiment):
    assert set(experiment.CONFIGS) == {"baseline", "vc-qs", "vc-q", "vc-none", "sd-lstm",
                                       "sd-trans", "vdi", "paper", "stable"}
    assert experiment.CONFIGS["paper"][1] == ["-o", "vdi_form=paper"]
    assert experiment.heads_options("stable") == experiment.heads_options("vdi")
    # the default set is issue 20's: baseline, both forms, the Table 3 ablations
    assert experiment.DEFAULT_CONFIGS.split(",") == [
        "baseline", "paper", "stable", "vc-qs", "vc-q", "vc-none", "sd-lstm", "sd-trans"]
    assert experiment.heads_options("sd-lstm") == []  # an LSTM has no attention heads
    assert experiment.heads_options("vdi") == ["-O", "visual-context.heads=4", "-O",
                                               "spatial-dynamic.sequence_options.heads=4"]


def test_train_args_carry_the_text_tower_settings(experiment, tmp_path):
    from vdi_cli.testing import train_config_of

    args = argparse.Namespace(epochs=8, milestones=[], batch_size=8, lr=1e-3, text_lr=1.0,
                              temporal_delta=5.0, span_delta=1.0, pool_hidden=0,
                              text_pool="mean", text_trainable="token-embeddings")
    flags = experiment.train_args(args, tmp_path)
    pairs = {flags[i + 1] for i, f in enumerate(flags) if f in ("-o", "-H")}
    assert {"text_pool=mean", "text_trainable=token-embeddings", "text_lr_ratio=1.0",
            "temporal_delta=5.0", "span_delta=1.0", "milestones=[]"} <= pairs
    # milestones [] = never; left out, vdi train would take [8, 13]
    assert "pool_linear=true" not in pairs  # width 0 = MMN's conv off
    # the settings every run shares come from the recipe (synthetic-experiment)
    config, recipe = train_config_of(flags[1:])
    assert recipe.name == "synthetic-experiment"
    assert (config.freeze_text_epochs, config.keep_checkpoints, config.milestones) == \
        (0, "best-last", [])
    assert config.head_options["pool_linear"] is False


def test_decay_text_names_the_milestones(experiment):
    assert experiment.decay_text([]) == "no lr decay"
    assert experiment.decay_text([14]) == "lr x0.1 after epoch 14"
    assert experiment.decay_text([5, 7, 9]) == "lr x0.1 after epochs 5, 7 and 9"


def test_milestones_parse_and_a_bad_value_ends_with_error_and_hint(experiment):
    assert experiment.parse_milestones("14") == [14]
    assert experiment.parse_milestones("8, 13") == [8, 13]
    assert experiment.parse_milestones("") == []
    with pytest.raises(SystemExit) as stop:
        experiment.parse_milestones("8;13")
    message = str(stop.value.code)
    assert message.startswith("Error: --milestones takes epoch numbers, not '8;13'")
    assert "\nHint: e.g. --milestones 14" in message


def test_seeds_and_configs_parse_and_bad_values_end_with_error_and_hint(experiment):
    assert experiment.parse_seeds("0, 1,2") == [0, 1, 2]
    assert experiment.parse_configs("baseline,vdi,") == ["baseline", "vdi"]
    for call, text, start, hint in [
            (experiment.parse_seeds, "0,one", "Error: --seeds takes whole numbers, not '0,one'",
             "Hint: e.g. --seeds 0,1,2"),
            (experiment.parse_seeds, ",", "Error: --seeds takes whole numbers", "Hint: e.g."),
            (experiment.parse_configs, "vdi,both", "Error: unknown configuration both",
             "Hint: choose from baseline, vc-qs, vc-q, vc-none, sd-lstm, sd-trans, vdi"),
            (experiment.parse_configs, "", "Error: --configs names no configuration",
             "Hint: choose from baseline")]:
        with pytest.raises(SystemExit) as stop:
            call(text)
        message = str(stop.value.code)
        assert message.startswith(start)
        assert f"\n{hint}" in message


def test_a_failed_vdi_call_ends_with_error_and_hint_after_vdis_own_message(
        experiment, tmp_path, capfd):
    env = {**os.environ, "VDI_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    with pytest.raises(SystemExit) as stop:
        experiment.vdi("eval", "--run", "4242", "--annotations", str(tmp_path / "none.json"),
                       "--format", "synthetic-shapes", "--video-dir", str(tmp_path), env=env)
    message = str(stop.value.code)
    assert message.startswith("Error: `vdi eval` failed with exit code 1")
    assert "\nHint: runs that finished are kept in OUT/runs" in message
    # vdi's own explanation reached the terminal
    assert "Error: no run with id 4242" in capfd.readouterr().err


def test_a_stopped_training_run_is_found_for_resume(experiment):
    argv = ["train", "--epochs", "8", "--seed", "1", "--json"]
    rows = [  # newest first, as `vdi runs list --json` gives them
        {"id": 9, "command": "train", "status": "ok", "argv": argv},
        {"id": 8, "command": "train", "status": "interrupted",
         "argv": ["train", "--epochs", "8", "--seed", "1", "--json", "--resume", "5"]},
        {"id": 7, "command": "train", "status": "interrupted",
         "argv": ["train", "--epochs", "8", "--seed", "2", "--json"]},  # another seed
        {"id": 6, "command": "eval", "status": "error", "argv": argv},
        {"id": 5, "command": "train", "status": "running", "argv": argv,
         "process_gone": True},  # killed (SIGKILL)
        {"id": 4, "command": "train", "status": "error", "argv": argv},
        {"id": 3, "command": "train", "status": "running", "argv": argv,
         "process_gone": False},  # may still be going (another experiment on this OUT)
    ]
    assert experiment.unfinished_runs(rows, argv) == [8, 5, 4]
    assert experiment.without_resume(["a", "--resume", "3", "b", "--resume", "4"]) == ["a", "b"]
    assert experiment.unfinished_runs(rows, ["train", "--epochs", "4"]) == []


def test_resumable_asks_the_real_vdi_for_the_newest_stopped_run_with_a_checkpoint(
        experiment, tmp_path):
    from vdi_cli.runs import finish_run, start_run
    from vdi_cli.store import open_db
    from vdi_cli.testing import dead_pid

    argv = ["train", "--epochs", "8", "--seed", "1", "--json"]
    db = open_db(tmp_path / "vdi.db")
    with_checkpoints = start_run(db, "train", {}, argv)
    finish_run(db, with_checkpoints, "interrupted", "stopped by SIGTERM")
    db["checkpoints"].insert_all({"run_id": with_checkpoints, "epoch": e, "path": f"/x/{e}",
                                  "best": int(e == 3)} for e in (2, 3))
    killed = start_run(db, "train", {}, argv)  # newer, killed before its first epoch ended
    db["runs"].update(killed, {"pid": dead_pid()})
    env = {**os.environ, "VDI_HOME": str(tmp_path / "home"), "VDI_DB": str(tmp_path / "vdi.db"),
           "HF_HUB_OFFLINE": "1"}
    assert experiment.resumable(argv, env) == (with_checkpoints, 3)
    assert experiment.resumable(["train", "--seed", "2", "--json"], env) is None


def test_a_resumed_runs_time_counts_the_training_it_took_over(experiment, tmp_path):
    """Run 1 trained 100 s to its newest checkpoint and stopped; run 2 resumed it, trained 40 s
    to its own newest checkpoint and stopped: resuming run 2 takes over 140 s of training."""
    from vdi_cli.runs import finish_run, start_run
    from vdi_cli.store import open_db

    db = open_db(tmp_path / "vdi.db")
    first = start_run(db, "train", {}, ["train", "--json"])
    second = start_run(db, "train", {}, ["train", "--json", "--resume", str(first)])
    never = start_run(db, "train", {}, ["train", "--json"])  # stopped before a checkpoint
    for run, start, stamps in ((first, "10:00:00", ["10:00:50", "10:01:40"]),
                               (second, "11:00:00.500", ["11:00:40.500"])):
        finish_run(db, run, "interrupted", "stopped by SIGTERM")
        db["runs"].update(run, {"started_at": f"2026-12-01T{start}+00:00"})
        db["checkpoints"].insert_all({"run_id": run, "epoch": e, "path": f"/x/{run}/{e}",
                                      "created_at": f"2026-12-01T{t}+00:00"}
                                     for e, t in enumerate(stamps, 1))
    env = {**os.environ, "VDI_HOME": str(tmp_path / "home"), "VDI_DB": str(tmp_path / "vdi.db"),
           "HF_HUB_OFFLINE": "1"}
    assert experiment.reused_seconds(first, env) == 100.0
    assert experiment.reused_seconds(second, env) == 140.0
    assert experiment.reused_seconds(never, env) == 0.0


def test_results_md_shows_the_vdi_diagnostics_per_epoch(experiment):
    """Two seeds of `vdi` with the figures `vdi train` records per epoch: the table shows the
    mean over seeds (3 significant digits, the gradient share in %) and the warned seeds."""
    runs = [_run("vdi", s, 40.0, {"left": 30.0}) for s in (0, 1)]
    runs[0]["diagnostics"] = [{}, {"spatial-dynamic/weighted": 2e-5, "spatial-dynamic/value": 2e-3,
                                   "spatial-dynamic/eps_v_std": 0.004,
                                   "spatial-dynamic/grad_ratio": 2e-5,
                                   "spatial-dynamic/collapsed": 1.0, "head/grad_text": 3.0}]
    runs[1]["diagnostics"] = [{}, {"spatial-dynamic/weighted": 4e-5, "spatial-dynamic/value": 4e-3,
                                   "spatial-dynamic/eps_v_std": 0.006,
                                   "spatial-dynamic/grad_ratio": 4e-5,
                                   "spatial-dynamic/collapsed": 0.0, "head/grad_text": 3.0}]
    agg = experiment.aggregate(runs, _baselines())
    assert agg["diagnostics"]["vdi"]["spatial-dynamic"][2]["weighted"] == [2e-5, 4e-5]
    args = argparse.Namespace(seeds=[0, 1], epochs=2, milestones=[], batch_size=8, lr=1e-3,
                              text_lr=1.0, temporal_delta=5.0, span_delta=0.0, pool_hidden=0,
                              text_pool="mean", text_trainable="token-embeddings")
    meta = {"seed": 0, "version": 4, "splits": {"train": {"videos": 4, "queries": 9}}}
    md = experiment.markdown(agg, args, meta, 60.0, "python examples/experiment.py")
    assert "## VDI diagnostics (per epoch, mean over seeds)" in md
    # weighted 3e-05, value 0.003, no target/pred spread, swap or eps_v; eps_v std 0.005,
    # no eps_q std; gradient 3e-05 of the head's = 0.003 %; warned in 1 of 2 seeds
    assert ("| VDI (L_vc w/ Qs + L_sd w/ Trans) | spatial-dynamic | 2 | 3e-05 | 0.003 |  |  |  "
            "|  | 0.005 |  | 0.003 | 1/2 |") in md


def test_the_ablations_run_in_the_better_form_and_version_4_adds_novel_verb(load_example):
    forms = load_example("experiment_forms")
    runs = [_run("paper", 0, 30.0, {}), _run("paper", 1, 34.0, {}),
            _run("stable", 0, 33.0, {}), _run("stable", 1, 30.0, {})]
    # paper 32.00 > stable 31.50 on the seeds' mean
    assert forms.better_form(runs) == ("paper", "test-iid R@1,IoU=0.5 paper 32.00, stable "
                                                "31.50 (mean over seeds)")
    tie = [_run("paper", 0, 30.0, {}), _run("stable", 0, 30.0, {})]
    assert forms.better_form(tie)[0] == "stable"
    assert forms.better_form(runs[:2]) == ("", "no finished stable run to compare")
    assert forms.ablation_flags("vc-q", "paper") == ["-o", "vdi_form=paper"]
    assert forms.ablation_flags("baseline", "paper") == []
    meta = {"splits": {"train": {}, "test-iid": {}, "test-novel-word": {},
                       "test-novel-verb": {}}}
    assert forms.splits_of(meta) == ("test_iid", "test_novel_word", "test_novel_verb")
    assert forms.splits_of({"splits": {"train": {}, "test-iid": {}}}) == ("test_iid",)


def test_markdown_with_three_splits_and_the_ablation_form(experiment, monkeypatch):
    monkeypatch.setattr(experiment, "SPLITS", ("test_iid", "test_novel_word",
                                               "test_novel_verb"))
    run = {"config": "stable", "seed": 0, "seconds": 60.0,
           "eval": {s: _eval(40.0, {"left": 30.0}) for s in experiment.SPLITS}}
    base = {**_baselines(), "test_novel_verb": _baselines()["test_iid"]}
    agg = experiment.aggregate([run], base)
    args = argparse.Namespace(seeds=[0], epochs=8, milestones=[7], batch_size=8, lr=1e-3,
                              text_lr=1.0, temporal_delta=5.0, span_delta=0.0, pool_hidden=0,
                              text_pool="mean", text_trainable="token-embeddings",
                              backbone="tiny-shapes-v2", ablation_form="stable",
                              ablation_why="test-iid R@1,IoU=0.5 paper 30.00, stable 40.00")
    meta = {"seed": 0, "version": 4, "splits": {"train": {"videos": 4, "queries": 9}}}
    md = experiment.markdown(agg, args, meta, 60.0, "python examples/experiment.py")
    assert "Backbone `tiny-shapes-v2` (shipped)" in md
    assert ("The Table 3 ablations ran in the form `stable` (test-iid R@1,IoU=0.5 paper 30.00, "
            "stable 40.00).") in md
    assert "| method | test_iid Q | test_iid Qs | test_iid Qd | test_novel_word Q" in md
    assert "|---|" + "---|" * 9 + "\n| VDI, form stable (no trivial minima) |" in md
    assert "## Acceptance checks (test-iid, VDI, form stable (no trivial minima))" in md


def test_a_finished_runs_key_names_the_world_it_was_run_on(experiment):
    """The world's seed and size are part of a run's key: a run of a 700-video world is not
    reused by an experiment on a 2,000-video one (the split sizes are read from meta.json)."""
    meta = {"seed": 0, "splits": {"train": {"videos": 700, "queries": 3180},
                                  "test-iid": {"videos": 200, "queries": 940}}}
    key = experiment.world_key(meta)
    assert key == {"seed": 0, "videos": {"test-iid": 200, "train": 700}}
    bigger = {**meta, "splits": {**meta["splits"], "train": {"videos": 2000}}}
    assert experiment.world_key(bigger) != key
    assert experiment.world_key({**meta, "seed": 1}) != key
