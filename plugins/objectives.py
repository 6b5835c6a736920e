"""VDI's auxiliary objectives (paper section 3.1): `visual-context` (L_vc) and `spatial-dynamic`
(L_sd). They train the text encoder during training only; nothing here runs at inference.

L_vc (Eqs. 1-2): x~_qs = TransDecoder(query=f_q(Qs), key=value=X^v);
L_vc = || FC(f_q(Qd)) - x~_qs ||^2.
L_sd (Eqs. 3-5): M_i = FC(x_i^v) . FC(X~_i^v) / sqrt(D) over the HW patches; m_i = FC(M_i);
m~ = mean over frames of SeqModel({m_i}); for every pair (i, j) of sentences of different videos,
eps_v = cos(m~_i, m~_j), eps_q = cos(FC(x_qd_i), FC(x_qd_j)); L_sd = mean (eps_v - eps_q)^2.

The paper leaves open: the reduction of the squared norm, which branches receive gradients, which
text probes the frames, and which pairs enter the mean. Each is an option below; docs/paper.md
("Our reading of the paper") says why the defaults are what they are. Eqs. 2 and 5 as written
have zero-loss minima that carry no information (a constant decoder output; every cosine ~1),
so each term also has variants that cannot sit there, and `form` names two combinations:
`paper` (the literal form, the default) and `stable` (the variants we chose, FORMS below).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from vdi_cli.hookspecs import hookimpl
from vdi_plugins._objective_losses import (  # noqa: F401  (re-exported: the objectives' arithmetic)
    cosine_matrix,
    projected_heatmap,
    sd_consistency,
    spatial_heatmap,
    variance_hinge,
    vc_distance,
    vc_infonce,
)

# What `form` sets, per objective; an option given explicitly wins over its form.
FORMS: dict[str, dict[str, dict[str, Any]]] = {
    "visual-context": {
        "paper": {"loss": "squared", "stop_gradient": "static", "variance_weight": 0.0},
        "stable": {"loss": "infonce", "stop_gradient": "static", "variance_weight": 0.0},
    },
    "spatial-dynamic": {
        "paper": {"pairs": "different-video", "centre": False, "stop_gradient": "none"},
        "stable": {"pairs": "different-video", "centre": True, "stop_gradient": "video"},
    },
}


def with_form(values: Any, forms: dict[str, dict[str, Any]]) -> Any:
    """The options of `values["form"]` (default `paper`) under the options given explicitly."""
    if not isinstance(values, dict) or values.get("form", "paper") not in forms:
        return values  # not a dict, or an unknown form: the field validation reports it
    return {**forms[values.get("form", "paper")], **values}


def _form_help(oid: str) -> str:
    return "; ".join(f"{name}: " + ", ".join(f"{k}={v}" for k, v in opts.items())
                     for name, opts in FORMS[oid].items())


class VisualContextConfig(BaseModel):
    form: Literal["paper", "stable"] = Field(
        "paper", description="A named combination of the options below (explicit ones win): "
        + _form_help("visual-context") + ".")
    weight: float = Field(0.5, ge=0.0, description="lambda_vc in the total loss (paper: 0.5).")
    probe: Literal["static", "query", "none"] = Field(
        "static", description="What probes the frames: Qs (paper), the full Q, or a learned "
        "query (no text); the paper's Table 3 variants.")
    stop_gradient: Literal["static", "none", "target"] = Field(
        "static", description="static: f_q(Qs) is detached (the probe does not move the text "
        "encoder); none: every branch trains; target: the whole x~_qs target is detached (the "
        "decoder then trains only through the variance term).")
    loss: Literal["squared", "infonce"] = Field(
        "squared", description="squared: Eq. 2's ||FC(f_q(Qd)) - x~_qs||^2; infonce: each "
        "sentence's FC(f_q(Qd)) must pick its own x~_qs among the batch's (cosine / "
        "temperature; targets of the same video are not negatives).")
    temperature: float = Field(0.07, gt=0.0, description="InfoNCE temperature (loss=infonce).")
    variance_weight: float = Field(
        0.0, ge=0.0, description="Weight of a VICReg variance hinge on x~_qs: relu(floor - "
        "std over the batch) per dim, reduced over D like the distance (0: off).")
    variance_floor: float = Field(1.0, gt=0.0, description="The std the hinge asks of each "
                                  "target dim (VICReg's gamma).")
    reduction: Literal["sum", "mean"] = Field(
        "sum", description="Squared error summed (sum: the paper's ||.||^2) or averaged (mean: "
        "the same gradient direction, lambda_vc effectively divided by D) over the D dims; then "
        "averaged over sentences.")
    layers: int = Field(1, ge=1, description="Transformer decoder layers.")
    heads: int = Field(8, ge=1, description="Decoder attention heads (must divide D).")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Decoder dropout.")

    @model_validator(mode="before")
    @classmethod
    def _apply_form(cls, values: Any) -> Any:
        return with_form(values, FORMS["visual-context"])


class SpatialDynamicConfig(BaseModel):
    form: Literal["paper", "stable"] = Field(
        "paper", description="A named combination of the options below (explicit ones win): "
        + _form_help("spatial-dynamic") + ".")
    weight: float = Field(0.01, ge=0.0, description="lambda_sd in the total loss (paper: 0.01).")
    sequence_model: str = Field("transformer", description="Sequence model id (Eq. 4).")
    sequence_options: dict[str, Any] = Field(default_factory=dict,
                                             description="Options of the sequence model.")
    pairs: Literal["different-video", "off-diagonal", "all"] = Field(
        "different-video", description="Pairs in the mean: sentences of different videos (the "
        "paper's wording), every i != j (also same-video pairs, whose video-side cosine is 1 "
        "under scope=video), or all Q x Q.")
    centre: bool = Field(
        False, description="Beyond the paper: subtract each side's mean over the batch's "
        "sentences before the cosines, so the direction every sentence shares cannot make all "
        "cosines ~1 and Eq. 5 ~0 by itself (off: Eq. 5 as written).")
    stop_gradient: Literal["none", "video"] = Field(
        "none", description="none: both branches train (Eq. 5 as written); video: m~ is "
        "detached, so only the text side (its FC and the text tower) moves to match the "
        "video's cosine structure, which cannot fold onto the text's.")

    @model_validator(mode="after")
    def _sequence_options(self) -> SpatialDynamicConfig:
        """The sequence model and its options are checked here, with the objective's, so a
        typo (`-O spatial-dynamic.sequence_options.hedas=4`) fails before any model loads
        instead of being dropped (or failing) when the branch is built."""
        from vdi_cli.registry import get_component

        get_component("sequence-model", self.sequence_model).make_config(self.sequence_options)
        return self

    @model_validator(mode="before")
    @classmethod
    def _apply_form(cls, values: Any) -> Any:
        return with_form(values, FORMS["spatial-dynamic"])


def build_visual_context(config: VisualContextConfig, dim: int, **_: Any) -> Any:
    import torch
    from torch import nn

    from vdi_cli.objectives import zero_loss

    class VisualContextInjection(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = config
            layer = nn.TransformerDecoderLayer(
                dim, config.heads, dim_feedforward=2 * dim, dropout=config.dropout,
                batch_first=True)
            self.decoder = nn.TransformerDecoder(layer, config.layers)
            self.fc = nn.Linear(dim, dim)
            self.learned_query = nn.Parameter(torch.zeros(dim)) if config.probe == "none" else None
            if self.learned_query is not None:
                nn.init.normal_(self.learned_query, std=0.02)

        # what the trainer's diagnostics check against the spread floor (a trivial minimum)
        collapse_figures = ("target_spread", "swap")

        def diagnose(self, inputs: Any) -> dict[str, float]:
            from vdi_plugins._objective_diagnostics import diagnose_visual_context

            return diagnose_visual_context(self, inputs)

        def forward(self, inputs: Any) -> Any:
            from vdi_cli.objectives import as_float32, float32_region

            with float32_region(inputs.text_dynamic.device):
                return self.loss(as_float32(inputs))

        def loss(self, inputs: Any) -> Any:
            keep = ~inputs.dynamic_empty & inputs.frame_mask.any(1)
            if config.probe == "static":
                probe = inputs.text_static
                keep = keep & ~inputs.static_empty
            elif config.probe == "query":
                probe = inputs.text_query
            else:
                probe = self.learned_query.expand(len(keep), -1)
            if not keep.any():
                return zero_loss(inputs.text_dynamic, probe, self.fc.weight)
            if config.stop_gradient in ("static", "target") and config.probe != "none":
                probe = probe.detach()  # under `target` only the variance term reaches here
            memory = inputs.frames[inputs.video_index[keep]]
            target = self.decoder(
                probe[keep].unsqueeze(1), memory,
                memory_key_padding_mask=~inputs.frame_mask[keep]).squeeze(1)
            spread = None
            if config.variance_weight > 0:
                spread = variance_hinge(target, config.variance_floor, config.reduction)
            if config.stop_gradient == "target":
                target = target.detach()
            pred = self.fc(inputs.text_dynamic[keep])
            if config.loss == "infonce":
                loss = vc_infonce(pred, target, inputs.video_index[keep],
                                  config.temperature).mean()
            else:
                loss = vc_distance(pred, target, config.reduction).mean()
            return loss if spread is None else loss + config.variance_weight * spread

    return VisualContextInjection()


def build_spatial_dynamic(config: SpatialDynamicConfig, dim: int, patch_count: int,
                          **_: Any) -> Any:
    from torch import nn

    from vdi_cli.objectives import zero_loss
    from vdi_cli.registry import get_component

    sequence = get_component("sequence-model", config.sequence_model).build(
        config.sequence_options or None, dim=dim)

    class SpatialDynamicInjection(nn.Module):
        needs_patches = True  # the trainer loads patch features only for such objectives
        collapse_figures = ("eps_v_std", "eps_q_std")

        def __init__(self) -> None:
            super().__init__()
            self.config = config
            self.fc_global = nn.Linear(dim, dim)
            self.fc_patch = nn.Linear(dim, dim)
            self.fc_map = nn.Linear(patch_count, dim)
            self.sequence = sequence
            self.fc_text = nn.Linear(dim, dim)

        def video_dynamics(self, frames: Any, patches: Any, video_index: Any,
                           frame_mask: Any) -> Any:
            """m~ per sentence [Q, D]: heatmaps and m_i once per video, then the sequence model
            once per distinct (video, visible frames) pair (all sentences of a video share it
            when the branch sees the whole video), averaged over the visible frames."""
            import torch

            heat = projected_heatmap(frames, patches, self.fc_global, self.fc_patch, dim)
            m = self.fc_map(heat)  # [B, T, D]
            rows = torch.cat([video_index[:, None], frame_mask.long()], 1)
            unique, inverse = torch.unique(rows, dim=0, return_inverse=True)
            visible = unique[:, 1:].bool()
            out = self.sequence(m[unique[:, 0]], ~visible)
            w = visible.to(out.dtype).unsqueeze(-1)
            return ((out * w).sum(1) / w.sum(1).clamp(min=1.0))[inverse]

        def diagnose(self, inputs: Any) -> dict[str, float]:
            from vdi_plugins._objective_diagnostics import diagnose_spatial_dynamic

            return diagnose_spatial_dynamic(self, inputs)

        def forward(self, inputs: Any) -> Any:
            from vdi_cli.objectives import as_float32, float32_region

            if inputs.patches is None:
                raise ValueError("spatial-dynamic needs patch features")
            with float32_region(inputs.text_dynamic.device):
                return self.loss(as_float32(inputs))

        def loss(self, inputs: Any) -> Any:
            import torch

            keep = ~inputs.dynamic_empty & inputs.frame_mask.any(1)
            if int(keep.sum()) < 2:
                return zero_loss(inputs.text_dynamic, self.fc_text.weight)
            used = inputs.video_index[keep]
            videos, local = used.unique(return_inverse=True)
            frames, patches = inputs.frames[videos], inputs.patches[videos]
            with torch.set_grad_enabled(config.stop_gradient != "video" and
                                        torch.is_grad_enabled()):
                video = self.video_dynamics(frames, patches, local, inputs.frame_mask[keep])
            text = self.fc_text(inputs.text_dynamic[keep])
            loss = sd_consistency(video, text, keep.new_ones(int(keep.sum())), config.pairs,
                                  config.centre, video_index=used)
            return loss if loss is not None else zero_loss(inputs.text_dynamic)

    return SpatialDynamicInjection()


@hookimpl
def register_objectives(register: Any) -> None:
    register("visual-context", build_visual_context, config=VisualContextConfig,
             description="VDI visual-context injection L_vc (Eqs. 1-2): align FC(f_q(Qd)) with "
             "the frames probed by Qs.", requires=("clip",), default_for="objective")
    register("spatial-dynamic", build_spatial_dynamic, config=SpatialDynamicConfig,
             description="VDI spatial-dynamic injection L_sd (Eqs. 3-5): match cosine structure "
             "of patch-heatmap dynamics and of Qd features.", requires=("clip",),
             default_for="objective")
