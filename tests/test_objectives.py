"""VDI objectives: hand-computed pieces, gradient routing, empty queries, masking."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from vdi_cli.objectives import ObjectiveInputs  # noqa: E402
from vdi_cli.registry import get_component  # noqa: E402
from vdi_plugins.objectives import (  # noqa: E402
    sd_consistency,
    spatial_heatmap,
    vc_distance,
)

D, T, HW = 8, 5, 4


def test_vc_distance_sum_and_mean():
    pred = torch.tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    target = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 3.0]])
    assert vc_distance(pred, target, "sum").tolist() == [14.0, 4.0]
    assert vc_distance(pred, target, "mean").tolist() == pytest.approx([14 / 3, 4 / 3])


def test_spatial_heatmap_is_the_scaled_dot_product():
    g = torch.tensor([1.0, 2.0, 0.0, 0.0])
    p = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    assert spatial_heatmap(g, p, 4).tolist() == [0.5, 1.0, 1.5]


def test_projected_heatmap_equals_projecting_every_patch():
    from vdi_plugins.objectives import projected_heatmap

    torch.manual_seed(3)
    fg, fp = torch.nn.Linear(D, D), torch.nn.Linear(D, D)
    frames, patches = torch.randn(2, T, D), torch.randn(2, T, HW, D)
    naive = spatial_heatmap(fg(frames), fp(patches), D)
    torch.testing.assert_close(projected_heatmap(frames, patches, fg, fp, D), naive,
                               atol=1e-5, rtol=1e-5)


def test_sd_consistency_hand_computed():
    video = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    keep = torch.ones(3, dtype=torch.bool)
    # off-diagonal ordered pairs: (0-1)^2 twice, (1/sqrt2 - 0)^2 four times
    assert sd_consistency(video, text, keep, "off-diagonal").item() == pytest.approx(4 / 6)
    assert sd_consistency(video, text, keep, "all").item() == pytest.approx(4 / 9)
    assert sd_consistency(video, video * 3.0, keep, "off-diagonal").item() == pytest.approx(0.0)
    one = torch.tensor([True, False, False])
    assert sd_consistency(video, text, one, "off-diagonal") is None


def test_sd_consistency_different_video_pairs_hand_computed():
    """The paper pairs sentences of different videos; same-video pairs are left out by default."""
    video = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    keep = torch.ones(3, dtype=torch.bool)
    vidx = torch.tensor([0, 0, 1])
    # only (0,2), (2,0), (1,2), (2,1): cos_v = 1/sqrt2, cos_q = 0 -> 4 * 0.5 / 4
    got = sd_consistency(video, text, keep, "different-video", video_index=vidx)
    assert got.item() == pytest.approx(0.5)
    assert sd_consistency(video, text, keep, "off-diagonal", video_index=vidx).item() == \
        pytest.approx(4 / 6)  # the (0,1) pair of one video counts there: (0 - 1)^2 twice
    assert sd_consistency(video, text, keep, "different-video",
                          video_index=torch.zeros(3, dtype=torch.long)) is None
    with pytest.raises(ValueError, match="video_index"):
        sd_consistency(video, text, keep, "different-video")


def test_spatial_dynamic_default_pairs_only_different_videos():
    """Four sentences of two videos (scope=video): the default loss is the mean over the 8
    cross-video ordered pairs of the module's own cosines; same-video pairs (eps_v exactly 1)
    enter only with pairs=off-diagonal."""
    from vdi_plugins.objectives import cosine_matrix

    inputs = _inputs()
    inputs.video_index = torch.tensor([0, 0, 1, 1])
    results = {}
    for pairs in ("different-video", "off-diagonal"):
        torch.manual_seed(5)
        sd = get_component("objective", "spatial-dynamic").build(
            {"sequence_model": "lstm", "pairs": pairs}, dim=D, patch_count=HW).eval()
        results[pairs] = sd(inputs).item()
    video = sd.video_dynamics(inputs.frames[:2], inputs.patches[:2], inputs.video_index,
                              inputs.frame_mask)
    ev, eq = cosine_matrix(video), cosine_matrix(sd.fc_text(inputs.text_dynamic))
    assert ev[0, 1].item() == pytest.approx(1.0) and ev[2, 3].item() == pytest.approx(1.0)
    sq = (ev - eq).pow(2).detach()
    cross = sq[:2, 2:].sum() * 2 / 8
    assert results["different-video"] == pytest.approx(cross.item(), rel=1e-5)
    off = (sq.sum() - sq.diagonal().sum()) / 12
    assert results["off-diagonal"] == pytest.approx(off.item(), rel=1e-5)
    # one video only: no pair qualifies, an exact zero that stays in the graph
    inputs.video_index = torch.zeros(4, dtype=torch.long)
    zero = get_component("objective", "spatial-dynamic").build(
        {"sequence_model": "lstm"}, dim=D, patch_count=HW)(inputs)
    assert zero.item() == 0.0 and zero.requires_grad


def test_sd_consistency_centred_hand_computed():
    video = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    keep = torch.ones(3, dtype=torch.bool)
    # centred video rows (1,-2)/3, (-2,1)/3, (1,1)/3: cos01 = -0.8, cos02 = cos12 = -1/sqrt(10);
    # centred text rows (1,-1)/3 twice, (-2,2)/3: cos01 = 1, cos02 = cos12 = -1
    expected = (2 * (-0.8 - 1) ** 2 + 4 * (1 - 10 ** -0.5) ** 2) / 6
    got = sd_consistency(video, text, keep, "off-diagonal", centre=True).item()
    assert got == pytest.approx(expected)
    # a direction every sentence shares drives Eq. 5 towards 0 as written, not when centred
    shared = text + torch.tensor([50.0, 50.0])
    assert sd_consistency(shared, shared + torch.tensor([[0.0, 0.1], [0.1, 0.0], [0.0, 0.0]]),
                          keep, "off-diagonal").item() < 1e-5
    assert sd_consistency(video, shared, keep, "off-diagonal", centre=True).item() == \
        pytest.approx(expected, rel=1e-5)


def _inputs(q=4, requires_grad=True, patches=True):
    torch.manual_seed(0)
    t = lambda: torch.randn(q, D, requires_grad=requires_grad)  # noqa: E731
    return ObjectiveInputs(
        text_query=t(), text_static=t(), text_dynamic=t(),
        static_empty=torch.zeros(q, dtype=torch.bool),
        dynamic_empty=torch.zeros(q, dtype=torch.bool),
        frames=torch.randn(q, T, D), frame_mask=torch.ones(q, T, dtype=torch.bool),
        video_index=torch.arange(q),
        patches=torch.randn(q, T, HW, D) if patches else None,
    )


def _vc(**opts):
    torch.manual_seed(1)
    return get_component("objective", "visual-context").build(
        {"heads": 2, "dropout": 0.0, **opts}, dim=D)


@pytest.mark.parametrize("stop,static_grad", [("static", False), ("none", True), ("target", False)])
def test_visual_context_gradient_routing(stop, static_grad):
    inputs = _inputs()
    loss = _vc(stop_gradient=stop)(inputs)
    assert loss.ndim == 0 and loss.item() > 0
    loss.backward()
    assert inputs.text_dynamic.grad is not None and inputs.text_dynamic.grad.abs().sum() > 0
    got_static = inputs.text_static.grad is not None and inputs.text_static.grad.abs().sum() > 0
    assert got_static == static_grad
    assert inputs.text_query.grad is None




@pytest.mark.parametrize("stop,decoder_grad", [("static", True), ("target", False)])
def test_visual_context_decoder_training_depends_on_stop_gradient(stop, decoder_grad):
    vc = _vc(stop_gradient=stop)
    vc(_inputs()).backward()
    has = any(p.grad is not None and p.grad.abs().sum() > 0 for p in vc.decoder.parameters())
    assert has == decoder_grad


def test_visual_context_probe_variants():
    inputs = _inputs()
    _vc(probe="query", stop_gradient="none")(inputs).backward()
    assert inputs.text_query.grad is not None and inputs.text_static.grad is None
    vc = _vc(probe="none")
    inputs = _inputs()
    vc(inputs).backward()
    assert vc.learned_query.grad is not None
    assert inputs.text_static.grad is None and inputs.text_query.grad is None


def test_visual_context_sum_is_dims_times_mean():
    inputs = _inputs()
    mean = _vc(reduction="mean").eval()(inputs)
    total = _vc(reduction="sum").eval()(inputs)
    assert total.item() == pytest.approx(mean.item() * D, rel=1e-5)


def test_visual_context_default_is_eq2_squared_norm():
    """Eq. 2 is a squared norm: summed over D by default (mean = lambda_vc / D), per sentence,
    then averaged over the sentences; checked against the module's own decoder and FC."""
    inputs = _inputs()
    vc = _vc().eval()
    assert vc.config.reduction == "sum"
    target = vc.decoder(inputs.text_static.unsqueeze(1), inputs.frames).squeeze(1)
    pred = vc.fc(inputs.text_dynamic)
    expected = (pred - target).pow(2).sum(-1).mean()
    assert vc(inputs).item() == pytest.approx(expected.item(), rel=1e-5)
    assert _vc(reduction="mean").eval()(inputs).item() == pytest.approx(expected.item() / D,
                                                                         rel=1e-5)


