"""Training options, with the paper's / MMN's defaults per dataset preset.

Options left at None take the head preset's value (charades: lr 1e-4, 18 epochs, milestones
8 and 13, text encoder frozen for the first 4 epochs; activitynet: lr 8e-4, milestones 7 and 15).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

# `objectives_frozen` says what the VDI terms do in the epochs the text tower is frozen (MMN's
# FREEZE_BERT, which VDI's paper does not mention): "skip", not computed and their modules not
# updated, so they start when the text tower starts learning and never train unopposed.
TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    "charades": {"lr": 1e-4, "epochs": 18, "milestones": [8, 13], "freeze_text_epochs": 4,
                 "objectives_frozen": "skip"},
    "activitynet": {"lr": 8e-4, "epochs": 18, "milestones": [7, 15], "freeze_text_epochs": 4,
                    "objectives_frozen": "skip"},
    "tacos": {"lr": 1.5e-3, "epochs": 250, "milestones": [130, 190], "freeze_text_epochs": 40,
              "objectives_frozen": "skip"},
}
# What `vdi_form` sets where an option is left at None; it also becomes the `form` of every
# objective that has one and was not given one. (What the terms do while the text tower is
# frozen is the preset's: the freeze epochs are.)
VDI_FORMS: dict[str, dict[str, Any]] = {
    "paper": {"objective_lr": "head"},
    "stable": {"objective_lr": "text"},
}
DEFAULT_OBJECTIVES = ["visual-context", "spatial-dynamic"]


class TrainConfig(BaseModel):
    dataset: str = Field(..., description="Annotation format of the training file.")
    annotations: str = Field(..., description="Training annotation file.")
    video_dir: str = Field(..., description="Folder with the videos (<video id>.<ext>).")
    val: str | None = Field(None, description="Validation annotation file (early stopping).")
    backbone: str = "clip-vit-b32"
    weights: str | None = None
    backbone_options: dict[str, Any] = Field(default_factory=dict)
    fps: float | None = Field(None, description="Feature sampling rate (default 1 fps).")
    num_frames: int | None = Field(None, description="Or a fixed number of frames per video.")
    head: str = "mmn"
    head_options: dict[str, Any] = Field(default_factory=dict)
    parser: str = "spacy"
    parser_options: dict[str, Any] = Field(default_factory=dict)
    objectives: list[str] = Field(default_factory=lambda: list(DEFAULT_OBJECTIVES))
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
        "Default: the preset's (skip for charades, activitynet, tacos).")
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

    def preset(self) -> str:
        return str(self.head_options.get("preset", "charades"))

    def resolved(self) -> TrainConfig:
        """A copy with the preset's values, then `vdi_form`'s, filled in where an option was
        left at None."""
        values = self.model_dump()
        for key, value in [*TRAIN_PRESETS.get(self.preset(), TRAIN_PRESETS["charades"]).items(),
                           *VDI_FORMS[self.vdi_form].items()]:
            if values.get(key) is None:
                values[key] = value
        return TrainConfig(**values)

    def sampling(self) -> dict[str, Any]:
        from vdi_cli.video import Sampling

        return Sampling(fps=self.fps, num_frames=self.num_frames).to_dict()
