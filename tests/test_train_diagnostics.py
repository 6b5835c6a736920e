"""The VDI terms in the train loop (issue 20): the objectives' learning rate, what they do while
the text tower is frozen, `vdi_form`, and the per-epoch diagnostics (stored, printed, shown by
`vdi runs show`, a collapse warning) with real tiny open_clip models and real training steps."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from vdi_cli.objectives import ObjectiveInputs  # noqa: E402
from vdi_cli.pipeline.train_config import TrainConfig  # noqa: E402
from vdi_cli.pipeline.train_data import VideoFeatures, VideoSample, collate  # noqa: E402
from vdi_cli.pipeline.train_diagnostics import Diagnostics, format_figures  # noqa: E402
from vdi_cli.runs import run_context  # noqa: E402
from vdi_cli.store import open_db  # noqa: E402
from vdi_cli.testing import invoke, register_tiny_open_clip, tiny_backbone  # noqa: E402
from vdi_cli.types import ParsedQuery  # noqa: E402
from vdi_plugins._objective_diagnostics import other_video, relative_spread  # noqa: E402

SMALL_HEAD = {"hidden_size": 32, "joint_size": 16, "conv_layers": 2}
SMALL_OBJ = {"visual-context": {"heads": 2}, "spatial-dynamic": {"sequence_options": {"heads": 2}}}


def _config(**kw) -> TrainConfig:
    values = dict(dataset="mmn-json", annotations="unused.json", video_dir=".",
                  backbone="open_clip:vdi-tiny", epochs=2, batch_size=2, lr=1e-3, patience=0,
                  freeze_text_epochs=1, head_options=SMALL_HEAD, objective_options=SMALL_OBJ)
    values.update(kw)
    return TrainConfig(**values)


# --- the arithmetic, by hand -----------------------------------------------------------------

def test_relative_spread_by_hand():
    assert relative_spread(torch.tensor([[1.0, 0.0], [1.0, 0.0]])) == 0.0
    # per dim: values 1, -1 -> unbiased std sqrt(2); rms of the entries 1
    assert relative_spread(torch.tensor([[1.0, -1.0], [-1.0, 1.0]])) == pytest.approx(2 ** 0.5)
    # a shared offset of 3 hides a spread of sqrt(2): rms sqrt((16 + 4) / 2)
    assert relative_spread(torch.tensor([[4.0, 2.0], [2.0, 4.0]])) == pytest.approx(
        2 ** 0.5 / 10 ** 0.5)
    assert math.isnan(relative_spread(torch.ones(1, 3)))


def test_other_video_picks_the_next_sentence_of_another_video():
    assert other_video(torch.tensor([0, 0, 1, 2])).tolist() == [2, 2, 3, 0]
    assert other_video(torch.tensor([1, 1])).tolist() == [-1, -1]


def test_collapse_warning_and_gradient_ratio_by_hand():
    """A text parameter w (4 entries), head loss 3 * sum(w) (gradient norm 6), a term whose
    weighted value is 2e-4 * sum(w) (norm 4e-4): ratio 6.67e-5, under a 1e-3 floor at every
    diagnosed step (every 2nd of 4: steps 0 and 2), so the epoch warns; a 1e-5 floor does not."""
    w = torch.ones(4, requires_grad=True)
    module = torch.nn.Linear(1, 1)  # an objective without `diagnose`: values and gradients only

    class Host:  # what Diagnostics reads of a Trainer
        text_params = [w]
        objectives = {"term": module}

    for floor, warns in ((1e-3, True), (1e-5, False)):
        diag = Diagnostics(every=2, spread_floor=0.05, grad_floor=floor)
        for _ in range(4):
            value = (w * 1e-4).sum()
            diag.observe(Host(), {"head": (3 * w).sum(), "term": (value, 2 * value)}, None, True)
        figures, warnings = diag.finish(epoch=3)
        assert figures["head/grad_text"] == pytest.approx(6.0)
        assert figures["term/grad_text"] == pytest.approx(4e-4)
        assert figures["term/grad_ratio"] == pytest.approx(4e-4 / 6)
        assert figures["term/value"] == pytest.approx(4e-4)
        assert figures["term/weighted"] == pytest.approx(8e-4)
        assert figures["head/steps"] == 2.0
        assert figures["term/collapsed"] == float(warns)
        assert bool(warnings) is warns
    assert w.grad is None  # the diagnostics' gradients never land in .grad
    lines = format_figures(figures)
    assert "grad_ratio 6.67e-05 (0.00667% of the head's)" in lines[0]
    assert lines[-1] == "  head: grad_text 6"


def test_a_frozen_text_tower_means_no_gradient_figures_and_spread_checks_only():
    diag = Diagnostics(every=1, spread_floor=0.05, grad_floor=1e-3,
                       collapse_figures={"term": ("swap",)})

    class Host:
        text_params = [torch.ones(2, requires_grad=True)]
        objectives = {"term": torch.nn.Linear(1, 1)}

    value = torch.tensor(0.5)
    diag.observe(Host(), {"head": torch.tensor(1.0), "term": (value, value)}, None, False)
    figures, warnings = diag.finish(1)
    assert "term/grad_ratio" not in figures and "head/grad_text" not in figures
    assert warnings == []  # no figure named in collapse_figures was reported


# --- the objectives' own figures ---------------------------------------------------------------

def _inputs(frames, patches=None, dim=32):
    g = torch.Generator().manual_seed(0)
    q = frames.shape[0] * 2
    return ObjectiveInputs(
        text_query=torch.randn(q, dim, generator=g), text_static=torch.randn(q, dim, generator=g),
        text_dynamic=torch.randn(q, dim, generator=g),
        static_empty=torch.zeros(q, dtype=torch.bool),
        dynamic_empty=torch.zeros(q, dtype=torch.bool), frames=frames,
        frame_mask=torch.ones(q, frames.shape[1], dtype=torch.bool),
        video_index=torch.arange(frames.shape[0]).repeat_interleave(2), patches=patches)


def test_visual_context_swap_is_zero_when_the_videos_are_alike():
    from vdi_cli.registry import get_component

    module = get_component("objective", "visual-context").build({"heads": 2}, dim=32)
    same = torch.randn(1, 5, 32).expand(3, 5, 32).contiguous()
    d = module.diagnose(_inputs(same))
    assert d["swap"] == pytest.approx(0.0, abs=1e-6)
    d2 = module.diagnose(_inputs(torch.randn(3, 5, 32)))
    assert d2["swap"] > 0.05 and 0 < d2["target_spread"] and 0 < d2["pred_spread"]
    assert module.training  # eval mode only inside diagnose


def test_spatial_dynamic_eps_are_the_cosines_the_loss_sees():
    from vdi_cli.registry import get_component
    from vdi_plugins._objective_losses import cosine_matrix

    module = get_component("objective", "spatial-dynamic").build(
        {"sequence_options": {"heads": 2}, "centre": False}, dim=32, patch_count=4)
    module.eval()  # no dropout, to compare with a direct computation
    frames, patches = torch.randn(3, 5, 32), torch.randn(3, 5, 4, 32)
    inputs = _inputs(frames, patches)
    d = module.diagnose(inputs)
    with torch.no_grad():
        video = module.video_dynamics(frames, patches, inputs.video_index, inputs.frame_mask)
        text = module.fc_text(inputs.text_dynamic)
    pairs = inputs.video_index[:, None] != inputs.video_index[None, :]
    ev, eq = cosine_matrix(video)[pairs], cosine_matrix(text)[pairs]
    assert d["eps_v"] == pytest.approx(float(ev.mean()), abs=1e-5)
    assert d["eps_q_std"] == pytest.approx(float(eq.std()), abs=1e-5)
    assert d["eps_v_std"] == pytest.approx(float(ev.std()), abs=1e-5)


# --- the train loop ----------------------------------------------------------------------------

def test_objective_lr_and_form_set_the_optimiser_groups():
    from vdi_cli.pipeline.train import Trainer

    backbone = tiny_backbone()
    stable = Trainer(_config(text_lr_ratio=0.1), backbone, patch_count=16)
    lrs = [g["lr"] for g in stable.optimizer.param_groups]
    assert lrs == pytest.approx([1e-3, 1e-4, 1e-4])  # head, text, VDI modules at the text's
    vdi = {id(p) for m in stable.objectives.values() for p in m.parameters()}
    assert {id(p) for p in stable.optimizer.param_groups[2]["params"]} == vdi
    assert stable.objectives["visual-context"].config.loss == "infonce"  # form=stable
    assert stable.objectives["spatial-dynamic"].config.centre is True
    paper = Trainer(_config(vdi_form="paper"), backbone, patch_count=16)
    assert len(paper.optimizer.param_groups) == 2  # the VDI modules in the head's group
    assert vdi.isdisjoint({id(p) for p in paper.optimizer.param_groups[1]["params"]})
    assert paper.objectives["visual-context"].config.loss == "squared"
    # an objective's own form and an explicit objective_lr win over vdi_form
    mixed = Trainer(_config(vdi_form="paper", objective_lr="text", objective_options={
        "visual-context": {"heads": 2, "form": "stable"},
        "spatial-dynamic": {"sequence_options": {"heads": 2}}}), backbone, patch_count=16)
    assert len(mixed.optimizer.param_groups) == 3
    assert mixed.objectives["visual-context"].config.loss == "infonce"
    assert mixed.objectives["spatial-dynamic"].config.centre is False


def test_presets_skip_the_vdi_terms_while_the_text_tower_is_frozen():
    for preset in ("charades", "activitynet", "tacos"):
        c = _config(freeze_text_epochs=None, head_options={**SMALL_HEAD, "preset": preset})
        assert c.resolved().objectives_frozen == "skip"
        assert c.resolved().freeze_text_epochs > 0
    assert _config(objectives_frozen="train").resolved().objectives_frozen == "train"
    assert _config(vdi_form="paper").resolved().objective_lr == "head"
    assert _config().resolved().objective_lr == "text"


def _batch(backbone):
    g = torch.Generator().manual_seed(1)
    pq = [ParsedQuery("a red square moves left", (), (), "a red square", "moves left", (), ()),
          ParsedQuery("a blue disc grows", (), (), "a blue disc", "grows", (), ())]
    samples = [VideoSample(f"v{i}", 4.0, [p.text for p in pq], pq, [(0.0, 2.0), (2.0, 4.0)],
                           ["0", "1"]) for i in range(2)]
    feats = {s.video_id: VideoFeatures(torch.randn(4, 32, generator=g),
                                       torch.randn(4, 16, 32, generator=g),
                                       torch.arange(4.0)) for s in samples}
    return collate(samples, feats.__getitem__, need_patches=True)


@pytest.mark.parametrize("frozen", ["skip", "train"])
def test_vdi_modules_stay_put_in_a_frozen_epoch_under_skip(frozen):
    from vdi_cli.pipeline.train import Trainer

    backbone = tiny_backbone()
    trainer = Trainer(_config(objectives_frozen=frozen), backbone, patch_count=16)
    batch = _batch(backbone)

    def vdi_weights():
        return [p.detach().clone() for m in trainer.objectives.values() for p in m.parameters()]

    def head_weights():
        return [p.detach().clone() for p in trainer.model.head.parameters()]

    before, head_before = vdi_weights(), head_weights()
    logged = trainer.step(batch, epoch=1)  # freeze_text_epochs=1: epoch 1 is frozen
    moved = any(not torch.equal(a, b) for a, b in zip(before, vdi_weights(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(head_before, head_weights(), strict=True))
    if frozen == "skip":
        assert not moved and "visual-context" not in logged and "spatial-dynamic" not in logged
    else:
        assert moved and {"visual-context", "spatial-dynamic"} <= set(logged)
    after_frozen = vdi_weights()
    logged = trainer.step(batch, epoch=2)  # the text tower trains: so do the VDI modules
    assert {"visual-context", "spatial-dynamic"} <= set(logged)
    assert any(not torch.equal(a, b) for a, b in zip(after_frozen, vdi_weights(), strict=True))


# --- end to end: stored, printed, shown; the trajectory is the same without them -------------

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from vdi_plugins.synthetic.generate import generate

    root = tmp_path_factory.mktemp("diag-world")
    generate(root / "data", videos=4, seed=5, test_videos=0, fps=4, size=32)
    return root


@pytest.fixture
def home(world, monkeypatch):
    monkeypatch.setenv("VDI_HOME", str(world / "home"))
    monkeypatch.setenv("VDI_DB", str(world / "vdi.db"))
    register_tiny_open_clip()
    return world


def _train(world, **kw):
    from vdi_cli.pipeline.train_run import run_training

    config = _config(annotations=str(world / "data" / "train.json"),
                     video_dir=str(world / "data" / "videos"), fps=2, **kw)
    db = open_db(world / "vdi.db")
    with run_context(db, "train", {}) as run:
        summary = run_training(config, db, run, quiet=True, show_progress=False)
    return db, run.id, summary


@pytest.mark.slow
def test_diagnostics_are_stored_per_epoch_and_do_not_change_the_trajectory(home):
    from vdi_cli.checkpoints import load_tensors

    db, run_id, summary = _train(home, diagnostics_every=1, keep_checkpoints="all")
    rows = list(db["metrics"].rows_where("run_id = ? and split = 'diagnostics'", [run_id]))
    epochs = {r["epoch"] for r in rows}
    assert epochs == {2}  # epoch 1: text tower frozen, VDI terms skipped (stable, preset)
    names = {r["name"] for r in rows}
    assert {"visual-context/value", "visual-context/weighted", "visual-context/target_spread",
            "visual-context/pred_spread", "visual-context/swap", "visual-context/grad_ratio",
            "spatial-dynamic/eps_v", "spatial-dynamic/eps_v_std", "spatial-dynamic/eps_q",
            "spatial-dynamic/eps_q_std", "spatial-dynamic/grad_text", "head/grad_text",
            "head/steps", "spatial-dynamic/collapsed"} <= names
    by = {r["name"]: r["value"] for r in rows}
    # the weighted value is lambda times the value (0.5 and 0.01, the paper's)
    assert by["visual-context/weighted"] == pytest.approx(0.5 * by["visual-context/value"])
    assert by["spatial-dynamic/weighted"] == pytest.approx(0.01 * by["spatial-dynamic/value"])
    # 2 videos in the world per batch of 2: 2 steps in the epoch, every one diagnosed
    assert by["head/steps"] == 2
    assert summary["history"][1]["diagnostics"]["head/grad_text"] > 0
    assert summary["history"][0]["diagnostics"] == {}
    _, quiet_id, quiet = _train(home, diagnostics_every=0, keep_checkpoints="all")
    assert not list(db["metrics"].rows_where("run_id = ? and split = 'diagnostics'",
                                             [quiet_id]))
    assert [h["losses"] for h in quiet["history"]] == [h["losses"] for h in summary["history"]]
    a, b = load_tensors(summary["best_checkpoint"]), load_tensors(quiet["best_checkpoint"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_cli_prints_the_figures_warns_and_runs_show_lists_them(home):
    argv = ["train", "--dataset", "mmn-json", "--annotations",
            str(home / "data" / "train.json"), "--video-dir", str(home / "data" / "videos"),
            "--backbone", "open_clip:vdi-tiny", "--fps", "2", "--epochs", "1",
            "--batch-size", "2", "--lr", "1e-3", "-H", "hidden_size=32", "-H", "joint_size=16",
            "-H", "conv_layers=2", "-O", "visual-context.heads=2",
            "-O", "spatial-dynamic.sequence_options.heads=2", "-o", "freeze_text_epochs=0",
            "-o", "patience=0", "-o", "diagnostics_grad_floor=1e9",
            "-o", "diagnostics_spread_floor=0", "--json"]
    r = invoke(argv)
    code, out, err = r.exit_code, r.stdout, r.stderr
    assert code == 0, err
    assert "diagnostics, epoch 1 (1 steps):" in err
    assert re.search(r"  visual-context: value \S+  weighted \S+  target_spread \S+", err)
    assert re.search(r"Warning: spatial-dynamic sat at its trivial minimum for all of epoch 1: "
                     r"grad_ratio \S+ < 1e\+09 at each of the 1 diagnosed steps", err)
    run_id = json.loads(out)["run_id"]
    r = invoke(["runs", "show", str(run_id)])
    assert r.exit_code == 0, r.stderr
    shown = r.stdout
    line = next(x for x in shown.splitlines() if "spatial-dynamic/grad_ratio" in x)
    shown_json = invoke(["runs", "show", str(run_id), "--json"]).json()
    stored = next(m["value"] for m in shown_json["metrics"]
                  if m["name"] == "spatial-dynamic/grad_ratio")
    assert line.split()[-1] == f"{stored:.3g}" and stored > 0  # 3 significant digits
    assert "diagnostics" in line and "spatial-dynamic sat at its trivial minimum" in shown



def test_a_run_stored_before_vdi_form_resumes_as_it_trained(home):
    """A checkpoint whose recorded options predate vdi_form / objective_lr / objectives_frozen
    trained the paper's forms, its modules at the head's lr, through frozen epochs: a resume
    continues so (the new defaults would change its trajectory), and is not refused for it."""
    from vdi_cli.pipeline.train_resume import resume_config

    db, run_id, summary = _train(home, epochs=1, diagnostics_every=0)
    cfg = Path(summary["best_checkpoint"]) / "config.json"
    data = json.loads(cfg.read_text())
    for key in ("vdi_form", "objective_lr", "objectives_frozen"):
        data["train"].pop(key)
    cfg.write_text(json.dumps(data))
    old = resume_config(db, run_id, {"epochs": 2})
    assert (old.vdi_form, old.objective_lr, old.objectives_frozen) == ("paper", "head", "train")
    _, new_id, _ = _train(home, epochs=1, diagnostics_every=0)
    new = resume_config(db, new_id, {"epochs": 2})
    assert (new.vdi_form, new.objective_lr, new.objectives_frozen) == ("stable", "text", "skip")
