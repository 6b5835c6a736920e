"""Trivial baselines and per-group scores: what a number has to beat before it means anything.

- `most-frequent`: every query gets the training set's most frequent moment, as a fraction of
  the video. Training moments are snapped to the cells of an N x N grid (cell (i, j) covers
  [i / N, (j + 1) / N] of the video, i = floor(N start / duration), j = ceil(N end / duration)
  - 1); the most frequent cell wins (ties: the smallest (i, j)). With `by=FIELD` each group (e.g.
  each action class of the synthetic world) gets its own training set's most frequent cell: the
  prior of a model that knows the query's class and nothing of the video.
- `random`: a uniformly random window, the sorted pair of two uniform draws (seeded).
- `grouped_scores`: R@1 at an IoU threshold and mIoU per value of an annotation's extra field
  (synthetic-shapes' `actions`), to judge a model class by class against that class's prior.
  A dict-valued field (Charades-CG's `news`: {UPOS: [novel words]}) puts a query in one group
  per key (NOUN, VERB, ADJ novelty), an empty dict in group "-".
Torch-free; windows are in seconds, as `evaluate_windows` takes them.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vdi_cli.errors import VdiError
from vdi_cli.types import Annotation

BASELINES = ("most-frequent", "random")
NO_GROUP = "-"


def check_baseline(name: str) -> None:
    if name not in BASELINES:
        raise VdiError(f"unknown baseline '{name}'", hint=f"use one of: {', '.join(BASELINES)}")


def moment_cell(start: float, end: float, duration: float, n: int = 16) -> tuple[int, int]:
    """The (i, j) grid cell a moment snaps to (0 <= i <= j < n)."""
    if duration <= 0:
        return 0, n - 1
    s = min(max(start / duration, 0.0), 1.0)
    e = min(max(end / duration, 0.0), 1.0)
    i = min(int(math.floor(s * n)), n - 1)
    j = min(max(int(math.ceil(e * n)) - 1, i), n - 1)
    return i, j


def group_of(annotation: Annotation, by: str | None) -> str:
    """The first of `groups_of` (a most-frequent prior needs one cell per query)."""
    return groups_of(annotation, by)[0]


def groups_of(annotation: Annotation, by: str | None) -> list[str]:
    """The groups a query belongs to: its field's value, or each key of a dict-valued field."""
    if by is None:
        return [NO_GROUP]
    value = annotation.extra.get(by)
    if isinstance(value, dict):
        return sorted(str(k) for k in value) or [NO_GROUP]
    return [NO_GROUP if value is None else str(value)]


@dataclass
class MostFrequent:
    """The most frequent training cell, overall and per group."""

    n: int
    overall: tuple[int, int]
    per_group: dict[str, tuple[int, int]]

    def window(self, annotation: Annotation, by: str | None = None) -> list[float]:
        i, j = self.per_group.get(group_of(annotation, by), self.overall) if by else self.overall
        return [i / self.n * annotation.duration, (j + 1) / self.n * annotation.duration]


def _top(counter: Counter) -> tuple[int, int]:
    best = max(counter.values())
    return min(cell for cell, c in counter.items() if c == best)


def fit_most_frequent(train: Sequence[Annotation], n: int = 16, by: str | None = None
                      ) -> MostFrequent:
    if not train:
        raise VdiError("the training annotations hold no query",
                       hint="pass the training split's annotation file with --train")
    overall: Counter = Counter()
    groups: dict[str, Counter] = defaultdict(Counter)
    for a in train:
        cell = moment_cell(a.start, a.end, a.duration, n)
        overall[cell] += 1
        if by is not None:
            for g in groups_of(a, by):
                groups[g][cell] += 1
    return MostFrequent(n, _top(overall), {g: _top(c) for g, c in groups.items()})


def baseline_windows(name: str, test: Sequence[Annotation], train: Sequence[Annotation] = (),
                     *, by: str | None = None, n: int = 16, seed: int = 0
                     ) -> list[list[list[float]]]:
    """One ranked list (a single window) per test annotation."""
    check_baseline(name)
    if name == "most-frequent":
        model = fit_most_frequent(train, n, by)
        return [[model.window(a, by)] for a in test]
    import numpy as np  # "random"

    rng = np.random.default_rng(seed)
    draws = np.sort(rng.random((len(test), 2)), axis=1)
    return [[[float(lo) * a.duration, float(hi) * a.duration]]
            for a, (lo, hi) in zip(test, draws, strict=True)]


