"""`vdi retrieve --plot FILE.png`: per (query, video), the score over time with the top moments
shaded, and the 2D score map (start x end) as a heatmap with the top moments marked.

matplotlib is imported here only (Agg backend, no display needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vdi_cli.errors import VdiError

MAX_ROWS = 8


def write_plot(path: str | Path, queries: Sequence[str], videos: Sequence[Any],
               head_id: str = "") -> tuple[Path, int]:
    """Draw the plot; returns (path, rows drawn). `videos` items carry .vid, .duration,
    .moments and .ranking (a VideoRanking built with keep_maps=True)."""
    path = Path(path)
    if not path.parent.exists():
        raise VdiError(f"folder '{path.parent}' for --plot does not exist",
                       hint="create it first, or write the plot elsewhere")
    try:
        import matplotlib
    except ImportError as exc:
        raise VdiError("--plot needs matplotlib",
                       hint="pip install -c constraints.txt 'vdi[plot]'") from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    pairs = [(qi, v) for qi in range(len(queries)) for v in videos]
    rows = pairs[:MAX_ROWS]
    fig, axes = plt.subplots(len(rows), 2, figsize=(13, 3.2 * len(rows)), squeeze=False,
                             gridspec_kw={"width_ratios": [2.2, 1]})
    try:
        for (qi, v), (left, right) in zip(rows, axes, strict=True):
            _timeline(left, queries[qi], v, qi, head_id)
            _heatmap(fig, right, v, qi)
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=90)
    except OSError as exc:
        raise VdiError(f"cannot write the plot '{path}': {exc}",
                       hint="check the path and its permissions") from exc
    finally:
        plt.close(fig)
    return path, len(rows)


def _timeline(ax: Any, query: str, v: Any, qi: int, head_id: str) -> None:
    r = v.ranking
    curve = r.timeline[qi]
    ax.plot(r.times, curve, color="tab:blue", lw=1.2, label="best covering score")
    colours = ["tab:red", "tab:orange", "tab:green", "tab:purple", "tab:brown"]
    finite = curve[np.isfinite(curve)]
    top = float(finite.max()) if finite.size else 1.0
    for rank, m in enumerate(v.moments[qi], 1):
        c = colours[(rank - 1) % len(colours)]
        ax.axvspan(m.start, m.end, color=c, alpha=max(0.12, 0.35 - 0.05 * rank), lw=0)
        ax.text((m.start + m.end) / 2, top, f"#{rank}", ha="center", va="bottom", fontsize=8,
                color=c)
    for s, _ in r.windows[1:]:
        ax.axvline(s, color="grey", lw=0.5, ls=":")
    ax.set_xlim(0, v.duration)
    ax.margins(y=0.15)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"score ({head_id})" if head_id else "score")
    ax.set_title(f"{v.vid}: \"{query}\"", fontsize=10)


def _heatmap(fig: Any, ax: Any, v: Any, qi: int) -> None:
    r = v.ranking
    grid = np.ma.masked_invalid(r.grid[qi])
    d = v.duration
    im = ax.imshow(grid, origin="lower", extent=(0, d, 0, d), aspect="auto", cmap="viridis",
                   interpolation="nearest")
    for rank, m in enumerate(v.moments[qi], 1):
        ax.plot(m.end, m.start, "o", mfc="none", mec="red", ms=7)
        ax.annotate(f"#{rank}", (m.end, m.start), color="red", fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("end (s)")
    ax.set_ylabel("start (s)")
    ax.set_title(f"2D score map ({grid.shape[0]}x{grid.shape[1]}, "
                 f"{r.grid_seconds:.1f} s bins)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
