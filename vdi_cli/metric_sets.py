"""Which metrics `vdi eval` computes: the `--metrics` choice and its per-format default.

Two suites: `recall` (R@n,IoU=m and mIoU, vdi_cli.metrics: MMN's definitions, what Charades-STA,
Charades-CG, ActivityNet and TACoS papers report) and `qvhighlights` (R1 against the best of a
query's windows, detection mAP, short / middle / long: vdi_cli.metrics_qvh, what QVHighlights
papers report). A format names its own default (`metrics=` on its registration, QVHighlights:
`qvhighlights`); the others get `recall`. A MetricSet holds what was computed and offers the
interface the rest of vdi uses for one metrics object (names, values, percent, num_queries), so
storing and printing do not care which suites ran.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vdi_cli.errors import VdiError
from vdi_cli.metrics import DEFAULT_IOUS, DEFAULT_RECALLS

SUITES: tuple[str, ...] = ("recall", "qvhighlights")


@dataclass
class MetricSet:
    """The metrics of one evaluation, suite by suite (in the order asked for)."""

    parts: dict[str, Any] = field(default_factory=dict)  # suite -> its metrics object
    num_queries: int = 0

    def names(self) -> list[str]:
        return [n for part in self.parts.values() for n in part.names()]

    @property
    def values(self) -> dict[str, float]:
        return {n: v for part in self.parts.values() for n, v in part.values.items()}

    def percent(self) -> dict[str, float]:
        return {n: v for part in self.parts.values() for n, v in part.percent().items()}


def parse_suites(text: str | None, format_id: str) -> tuple[str, ...]:
    """`--metrics recall,qvhighlights` -> the suites; None -> the format's default."""
    if text is None:
        return default_suites(format_id)
    suites = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    unknown = [s for s in suites if s not in SUITES]
    if unknown or not suites:
        raise VdiError(f"unknown --metrics '{text}'",
                       hint="use recall (R@n / mIoU), qvhighlights (R1 and mAP as the "
                       "QVHighlights evaluation computes them) or both: recall,qvhighlights")
    return suites


def default_suites(format_id: str) -> tuple[str, ...]:
    """The dataset format's own metrics (`metrics=` on its registration), else recall."""
    from vdi_cli.registry import get_component

    try:
        named = get_component("dataset", format_id).extra.get("metrics")
    except VdiError:
        named = None
    return (named,) if named in SUITES else ("recall",)


def ground_truth_windows(annotation: Any) -> list[list[float]]:
    """All of a query's ground-truth windows (QVHighlights keeps them in extra['windows'])."""
    windows = annotation.extra.get("windows") if annotation.extra else None
    return [list(w[:2]) for w in windows] if windows else [[annotation.start, annotation.end]]


def several_windows(annotations: Sequence[Any]) -> int:
    """How many queries have more than one ground-truth window."""
    return sum(len(ground_truth_windows(a)) > 1 for a in annotations)


def compute_metrics(
    annotations: Sequence[Any],
    predictions: Sequence[Sequence[Sequence[float]] | None],
    suites: Sequence[str] = ("recall",),
    recalls: Sequence[int] = DEFAULT_RECALLS,
    ious: Sequence[float] = DEFAULT_IOUS,
) -> MetricSet:
    """Every asked suite over the annotated queries; `predictions` per annotation are ranked
    [start, end(, score)] windows, None or [] a miss."""
    from vdi_cli.metrics_qvh import qvhighlights_metrics
    from vdi_cli.pipeline.evaluate import evaluate_windows

    out = MetricSet(num_queries=len(annotations))
    for suite in suites:
        if suite == "recall":
            out.parts[suite] = evaluate_windows(
                annotations, [[w[:2] for w in p] if p else None for p in predictions],
                recalls, ious)
        elif suite == "qvhighlights":
            if not annotations:
                raise VdiError("there are no annotated queries to evaluate",
                               hint="check the annotation file and --dataset")
            out.parts[suite] = qvhighlights_metrics(
                [ground_truth_windows(a) for a in annotations], predictions)
        else:
            raise VdiError(f"unknown metrics suite '{suite}'", hint=f"use {', '.join(SUITES)}")
    return out


def first_window_warning(annotations: Sequence[Any], suites: Sequence[str]) -> str | None:
    """The stderr line when a suite that looks at one ground-truth window meets several."""
    if "recall" not in suites:
        return None
    n = several_windows(annotations)
    if not n:
        return None
    return (f"{n} of {len(annotations)} queries have several ground-truth windows: R@n and mIoU "
            "score the first window only (--metrics qvhighlights scores the top window against "
            "the best-matching one, as the QVHighlights evaluation does)")
