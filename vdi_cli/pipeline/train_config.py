"""Training options. The components default to the ones the plugins register as defaults
(vdi_cli.defaults), and the options a run leaves at None take the head's training defaults
(the built-in head's presets: its Charades setting lr 1e-4, 18 epochs, milestones 8 and 13, the
text encoder frozen for the first 4 epochs; ActivityNet lr 8e-4, milestones 7 and 15).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

# What a run of a head that offers no `train_defaults` (vdi_cli.defaults) takes where it leaves
# these unset: the values of MMN's Charades setting, which the built-in head offers for its
# default preset. `objectives_frozen` "skip": the VDI terms are not computed (their modules not
# updated) while the text tower is frozen, so they never train unopposed.
FALLBACK_TRAIN_DEFAULTS: dict[str, Any] = {
    "lr": 1e-4, "epochs": 18, "milestones": [8, 13], "freeze_text_epochs": 4,
    "objectives_frozen": "skip"}
# What `vdi_form` sets where an option is left at None; it also becomes the `form` of every
# objective that has one and was not given one. (What the terms do while the text tower is
# frozen is the preset's: the freeze epochs are.)
VDI_FORMS: dict[str, dict[str, Any]] = {
    "paper": {"objective_lr": "head"},
    "stable": {"objective_lr": "text"},
}


def _registered(kind: str) -> str:
    """The id a plugin registers as the default `kind` (vdi_cli.defaults; the built-ins'
    unless VDI_PREFER / VDI_PLUGINS say otherwise)."""
    from vdi_cli.defaults import default_id

    return default_id(kind)


def _default_objectives() -> list[str]:
    from vdi_cli.defaults import default_ids

    return default_ids("objective")


def head_train_defaults(head: str, head_options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(preset name, training defaults) the head offers for these options (its registration's
    `train_defaults`), else ("", FALLBACK_TRAIN_DEFAULTS)."""
    from vdi_cli.defaults import component_hook
    from vdi_cli.registry import get_component

    offer = component_hook(get_component("head", head), "train_defaults")
    if offer is None:
        return "", dict(FALLBACK_TRAIN_DEFAULTS)
    name, values = offer(dict(head_options))
    return str(name), {**FALLBACK_TRAIN_DEFAULTS, **values}


