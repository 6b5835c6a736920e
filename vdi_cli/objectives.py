"""What the training loop hands to an auxiliary objective (VDI's L_vc and L_sd).

Objectives are plugins (`register_objectives`): `factory(config, dim=D, patch_count=HW)` returns a
torch module whose `forward(inputs: ObjectiveInputs)` gives a scalar loss, and whose
`config.weight` is its lambda in the total loss. A module that reads `patches` sets the class
attribute `needs_patches = True` (patch features are then loaded for training). Everything here
is per *sentence* (Q rows): the frames of the sentence's video (or of its moment, see
`frame_mask`).

The built-in objectives compute in float32 even under the trainer's bfloat16 autocast
(`float32_region`): their losses are cosines and squared differences that live near 1e-5 once
training gets going, below bfloat16's resolution (8 bits of mantissa: 1 + 2^-8 is the next value
after 1).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass
class ObjectiveInputs:
    """Tensors for one batch. Shapes: Q sentences, T frames, HW patches, D joint-space dims.

    text_query / text_static / text_dynamic: f_q(Q), f_q(Qs), f_q(Qd), each [Q, D]
    (text_static is None when no objective probes with Qs).
    static_empty / dynamic_empty: [Q] bool, True where Qs / Qd has no word (excluded from a term
    that needs it).
    frames: [B, T, D] global frame features x_i^v of the batch's videos; patches: [B, T, HW, D]
    or None. Per-video, so per-frame work is done once per video, not once per sentence.
    frame_mask: [Q, T] bool, True on the frames this sentence's branch may see.
    video_index: [Q] long, the video (row of frames / patches) of each sentence.
    """

    text_query: Any
    text_static: Any
    text_dynamic: Any
    static_empty: Any
    dynamic_empty: Any
    frames: Any
    frame_mask: Any
    video_index: Any
    patches: Any = None


def zero_loss(*tensors: Any) -> Any:
    """A zero that stays in the autograd graph (no sentence qualified for the term)."""
    total = None
    for t in tensors:
        if t is not None and getattr(t, "requires_grad", False):
            total = t.sum() * 0.0 if total is None else total + t.sum() * 0.0
    if total is None:
        import torch

        return torch.zeros((), device=tensors[0].device)
    return total


def as_float32(inputs: ObjectiveInputs) -> ObjectiveInputs:
    """The same inputs with every floating tensor in float32 (the text features come out of a
    bfloat16 autocast text tower in bfloat16)."""
    return replace(inputs, **{f.name: to_float32(getattr(inputs, f.name)) for f in fields(inputs)})


@contextlib.contextmanager
def float32_region(device: Any) -> Iterator[None]:
    """Autocast off for `device`'s type inside the block: what runs there stays in the dtype of
    its inputs, so an objective that casts its inputs with `to_float32` computes in float32."""
    import torch

    with torch.autocast(device_type=torch.device(device).type, enabled=False):
        yield


def to_float32(x: Any) -> Any:
    """A floating tensor as float32 (None and non-float tensors, e.g. masks, unchanged)."""
    if x is None or not x.is_floating_point():
        return x
    return x.float()