def test_visual_context_ignores_masked_frames_and_empty_queries():
    vc = _vc().eval()
    inputs = _inputs()
    inputs.frame_mask[:, 3:] = False
    base = vc(inputs).item()
    inputs.frames[:, 3:] = 1e3
    assert vc(inputs).item() == pytest.approx(base, rel=1e-6)
    # a sentence with an empty Qd (or, with the Qs probe, an empty Qs) is left out
    inputs = _inputs()
    full = [vc(_single(inputs, i)).item() for i in range(4)]
    inputs.dynamic_empty[0] = True
    inputs.static_empty[1] = True
    assert vc(inputs).item() == pytest.approx((full[2] + full[3]) / 2, rel=1e-5)
    inputs.dynamic_empty[:] = True
    zero = vc(inputs)
    assert zero.item() == 0.0 and zero.requires_grad


def _single(inputs, i):
    pick = lambda x: None if x is None else x[i:i + 1]  # noqa: E731
    one = ObjectiveInputs(**{k: pick(v) for k, v in inputs.__dict__.items()})
    one.video_index = torch.zeros(1, dtype=torch.long)
    return one


def test_per_video_features_are_shared_by_their_sentences():
    """Two sentences of one video see the same frames: one video row, video_index [0, 0]."""
    vc = _vc().eval()
    inputs = _inputs(q=2)
    shared = ObjectiveInputs(**{**inputs.__dict__, "frames": inputs.frames[:1],
                                "patches": inputs.patches[:1],
                                "video_index": torch.zeros(2, dtype=torch.long)})
    copied = ObjectiveInputs(**{**inputs.__dict__,
                                "frames": inputs.frames[:1].expand(2, -1, -1),
                                "patches": inputs.patches[:1].expand(2, -1, -1, -1)})
    assert vc(shared).item() == pytest.approx(vc(copied).item(), rel=1e-6)
    sd = get_component("objective", "spatial-dynamic").build(
        {"sequence_model": "lstm", "pairs": "off-diagonal"}, dim=D, patch_count=HW).eval()
    assert sd(shared).item() == pytest.approx(sd(copied).item(), rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("seq", ["transformer", "lstm"])
def test_spatial_dynamic_trains_the_dynamic_text_features(seq):
    torch.manual_seed(2)
    sd = get_component("objective", "spatial-dynamic").build(
        {"sequence_model": seq, "sequence_options": {"dropout": 0.0}}, dim=D, patch_count=HW)
    if seq == "transformer":
        sd.sequence = get_component("sequence-model", seq).build(
            {"heads": 2, "dropout": 0.0}, dim=D)
    inputs = _inputs()
    loss = sd(inputs)
    assert loss.ndim == 0 and 0 <= loss.item() <= 4.0  # (cos - cos)^2 is at most 4
    loss.backward()
    assert inputs.text_dynamic.grad.abs().sum() > 0
    assert inputs.text_static.grad is None
    assert sd.fc_map.weight.grad.abs().sum() > 0


def test_spatial_dynamic_needs_two_sentences_and_patches():
    sd = get_component("objective", "spatial-dynamic").build(
        {"sequence_model": "lstm"}, dim=D, patch_count=HW)
    inputs = _inputs()
    inputs.dynamic_empty[1:] = True
    assert sd(inputs).item() == 0.0
    with pytest.raises(ValueError, match="patch features"):
        sd(_inputs(patches=False))


def test_default_weights_follow_the_paper():
    assert get_component("objective", "visual-context").make_config().weight == 0.5
    assert get_component("objective", "spatial-dynamic").make_config().weight == 0.01


def test_spatial_dynamic_lstm_reads_only_a_later_moment():
    """scope=moment with the LSTM: m~ of a sentence whose moment starts later is the mean of the
    LSTM run on that moment's frames alone (before: the video's first |moment| frames)."""
    torch.manual_seed(4)
    sd = get_component("objective", "spatial-dynamic").build(
        {"sequence_model": "lstm"}, dim=D, patch_count=HW).eval()
    frames, patches = torch.randn(2, 9, D), torch.randn(2, 9, HW, D)
    mask = torch.zeros(3, 9, dtype=torch.bool)
    mask[0, 4:8] = True  # video 0, a later moment
    mask[1, 0:3] = True  # video 0, the start
    mask[2, 6:] = True  # video 1, the end
    vidx = torch.tensor([0, 0, 1])
    got = sd.video_dynamics(frames, patches, vidx, mask)
    for q, (v, s, e) in enumerate([(0, 4, 8), (0, 0, 3), (1, 6, 9)]):
        heat = spatial_heatmap(sd.fc_global(frames[v, s:e]), sd.fc_patch(patches[v, s:e]), D)
        expected = sd.sequence(sd.fc_map(heat).unsqueeze(0), None)[0].mean(0)
        torch.testing.assert_close(got[q], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("oid", ["visual-context", "spatial-dynamic"])
def test_losses_are_float32_under_bf16_autocast(oid):
    """The trainer runs under bfloat16 autocast on cuda; the VDI terms must not: their values
    sit near 1e-5, below bfloat16's resolution. CPU autocast stands in for cuda's here."""
    torch.manual_seed(6)
    opts = {"heads": 2, "dropout": 0.0} if oid == "visual-context" else {
        "sequence_options": {"heads": 2, "dropout": 0.0}}
    module = get_component("objective", oid).build(opts, dim=D, patch_count=HW).eval()
    inputs = _inputs()
    inputs.video_index = torch.tensor([0, 0, 1, 2])
    exact = module(inputs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = module(inputs)
        # text features from a bfloat16 text tower arrive in bfloat16
        half = ObjectiveInputs(**{**inputs.__dict__,
                                  "text_dynamic": inputs.text_dynamic.bfloat16(),
                                  "text_static": inputs.text_static.bfloat16()})
        from_half = module(half)
    assert exact.dtype == auto.dtype == from_half.dtype == torch.float32
    assert auto.item() == pytest.approx(exact.item(), rel=1e-5)
    rounded = ObjectiveInputs(**{**half.__dict__, "text_dynamic": half.text_dynamic.float(),
                                 "text_static": half.text_static.float()})
    assert from_half.item() == pytest.approx(module(rounded).item(), rel=1e-5)
    auto.backward()
    assert inputs.text_dynamic.grad.dtype == torch.float32


def test_vc_infonce_hand_computed():
    """Rows: own target is the positive, other videos' targets the negatives, same-video
    targets masked. pred e1, e2, e1; target e1, e1, e2; videos 0, 0, 1."""
    import math

    from vdi_plugins.objectives import vc_infonce

    e1, e2 = [1.0, 0.0], [0.0, 1.0]
    pred, target = torch.tensor([e1, e2, e1]) * 3.0, torch.tensor([e1, e1, e2])
    vidx = torch.tensor([0, 0, 1])
    for tau in (1.0, 0.5):
        # row 0: own 1, masked, other video 0; row 1: own 0, masked, other 1;
        # row 2: own 0, two other-video targets at 1
        expected = [math.log(1 + math.exp(-1 / tau)), math.log(1 + math.exp(1 / tau)),
                    math.log(1 + 2 * math.exp(1 / tau))]
        assert vc_infonce(pred, target, vidx, tau).tolist() == pytest.approx(expected)
    # a constant target is no minimum: log(1 + sentences of other videos) per row
    flat = vc_infonce(pred, torch.ones(3, 2), vidx, 0.07)
    assert flat.tolist() == pytest.approx([math.log(2), math.log(2), math.log(3)])


def test_variance_hinge_hand_computed():
    from vdi_plugins.objectives import variance_hinge

    x = torch.tensor([[0.0, 0.0], [2.0, 0.2]])  # unbiased var over rows: 2, 0.02
    per_dim = [max(0.0, 1 - (2 + 1e-4) ** 0.5), 1 - (0.02 + 1e-4) ** 0.5]
    assert variance_hinge(x, 1.0, "sum").item() == pytest.approx(sum(per_dim))
    assert variance_hinge(x, 1.0, "mean").item() == pytest.approx(sum(per_dim) / 2)
    assert variance_hinge(x, 0.1, "sum").item() == pytest.approx(0.0)
    assert variance_hinge(x[:1], 1.0, "sum") is None


def _vc_parts(vc, inputs):
    target = vc.decoder(inputs.text_static.unsqueeze(1), inputs.frames).squeeze(1)
    return vc.fc(inputs.text_dynamic), target


def test_visual_context_infonce_and_variance_in_the_module():
    from vdi_plugins.objectives import variance_hinge, vc_infonce

    inputs = _inputs()
    inputs.video_index = torch.tensor([0, 0, 1, 2])
    inputs.frames = inputs.frames[:3]
    inputs.patches = inputs.patches[:3]
    vc = _vc(loss="infonce", temperature=0.1).eval()
    pred, target = _vc_parts(vc, ObjectiveInputs(**{**inputs.__dict__,
                                                    "frames": inputs.frames[inputs.video_index]}))
    expected = vc_infonce(pred, target, inputs.video_index, 0.1).mean()
    assert vc(inputs).item() == pytest.approx(expected.item(), rel=1e-5)
    vc = _vc(variance_weight=2.0, variance_floor=1.5).eval()
    squared = (pred - target).pow(2).sum(-1).mean()
    expected = squared + 2.0 * variance_hinge(target, 1.5, "sum")
    assert vc(inputs).item() == pytest.approx(expected.item(), rel=1e-5)


def test_variance_term_trains_the_decoder_even_with_a_detached_target():
    vc = _vc(stop_gradient="target", variance_weight=1.0)
    inputs = _inputs()
    vc(inputs).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in vc.decoder.parameters())
    assert inputs.text_dynamic.grad.abs().sum() > 0 and inputs.text_static.grad is None


def test_spatial_dynamic_video_branch_detached():
    """stop_gradient=video: the same loss, but only the text side (its FC, f_q(Qd)) learns."""
    inputs = _inputs()
    inputs.video_index = torch.tensor([0, 1, 2, 2])
    values, grads = {}, {}
    for stop in ("none", "video"):
        torch.manual_seed(7)
        sd = get_component("objective", "spatial-dynamic").build(
            {"sequence_model": "lstm", "stop_gradient": stop}, dim=D, patch_count=HW).eval()
        inputs.text_dynamic.grad = None
        loss = sd(inputs)
        loss.backward()
        values[stop] = loss.item()
        video_side = [sd.fc_global, sd.fc_patch, sd.fc_map, sd.sequence]
        grads[stop] = any(p.grad is not None and p.grad.abs().sum() > 0
                          for m in video_side for p in m.parameters())
        assert sd.fc_text.weight.grad.abs().sum() > 0
        assert inputs.text_dynamic.grad.abs().sum() > 0
    assert values["video"] == pytest.approx(values["none"], rel=1e-6)
    assert grads == {"none": True, "video": False}


def test_forms_name_option_sets_and_explicit_options_win():
    from vdi_cli.errors import ConfigError
    from vdi_plugins.objectives import FORMS

    vc = get_component("objective", "visual-context")
    sd = get_component("objective", "spatial-dynamic")
    # `paper` is the default and equals the fields' own defaults
    for comp in (vc, sd):
        default = comp.make_config()
        assert default.form == "paper"
        for key, value in FORMS[comp.id]["paper"].items():
            assert getattr(default, key) == value == type(default).model_fields[key].default
    stable = vc.make_config({"form": "stable"})
    assert (stable.loss, stable.stop_gradient) == ("infonce", "static")
    assert vc.make_config({"form": "stable", "loss": "squared"}).loss == "squared"
    stable = sd.make_config({"form": "stable"})
    assert (stable.centre, stable.stop_gradient, stable.pairs) == (True, "video",
                                                                   "different-video")
    assert sd.make_config({"form": "stable", "centre": False}).centre is False
    # a resolved config round-trips (what a run row stores)
    assert sd.make_config(stable.model_dump()) == stable
    with pytest.raises(ConfigError, match="form"):
        vc.make_config({"form": "literal"})