class TrainConfig(BaseModel):
    dataset: str = Field(..., description="Annotation format of the training file.")
    annotations: str = Field(..., description="Training annotation file.")
    video_dir: str = Field(..., description="Folder with the videos (<video id>.<ext>).")
    val: str | None = Field(None, description="Validation annotation file (early stopping).")
    backbone: str = Field(default_factory=lambda: _registered("backbone"),
                          description="Default: the registered default backbone.")
    weights: str | None = None
    backbone_options: dict[str, Any] = Field(default_factory=dict)
    fps: float | None = Field(None, description="Feature sampling rate (default 1 fps).")
    num_frames: int | None = Field(None, description="Or a fixed number of frames per video.")
    head: str = Field(default_factory=lambda: _registered("head"),
                      description="Default: the registered default head.")
    head_options: dict[str, Any] = Field(default_factory=dict)
    parser: str = Field(default_factory=lambda: _registered("parser"),
                        description="Default: the registered default parser.")
    parser_options: dict[str, Any] = Field(default_factory=dict)
    objectives: list[str] = Field(default_factory=_default_objectives,
                                  description="Default: the objectives registered as defaults.")
    objective_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    scope: Literal["video", "moment"] = Field(
        "video", description="Frames the VDI branches see: the whole video (Eqs. 1 and 4 say "
        "X^v) or only the sentence's moment.")
    epochs: int | None = Field(None, ge=1)
    batch_size: int = Field(48, ge=1, description="Videos per step (all their sentences).")
    lr: float | None = Field(None, gt=0)
    text_lr_ratio: float = Field(0.1, ge=0, description="Text encoder lr / head lr (paper 1/10).")
    weight_decay: float = 1e-5
    milestones: list[int] | None = None
    gamma: float = 0.1
    freeze_text_epochs: int | None = Field(None, ge=0)
    vdi_form: Literal["paper", "stable"] = Field(
        "stable", description="The VDI objectives' `form` (where an objective's own is not "
        "given) and objective_lr where it is left unset: paper = Eqs. 2 / 5 as written, "
        "modules at the head's lr; stable = the forms without trivial minima, modules at the "
        "text tower's lr.")
    objective_lr: Literal["head", "text"] | None = Field(
        None, description="Learning rate of the VDI objectives' own layers: the head's, or the "
        "text tower's (lr x text_lr_ratio). Default: from vdi_form.")
    objectives_frozen: Literal["train", "skip"] | None = Field(
        None, description="While the text tower is frozen (freeze_text_epochs): train the VDI "
        "terms anyway (their modules then learn unopposed), or skip them (no loss, no update). "
        "Default: the head's training defaults (skip for every preset of the built-in head).")
    diagnostics_every: int = Field(
        20, ge=0, description="Per-term VDI diagnostics every k-th step of an epoch (from its "
        "first step; each costs one extra backward per term into the text tower); 0: off.")
    diagnostics_spread_floor: float = Field(
        0.05, ge=0, description="Collapse warning when a VDI term's scale-free spread (L_vc: "
        "target spread / rms, target change on swapped frames; L_sd: std of eps_v, eps_q) is "
        "under this at every diagnosed step of an epoch.")
    diagnostics_grad_floor: float = Field(
        1e-3, ge=0, description="Collapse warning when a VDI term's weighted gradient into the "
        "text tower is under this fraction of the head's at every diagnosed step of an epoch.")
    grad_clip: float = Field(5.0, gt=0)
    patience: int = Field(3, ge=0, description="Epochs without validation gain before stopping "
                          "(0: never stop early).")
    select_metric: str = Field("R@1,IoU=0.5",
                               description="Validation metric for best / early stop.")
    context_length: int | None = Field(None, ge=4, description="Text context (CLIP: 77).")
    train_text_layers: int | None = Field(
        None, ge=0, description="Train only the last k text blocks (+ final norm/projection).")
    text_trainable: Literal["all", "token-embeddings"] = Field(
        "all", description="Beyond the paper: 'token-embeddings' trains only the word vectors "
        "of the text tower (its attention, positions, final norm and projection stay "
        "pretrained).")
    text_pool: Literal["eot", "mean"] = Field(
        "eot", description="Sentence vector: CLIP's end-of-text token (paper), or, beyond the "
        "paper, the mean of the final token states start..end (kept in the checkpoint).")
    keep_checkpoints: Literal["all", "best-last"] = Field(
        "best-last", description="Epoch checkpoints kept on disk: only the best and the newest "
        "(enough to evaluate and to resume; the others are deleted as training goes), or every "
        "one.")
    seed: int = 25285
    device: str = "cpu"
    amp: bool = Field(True, description="Mixed precision (bfloat16 autocast) on cuda; CPU "
                      "always runs float32.")
    eval_batch_size: int = Field(32, ge=1)
    feature_batch_size: int = Field(32, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        """Two text-tower selections contradict; options for an objective this run does not use
        would be dropped without a word."""
        if self.text_trainable != "all" and self.train_text_layers is not None:
            raise ValueError(f"text_trainable={self.text_trainable} and train_text_layers="
                             f"{self.train_text_layers} contradict: choose one")
        if self.objectives and self.objectives_frozen == "skip" and self.text_lr_ratio == 0:
            raise ValueError(f"objectives_frozen=skip runs the VDI terms only while the text "
                             f"tower trains, and text_lr_ratio=0 never trains it: "
                             f"{', '.join(self.objectives)} would never run (use "
                             "objectives_frozen=train, a text_lr_ratio above 0, or "
                             "--no-objective)")
        unused = sorted(set(self.objective_options) - set(self.objectives))
        if unused:
            used = ", ".join(self.objectives) or "none (--no-objective)"
            raise ValueError(f"objective options for {', '.join(map(repr, unused))}, which this "
                             f"run does not use (objectives: {used})")
        return self

    def train_defaults(self) -> tuple[str, dict[str, Any]]:
        """(preset, values) the head offers for the options a run leaves unset."""
        return head_train_defaults(self.head, self.head_options)

    def resolved(self) -> TrainConfig:
        """A copy with the head's training defaults, then `vdi_form`'s, filled in where an
        option was left at None."""
        values = self.model_dump()
        for key, value in [*self.train_defaults()[1].items(),
                           *VDI_FORMS[self.vdi_form].items()]:
            if values.get(key) is None:
                values[key] = value
        return TrainConfig(**values)

    def sampling(self) -> dict[str, Any]:
        from vdi_cli.video import Sampling

        return Sampling(fps=self.fps, num_frames=self.num_frames).to_dict()
