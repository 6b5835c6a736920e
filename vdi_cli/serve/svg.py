"""Line plots as inline SVG, drawn on the server: the runs page needs per-epoch curves and
nothing here may come from a CDN, so a few polylines beat shipping a plotting library."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#17becf")


def line_plot(series: dict[str, Sequence[tuple[float, float]]], *, title: str = "",
              width: int = 520, height: int = 220, xlabel: str = "epoch") -> str:
    """An SVG with one polyline (and dots) per named series of (x, y) points; non-finite
    values are left out. Axis ranges cover every series; ticks at min and max."""
    points = [(x, y) for pts in series.values() for x, y in pts
              if math.isfinite(x) and math.isfinite(y)]
    left, right, top, bottom = 56, 130, 24, 34
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{escape(title)}">',
             f'<text x="{left}" y="15" class="plot-title">{escape(title)}</text>']
    if not points:
        parts.append(f'<text x="{left}" y="{height // 2}">no values</text></svg>')
        return "".join(parts)
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    x1 = x1 if x1 > x0 else x0 + 1
    y1 = y1 if y1 > y0 else y0 + (abs(y0) or 1) * 0.1
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * ph

    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="plot-frame"/>')
    for y in (y0, y1):
        parts.append(f'<text x="{left - 4}" y="{sy(y) + 4:.1f}" text-anchor="end" '
                     f'class="tick">{y:.4g}</text>')
    for x in (x0, x1):
        parts.append(f'<text x="{sx(x):.1f}" y="{top + ph + 14}" text-anchor="middle" '
                     f'class="tick">{x:g}</text>')
    parts.append(f'<text x="{left + pw / 2:.1f}" y="{height - 4}" text-anchor="middle" '
                 f'class="tick">{escape(xlabel)}</text>')
    for k, (name, pts) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        good = [(sx(x), sy(y)) for x, y in pts if math.isfinite(x) and math.isfinite(y)]
        coords = " ".join(f"{a:.1f},{b:.1f}" for a, b in good)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" '
                     f'points="{coords}"><title>{escape(name)}</title></polyline>')
        parts += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.2" fill="{colour}"/>'
                  for a, b in good]
        ly = top + 12 + 14 * k
        parts.append(f'<rect x="{left + pw + 8}" y="{ly - 8}" width="10" height="3" '
                     f'fill="{colour}"/><text x="{left + pw + 22}" y="{ly}" '
                     f'class="legend">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def window_strip(duration: float, gt: Sequence[float], predictions: Sequence[Sequence[float]],
                 *, width: int = 360, height: int = 40) -> str:
    """One query on its video's timeline: the ground truth (green, top half) and the top
    predictions (red for #1, orange for the rest, bottom half), in seconds -> pixels."""
    def x(t: float) -> float:
        return max(0.0, min(width, t / duration * width)) if duration > 0 else 0.0

    half = height / 2
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}">',
             f'<rect x="0" y="0" width="{width}" height="{height}" class="track"/>',
             f'<rect x="{x(gt[0]):.1f}" y="0" width="{max(1.0, x(gt[1]) - x(gt[0])):.1f}" '
             f'height="{half:.0f}" class="window gt"><title>ground truth {gt[0]:g}-{gt[1]:g} s'
             '</title></rect>']
    for rank, p in reversed(list(enumerate(predictions, 1))):
        cls = "pred" if rank == 1 else "other"
        parts.append(f'<rect x="{x(p[0]):.1f}" y="{half:.0f}" '
                     f'width="{max(1.0, x(p[1]) - x(p[0])):.1f}" height="{half:.0f}" '
                     f'class="window {cls}"><title>#{rank} {p[0]:g}-{p[1]:g} s</title></rect>')
    parts.append("</svg>")
    return "".join(parts)
