"""The `mmn` head's options: a dataset preset (MMN's config yamls) plus per-option overrides.

Every option left at None takes the preset's value, so `-o preset=activitynet -o margin=0.2`
does what it says. `resolve(config)` gives the complete, validated parameter set. Torch-free.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from vdi_cli.errors import ConfigError

# MMN's configs/pool_{charades_16x16_k5l8, activitynet_64x64_k9l4, tacos_128x128_k5l8}.yaml
PRESETS: dict[str, dict[str, Any]] = {
    "charades": dict(
        num_clips=16, num_pre_clips=32, pool_kernel=2, pooling_counts=(15,), conv_layers=8,
        conv_kernel=5, min_iou=0.5, max_iou=1.0, num_positive=1, margin=0.4,
        contrastive_weight=0.05, only_iou=7, nms_thresh=0.5, score_pow=0.5,
    ),
    "activitynet": dict(
        num_clips=64, num_pre_clips=256, pool_kernel=4, pooling_counts=(15, 8, 8), conv_layers=4,
        conv_kernel=9, min_iou=0.5, max_iou=1.0, num_positive=1, margin=0.3,
        contrastive_weight=0.1, only_iou=6, nms_thresh=0.5, score_pow=0.5,
    ),
    "tacos": dict(
        num_clips=128, num_pre_clips=256, pool_kernel=2, pooling_counts=(15, 8, 8, 8),
        conv_layers=8, conv_kernel=5, min_iou=0.3, max_iou=0.7, num_positive=3, margin=0.1,
        contrastive_weight=0.1, only_iou=100, nms_thresh=0.4, score_pow=0.3,
    ),
}

# `vdi train`'s defaults per preset (MMN's trainer: lr, epochs, lr milestones, FREEZE_BERT's
# epochs), filled in where a run leaves them unset; `objectives_frozen` says what the VDI terms
# do while the text tower is frozen (MMN's FREEZE_BERT, which VDI's paper does not mention):
# "skip", not computed and their modules not updated, so they start when the text tower starts
# learning and never train unopposed.
TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    "charades": {"lr": 1e-4, "epochs": 18, "milestones": [8, 13], "freeze_text_epochs": 4,
                 "objectives_frozen": "skip"},
    "activitynet": {"lr": 8e-4, "epochs": 18, "milestones": [7, 15], "freeze_text_epochs": 4,
                    "objectives_frozen": "skip"},
    "tacos": {"lr": 1.5e-3, "epochs": 250, "milestones": [130, 190], "freeze_text_epochs": 40,
              "objectives_frozen": "skip"},
}

_P = "(default: the preset's)"


class MMNConfig(BaseModel):
    preset: Literal["charades", "activitynet", "tacos"] = Field(
        "charades", description="MMN's per-dataset settings: charades (N=16), activitynet "
        "(N=64), tacos (N=128).")
    num_clips: int | None = Field(None, ge=2, description=f"N, the 2D map side {_P}.")
    num_pre_clips: int | None = Field(
        None, ge=2, description=f"Segments the frames are averaged into first {_P}.")
    pool_kernel: int | None = Field(None, ge=1, description=f"AvgPool1d kernel {_P}.")
    pool_linear: bool = Field(
        False, description="Keep MMN's 1x1 conv + ReLU before the average pooling (VDI deletes "
        "it to keep CLIP's feature structure).")
    pool_hidden: int = Field(512, ge=1, description="Width of that 1x1 conv (pool_linear only).")
    temporal_delta: float = Field(
        0.0, ge=0, description="Beyond the paper (0 = off, as MMN): append s * (x[t+1] - "
        "x[t-1]) of the L2-normalised frames to each frame, so how the frame changes is an "
        "input of its own (CLIP image features carry no motion).")
    span_delta: float = Field(
        0.0, ge=0, description="Beyond the paper (0 = off, as MMN): append s * (clip[j] - "
        "clip[i]) to cell (i, j) of the 2D map, so a moment's input says how its end differs "
        "from its start (max pooling over the span keeps no order).")
    pooling_counts: list[int] | None = Field(
        None, description=f"Diagonals per pooling group of the sparse 2D map {_P}.")
    conv_layers: int | None = Field(None, ge=1, description=f"Proposal conv layers {_P}.")
    conv_kernel: int | None = Field(None, ge=1, description=f"Proposal conv kernel {_P}.")
    hidden_size: int = Field(512, ge=1, description="Proposal conv channels.")
    joint_size: int = Field(256, ge=1, description="Joint video-text space width.")
    min_iou: float | None = Field(None, description=f"IoU mapped to BCE target 0 {_P}.")
    max_iou: float | None = Field(None, description=f"IoU mapped to BCE target 1 {_P}.")
    num_positive: int | None = Field(
        None, ge=1, description=f"Positive proposals per sentence (top-k by IoU) {_P}.")
    negative_video_iou: float = Field(
        0.5, description="Same-video proposals with IoU below this are sentence-side negatives.")
    sent_removal_iou: float = Field(
        0.5, description="Same-video sentences whose moments overlap this much are not "
        "video-side negatives.")
    tau_video: float = Field(0.1, gt=0, description="Video-side temperature.")
    tau_sent: float = Field(0.1, gt=0, description="Sentence-side temperature.")
    margin: float | None = Field(None, description=f"Margin on positive cosines {_P}.")
    contrastive_weight: float | None = Field(
        None, ge=0, description=f"Weight of L_vid + L_sent {_P}.")
    only_iou: int | None = Field(
        None, ge=0, description=f"After this epoch the contrastive weight is x0.01 {_P}.")
    late_factor: float = Field(
        0.01, ge=0, description="The contrastive weight's factor after `only_iou` (MMN: 0.01).")
    nms_thresh: float | None = Field(None, description=f"NMS IoU threshold {_P}.")
    score_pow: float | None = Field(
        None, description=f"Exponent on (0.5 contrastive + 0.5) at test time {_P}.")


@dataclass(frozen=True)
class MMNParams:
    """The resolved parameters (preset + overrides), validated for shape consistency."""

    preset: str
    num_clips: int
    num_pre_clips: int
    pool_kernel: int
    pool_linear: bool
    pool_hidden: int
    temporal_delta: float
    span_delta: float
    pooling_counts: tuple[int, ...]
    conv_layers: int
    conv_kernel: int
    hidden_size: int
    joint_size: int
    min_iou: float
    max_iou: float
    num_positive: int
    negative_video_iou: float
    sent_removal_iou: float
    tau_video: float
    tau_sent: float
    margin: float
    contrastive_weight: float
    only_iou: int
    late_factor: float
    nms_thresh: float
    score_pow: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pooling_counts"] = list(self.pooling_counts)
        return d


def _pooled_length(n: int, kernel: int, stride: int) -> int:
    return (n - kernel) // stride + 1 if n >= kernel else 0


def resolve(config: MMNConfig | dict[str, Any] | None = None) -> MMNParams:
    """Preset values overridden by the non-None options; raises ConfigError on a shape mismatch."""
    if config is None or isinstance(config, dict):
        config = MMNConfig(**(config or {}))
    values = dict(PRESETS[config.preset])
    for key, value in config.model_dump().items():
        if value is not None:
            values[key] = value
    values["pooling_counts"] = tuple(int(c) for c in values["pooling_counts"])
    p = MMNParams(**values)
    _check(p)
    return p


def _check(p: MMNParams) -> None:
    hint = "`vdi heads show mmn` lists the options; the presets are consistent"
    stride = p.num_pre_clips // p.num_clips
    if stride < 1 or _pooled_length(p.num_pre_clips, p.pool_kernel, stride) != p.num_clips:
        raise ConfigError(
            f"mmn: AvgPool1d(kernel={p.pool_kernel}, stride={p.num_pre_clips}//{p.num_clips}) "
            f"does not turn {p.num_pre_clips} segments into num_clips={p.num_clips}",
            hint=hint,
        )
    if not p.pooling_counts or any(c < 1 for c in p.pooling_counts):
        raise ConfigError("mmn: pooling_counts must be a non-empty list of positive counts",
                          hint=hint)
    # the pooled sequence must have exactly as many entries as each diagonal has cells
    n, length, stride, offset = p.num_clips, p.num_clips, 1, 0
    for g, count in enumerate(p.pooling_counts):
        for k in range(count):
            length = _pooled_length(length, 3, 2) if (g and not k) else _pooled_length(length, 2, 1)
            offset += stride
            cells = len(range(0, n - offset, stride))
            if length != cells or cells == 0:
                raise ConfigError(
                    f"mmn: pooling_counts {list(p.pooling_counts)} do not fit num_clips={n} "
                    f"(diagonal at offset {offset} has {cells} cells, the pooled sequence "
                    f"{length})",
                    hint=hint,
                )
        stride *= 2
    if ((p.conv_kernel - 1) * p.conv_layers) % 2:
        raise ConfigError(
            f"mmn: (conv_kernel - 1) * conv_layers = {(p.conv_kernel - 1) * p.conv_layers} must "
            "be even so the proposal convs keep the N x N size",
            hint=hint,
        )
    if not p.max_iou > p.min_iou:
        raise ConfigError(f"mmn: max_iou ({p.max_iou}) must exceed min_iou ({p.min_iou})",
                          hint=hint)


def train_defaults(head_options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(preset, the training options a run of this head takes where it leaves them unset): the
    `train_defaults` the `mmn` registration offers `vdi train` (an unknown preset: charades')."""
    name = str(head_options.get("preset") or MMNConfig.model_fields["preset"].default)
    return name, dict(TRAIN_PRESETS.get(name, TRAIN_PRESETS["charades"]))
