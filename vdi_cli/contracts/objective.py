"""The objective contract (`register_objectives`): an auxiliary training loss (VDI's L_vc, L_sd).

The trainer builds each objective named by `--objective` with `factory(config, dim=D,
patch_count=HW)`, moves it to the device, trains its `parameters()` (with the head's, or the text
tower's learning rate per `objective_lr`), adds `config.weight * objective(inputs)` to the head's
loss and stores its state under `objective.ID.` in checkpoints.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ObjectiveFactory(Protocol):
    """How `vdi_cli.pipeline.train.Trainer` calls the registered factory."""

    def __call__(self, config: Any, *, dim: int, patch_count: int) -> Objective:
        """A torch module for a backbone of `dim` (D) dimensions and `patch_count` (H x W)
        patches per frame. Factories that need neither accept and ignore them."""
        ...


@runtime_checkable
class ObjectiveConfig(Protocol):
    """`objective.config`: the validated config the trainer reads."""

    weight: float
    """The objective's lambda in the total loss."""


@runtime_checkable
class ProbingConfig(ObjectiveConfig, Protocol):
    """Optional config members (read with defaults): an objective that probes with Qs."""

    probe: Any
    """Optional (read with a default of None): "static" when the objective reads f_q(Qs)
    (`ObjectiveInputs.text_static`), which is then encoded for it; else it is None."""
    stop_gradient: Any
    """Optional, read only when `probe == "static"` (default "static"): "none" asks for f_q(Qs)
    with a graph (gradients into the text tower through Qs), anything else encodes it without."""


@runtime_checkable
class Objective(Protocol):
    """An objective module."""

    config: ObjectiveConfig
    """Read for `weight` (and `probe` / `stop_gradient`, see `ProbingConfig`) by the trainer."""

    def __call__(self, inputs: Any) -> Any:
        """`vdi_cli.objectives.ObjectiveInputs` -> a finite scalar tensor whose gradient reaches
        the text vectors it reads (what VDI trains); 0 with a gradient when nothing applies."""
        ...

    def parameters(self) -> Any:
        """Its trainable tensors (none is fine): the optimizer and checkpoints take them."""
        ...


@runtime_checkable
class PatchObjective(Objective, Protocol):
    """An objective that reads patch features (optional member, read with a default)."""

    needs_patches: bool
    """Class attribute (default False): True loads patch features for training and fills
    `ObjectiveInputs.patches`; without it `patches` is None."""


@runtime_checkable
class DiagnosedObjective(Objective, Protocol):
    """An objective with training diagnostics (optional: `vdi train --diagnostics`)."""

    collapse_figures: tuple[str, ...]
    """Names of `diagnose` figures that fall to ~0 when the objective's features collapse."""

    def diagnose(self, inputs: Any) -> dict[str, float]:
        """Figures (finite floats by name) of the objective on a batch, recorded per epoch."""
        ...
