"""The sequence-model contract (`register_sequence_models`): L_sd's temporal model (Eq. 4).

The built-in `spatial-dynamic` objective builds one with `factory(config, dim=D)` and runs it
over each video's per-frame dynamics m_i.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class SequenceModelFactory(Protocol):
    """How `spatial-dynamic` calls the registered factory."""

    def __call__(self, config: Any, *, dim: int) -> SequenceModel:
        """A torch module working in `dim` (the backbone's D) dimensions."""
        ...


@runtime_checkable
class SequenceModel(Protocol):
    """A torch module (its `parameters()` are trained with the objective's)."""

    def __call__(self, x: Any, pad_mask: Any = None) -> Any:
        """[B, T, D] float -> [B, T, D]; `pad_mask` [B, T] bool is True on padded frames
        (None: none padded). The outputs at real frames must not depend on padded ones, and
        gradients must reach `x` (L_sd trains through it)."""
        ...

    def parameters(self) -> Any:
        """The trainable tensors (the trainer's optimizer and checkpoints take them)."""
        ...
