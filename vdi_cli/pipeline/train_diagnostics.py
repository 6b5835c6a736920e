"""Per-epoch diagnostics of the VDI terms: is each term still teaching the text tower, or has it
found the trivial minimum of its equation (L_vc: a target that ignores the video; L_sd: every
cosine ~1), where its loss is small, its spreads are ~0 and it sends no gradient?

On every `diagnostics_every`-th step of an epoch (from the first), before the step's backward:
per term its unweighted and weighted value, what the objective's `diagnose(inputs)` reports (the
batch spread of its target and prediction; L_vc's target change on another video's frames;
L_sd's eps_v / eps_q), and, while the text tower trains, the norm of the gradient the weighted
term sends into the trainable text parameters beside the head's (MMN's losses). The gradients
cost one extra backward per term through the text tower (`torch.autograd.grad`, graph kept for
the step's own backward), hence the sampling. Nothing here changes the weights or the random
stream, so a run's trajectory is the same with diagnostics on or off.

At the epoch's end the means go to the `metrics` table (split "diagnostics", names
`ID/figure`), to stderr, and a warning is raised for a term that sat under a floor at every
diagnosed step of the epoch (a spread the objective names in `collapse_figures` under
`diagnostics_spread_floor`, or its gradient under `diagnostics_grad_floor` of the head's).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

# the figures shown first, in this order; the others follow sorted
_ORDER = ("value", "weighted", "target_spread", "pred_spread", "swap", "eps_v", "eps_v_std",
          "eps_q", "eps_q_std", "grad_text", "grad_ratio")


def grad_norm(value: Any, params: list[Any]) -> float:
    """The L2 norm of d value / d params (0 when value does not depend on them)."""
    import torch

    if not params or not getattr(value, "requires_grad", False):
        return 0.0
    grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
    return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)
                            or torch.zeros(())))


class Diagnostics:
    """Collects the sampled figures of one epoch; `finish(epoch)` returns their means and the
    collapse warnings, and starts the next epoch."""

    def __init__(self, every: int, spread_floor: float, grad_floor: float,
                 collapse_figures: dict[str, tuple[str, ...]] | None = None) -> None:
        self.every, self.spread_floor, self.grad_floor = every, spread_floor, grad_floor
        self.collapse_figures = dict(collapse_figures or {})
        self._start()

    @classmethod
    def for_config(cls, config: Any) -> Diagnostics | None:
        if not config.diagnostics_every:
            return None
        return cls(config.diagnostics_every, config.diagnostics_spread_floor,
                   config.diagnostics_grad_floor)

    def _start(self) -> None:
        self.calls = 0
        self.samples: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))

    def observe(self, trainer: Any, terms: dict[str, Any], inputs: Any, train_text: bool
                ) -> None:
        """One step's terms: `terms["head"]` the head's loss, `terms[ID]` (value, weighted)."""
        due = self.calls % self.every == 0
        self.calls += 1
        if not due:
            return
        params = [p for p in trainer.text_params if p.requires_grad] if train_text else []
        head = grad_norm(terms["head"], params) if params else float("nan")
        if params:
            self.samples["head"]["grad_text"].append(head)
        for oid, pair in terms.items():
            if oid == "head":
                continue
            value, weighted = pair
            module, rec = trainer.objectives[oid], self.samples[oid]
            self.collapse_figures.setdefault(oid, tuple(getattr(module, "collapse_figures", ())))
            rec["value"].append(float(value.detach()))
            rec["weighted"].append(float(weighted.detach()))
            if hasattr(module, "diagnose"):
                for key, figure in module.diagnose(inputs).items():
                    rec[key].append(float(figure))
            if params:
                g = grad_norm(weighted, params)
                rec["grad_text"].append(g)
                rec["grad_ratio"].append(g / head if head > 0 else float("nan"))

    def finish(self, epoch: int) -> tuple[dict[str, float], list[str]]:
        """The epoch's mean of every figure (`ID/figure`; `ID/collapsed` 1 or 0, `head/steps`
        the diagnosed steps) and its warnings; then starts the next epoch."""
        figures: dict[str, float] = {}
        warnings: list[str] = []
        steps = 0
        for oid, rec in self.samples.items():
            for key, values in rec.items():
                finite = [v for v in values if math.isfinite(v)]
                if finite:
                    figures[f"{oid}/{key}"] = sum(finite) / len(finite)
            if oid == "head":
                continue
            steps = max(steps, len(rec["value"]))
            why = self._collapse(oid, rec)
            figures[f"{oid}/collapsed"] = float(bool(why))
            if why:
                warnings.append(f"Warning: {oid} sat at its trivial minimum for all of epoch "
                                f"{epoch}: {why}")
        if self.samples:
            figures["head/steps"] = float(steps)
        self._start()
        return figures, warnings

    def _collapse(self, oid: str, rec: dict[str, list[float]]) -> str:
        """Why the term counts as collapsed this epoch ('' if it does not): each figure under
        its floor at every diagnosed step (its largest value named)."""
        checks = [(name, self.spread_floor) for name in self.collapse_figures.get(oid, ())]
        checks.append(("grad_ratio", self.grad_floor))
        why = []
        for name, floor in checks:
            values = [v for v in rec.get(name, []) if math.isfinite(v)]
            if values and max(values) < floor:
                why.append(f"{name} {max(values):.3g} < {floor:g}")
        n = len(rec.get("value", []))
        return f"{'; '.join(why)} at each of the {n} diagnosed steps" if why else ""


def format_figures(figures: dict[str, float]) -> list[str]:
    """One stderr line per term, every figure with 3 significant digits (1.23e-05 stays
    visible); the gradient ratio also as a percentage."""
    by_term: dict[str, dict[str, float]] = defaultdict(dict)
    for name, value in figures.items():
        oid, key = name.split("/", 1)
        by_term[oid][key] = value
    lines = []
    head = by_term.pop("head", {})
    for oid, rec in by_term.items():
        keys = [k for k in _ORDER if k in rec] + sorted(set(rec) - set(_ORDER) - {"collapsed"})
        parts = [f"{k} {rec[k]:.3g}" for k in keys]
        if "grad_ratio" in rec:
            parts[-1] += f" ({100 * rec['grad_ratio']:.3g}% of the head's)"
        lines.append(f"  {oid}: " + "  ".join(parts))
    if "grad_text" in head:
        lines.append(f"  head: grad_text {head['grad_text']:.3g}")
    return lines


def finish_epoch(trainer: Any, db: Any, run: Any, epoch: int, quiet: bool) -> dict[str, float]:
    """The epoch's diagnostics: stored (split "diagnostics"), printed on stderr, warnings
    printed and kept in the run summary (`diagnostic_warnings`). Empty without objectives or
    with diagnostics off."""
    from vdi_cli.pipeline.train import say
    from vdi_cli.store.predictions import insert_metrics

    if trainer.diagnostics is None:
        return {}
    figures, warnings = trainer.diagnostics.finish(epoch)
    if not figures:
        return {}
    insert_metrics(db, run.id, "diagnostics", figures, epoch)
    say(f"diagnostics, epoch {epoch} ({int(figures.get('head/steps', 0))} steps):", quiet)
    for line in format_figures(figures):
        say(line, quiet)
    for warning in warnings:
        say(warning, quiet)
    if warnings:
        run.summary.setdefault("diagnostic_warnings", []).extend(
            w.removeprefix("Warning: ") for w in warnings)
    return figures
