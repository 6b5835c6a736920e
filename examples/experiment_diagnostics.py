"""The VDI diagnostics section of examples/experiment.py's results.md: per configuration, VDI
term and epoch, the mean over seeds of what `vdi train` stored (split "diagnostics": values,
spreads, eps, the term's gradient into the text tower as a share of the head's) and in how many
seeds the collapse warning fired. Kept apart from experiment.py, which runs the experiment.
"""

from __future__ import annotations

import math

# (column title, figure name) in the table's order
COLUMNS = (("weighted", "weighted"), ("value", "value"), ("target spread", "target_spread"),
           ("pred spread", "pred_spread"), ("swap", "swap"), ("eps_v", "eps_v"),
           ("eps_v std", "eps_v_std"), ("eps_q std", "eps_q_std"),
           ("grad / head's (%)", "grad_ratio"))


def aggregate_diagnostics(runs: list[dict]) -> dict:
    """config -> term -> epoch -> figure -> [value per seed] (from each run's `diagnostics`,
    one dict of `ID/figure` per epoch)."""
    out: dict = {}
    for run in runs:
        for epoch, figures in enumerate(run.get("diagnostics") or [], start=1):
            for name, value in (figures or {}).items():
                term, figure = name.split("/", 1)
                if term == "head":
                    continue
                (out.setdefault(run["config"], {}).setdefault(term, {})
                 .setdefault(epoch, {}).setdefault(figure, []).append(value))
    return out


def _cell(values: list[float] | None, scale: float = 1.0) -> str:
    finite = [v * scale for v in values or [] if math.isfinite(v)]
    return f"{sum(finite) / len(finite):.3g}" if finite else ""


def diagnostics_lines(diag: dict, labels: dict[str, str]) -> list[str]:
    """The markdown section; empty when no run recorded diagnostics."""
    if not diag:
        return []
    lines = ["", "## VDI diagnostics (per epoch, mean over seeds)", "",
             "Recorded by `vdi train` on every 20th step (`diagnostics_every`): spreads are the "
             "batch std over the rms (0 = every sentence alike), `swap` the target's change on "
             "another video's frames, eps the cosines L_sd compares; the gradient is the "
             "weighted term's into the text tower, as a share of the head's. `warned`: seeds in "
             "which the collapse warning fired that epoch (a spread under 0.05 or the gradient "
             "under 0.1% of the head's at every diagnosed step).", "",
             "| method | term | epoch | " + " | ".join(c for c, _ in COLUMNS) + " | warned |",
             "|---|---|---|" + "---|" * (len(COLUMNS) + 1)]
    for config, terms in diag.items():
        for term, epochs in terms.items():
            for epoch, figures in sorted(epochs.items()):
                cells = [_cell(figures.get(key), 100.0 if key == "grad_ratio" else 1.0)
                         for _, key in COLUMNS]
                flags = figures.get("collapsed", [])
                lines.append(f"| {labels.get(config, config)} | {term} | {epoch} | "
                             + " | ".join(cells) + f" | {int(sum(flags))}/{len(flags)} |")
    return lines