@dataclass
class GroupScore:
    group: str
    queries: int
    recall: float  # R@1 at the IoU threshold, percent
    miou: float  # percent


def grouped_scores(annotations: Sequence[Annotation],
                   windows: Sequence[Sequence[Sequence[float]] | None], by: str,
                   iou: float = 0.5, group_windows: Any = None) -> list[GroupScore]:
    """R@1,IoU=iou and mIoU (percent) per value of `annotation.extra[by]`, sorted by group:
    `evaluate_windows` on each group's queries, so the definitions are the overall metrics'."""
    from vdi_cli.metrics import MIOU, metric_name
    from vdi_cli.pipeline.evaluate import evaluate_windows

    if len(windows) != len(annotations):
        raise ValueError(f"{len(windows)} window lists for {len(annotations)} annotations")
    members: dict[str, list[int]] = defaultdict(list)
    for k, a in enumerate(annotations):
        for g in groups_of(a, by):
            members[g].append(k)
    out = []
    for g in sorted(members):
        rows = members[g]
        ws = [group_windows(g, annotations[k]) if group_windows else windows[k] for k in rows]
        values = evaluate_windows([annotations[k] for k in rows], ws,
                                  recalls=(1,), ious=(iou,)).values
        out.append(GroupScore(g, len(rows), 100.0 * values[metric_name(1, iou)],
                              100.0 * values[MIOU]))
    return out


def group_table(model: list[GroupScore], prior: list[GroupScore] | None = None,
                iou: float = 0.5) -> tuple[list[str], list[list[Any]]]:
    """Header and rows for printing: group, queries, R@1 (and prior, difference), mIoU."""
    name = f"R@1,IoU={iou:g}"
    header = ["group", "queries", name]
    priors = {p.group: p for p in prior or []}
    if prior is not None:
        header += ["prior", "above prior"]
    header.append("mIoU")
    rows = []
    for g in model:
        row: list[Any] = [g.group, g.queries, f"{g.recall:.2f}"]
        if prior is not None:
            p = priors.get(g.group)
            row += [f"{p.recall:.2f}", f"{g.recall - p.recall:+.2f}"] if p else ["", ""]
        row.append(f"{g.miou:.2f}")
        rows.append(row)
    return header, rows


def evaluate_baseline(
    name: str,
    annotations: str | Any,
    format_id: str,
    *,
    train: Sequence[Annotation] | None = None,
    by: str | None = None,
    seed: int = 0,
    n: int = 16,
    recalls: Sequence[int] = (1, 5),
    ious: Sequence[float] = (0.3, 0.5, 0.7),
    dataset_options: dict[str, Any] | None = None,
    split: str | None = None,
) -> tuple[Any, list[list[list[float]]], list[Annotation]]:
    """(EvalReport, windows, annotations) of a trivial baseline on an annotation file;
    `most-frequent` learns its moment from the `train` annotations, per `by` group when given."""
    from pathlib import Path

    from vdi_cli.datasets import load_dataset
    from vdi_cli.pipeline.evaluate import EvalReport, evaluate_windows

    check_baseline(name)
    if name == "most-frequent" and train is None:
        raise VdiError("the most-frequent baseline learns its moment from a training split",
                       hint="add --train TRAIN_ANNOTATIONS (same --dataset)")
    report = load_dataset(format_id, annotations, **(dataset_options or {}))
    windows = baseline_windows(name, report.annotations, train or (), by=by, n=n, seed=seed)
    metrics = evaluate_windows(report.annotations, windows, recalls, ious)
    out = EvalReport(metrics=metrics, split=split or Path(str(annotations)).stem,
                     num_predictions=len(windows), dataset=report.summary())
    return out, windows, list(report.annotations)


def prior_scores(test: Sequence[Annotation], train: Sequence[Annotation], by: str,
                 iou: float = 0.5, n: int = 16) -> list[GroupScore]:
    """Each group's own prior: its training queries' most frequent cell, scored on its test
    queries (a query in several groups gets each group's own cell there)."""
    model = fit_most_frequent(train, n, by)

    def window(group: str, a: Annotation) -> list[list[float]]:
        i, j = model.per_group.get(group, model.overall)
        return [[i / n * a.duration, (j + 1) / n * a.duration]]

    return grouped_scores(test, [None] * len(test), by, iou, group_windows=window)
