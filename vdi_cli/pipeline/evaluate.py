"""Evaluation: ranked windows per annotated query -> the metrics of vdi_cli.metric_sets
(R@n,IoU=m and mIoU; QVHighlights' R1 and mAP).

Standalone mode (`vdi eval --predictions`): a JSONL file of predictions in the Moment-DETR /
QVHighlights shape, one query per line, windows already ranked:

    {"qid": 7, "pred_relevant_windows": [[start_s, end_s, score], ...]}
    {"vid": "3MSZA", "query": "person turns on the light.", "pred_relevant_windows": [...]}

Matching: a line with "qid" matches the annotation whose `query_id` is str(qid) (mmn-json:
"vid:index", charades-sta: the 0-based line index, qvhighlights: its qid); a line without
"qid" matches by (vid, query text, whitespace-normalised). Several annotations can share a
(vid, query) (Charades-STA repeats sentences): the lines with that key are matched to them in
file order, and a single line serves them all. Annotated queries without a prediction count as
misses and are reported; lines that match nothing are reported and ignored. Scores are kept
(QVHighlights' mAP ranks by them); a UTF-8 byte-order mark is fine.

Model mode (a checkpoint on a dataset split) builds on the same core: decode with the head's
`rank(...)`, then `evaluate_windows(annotations, windows)` and `record_metrics(...)`.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vdi_cli.errors import VdiError, param
from vdi_cli.metrics import DEFAULT_IOUS, DEFAULT_RECALLS, RetrievalMetrics
from vdi_cli.types import Annotation

MAX_LISTED = 10


@dataclass
class PredictionRecord:
    """One prediction line: its key (qid, or vid + query) and its ranked windows."""

    line: int
    windows: list[tuple[float, ...]]  # (start, end) or (start, end, score), ranked
    qid: str | None = None
    vid: str | None = None
    query: str | None = None


@dataclass
class EvalReport:
    """The outcome of one evaluation, with what could not be matched."""

    metrics: Any  # a MetricSet (or RetrievalMetrics): names(), values, percent(), num_queries
    split: str
    num_predictions: int = 0
    missing: list[str] = field(default_factory=list)  # annotated queries without a prediction
    unmatched: list[int] = field(default_factory=list)  # prediction lines matching nothing
    dataset: dict[str, Any] = field(default_factory=dict)
    annotations: list[Annotation] = field(default_factory=list, repr=False)
    windows: list[Any] = field(default_factory=list, repr=False)  # per annotation, None: miss

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "metrics": self.metrics.percent(),
            "queries": self.metrics.num_queries,
            "predictions": self.num_predictions,
            "missing": len(self.missing),
            "missing_examples": self.missing[:MAX_LISTED],
            "unmatched_predictions": len(self.unmatched),
            "unmatched_lines": self.unmatched[:MAX_LISTED],
            "dataset": self.dataset,
        }


def _normalise(text: str) -> str:
    return " ".join(str(text).split())


def _bad(path: Path, line: int, what: str) -> VdiError:
    return VdiError(
        f"{path}: line {line}: {what}",
        hint='each line is {"qid": ID, "pred_relevant_windows": [[start, end, score], ...]} '
        'or {"vid": ..., "query": ..., "pred_relevant_windows": ...}',
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def read_predictions(path: str | Path) -> list[PredictionRecord]:
    """Parse a predictions JSONL file; a malformed line is a VdiError naming its line number."""
    p = Path(path)
    if p.is_dir():
        raise VdiError(f"predictions file '{p}' is a folder, not a file",
                       hint=f"give {param('predictions')} the JSONL file inside it")
    try:
        text = p.read_text(encoding="utf-8-sig")  # a byte-order mark, as `parse --file`
    except FileNotFoundError as exc:
        raise VdiError(f"predictions file '{p}' does not exist",
                       hint=f"check the path given to {param('predictions')}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise VdiError(f"cannot read predictions file '{p}': {exc}",
                       hint="it must be a UTF-8 JSONL file") from exc
    records = []
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise _bad(p, n, f"not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise _bad(p, n, "not a JSON object")
        if "pred_relevant_windows" not in row:
            raise _bad(p, n, 'no "pred_relevant_windows"')
        windows = row["pred_relevant_windows"]
        if not isinstance(windows, list):
            raise _bad(p, n, '"pred_relevant_windows" is not a list')
        parsed = []
        for k, w in enumerate(windows):
            nums = [_number(v) for v in w] if isinstance(w, list) else []
            if len(nums) not in (2, 3) or any(v is None for v in nums):
                raise _bad(p, n, f"window {k} is not [start, end, score] with finite numbers")
            if nums[1] < nums[0]:
                raise _bad(p, n, f"window {k} ends before it starts ({nums[0]} > {nums[1]})")
            parsed.append(tuple(nums))  # type: ignore[arg-type]
        if row.get("qid") is not None:
            records.append(PredictionRecord(n, parsed, qid=str(row["qid"])))
        elif row.get("vid") is not None and row.get("query") is not None:
            records.append(PredictionRecord(n, parsed, vid=str(row["vid"]),
                                            query=_normalise(row["query"])))
        else:
            raise _bad(p, n, 'neither "qid" nor both "vid" and "query"')
    if not records:  # scoring nothing would report 0.00 everywhere and exit 0
        raise VdiError(f"predictions file '{p}' is empty",
                       hint="write one JSON line per query (`vdi retrieve --format jsonl`)")
    return records


def match_predictions(
    annotations: Sequence[Annotation], records: Sequence[PredictionRecord]
) -> tuple[list[list[tuple[float, ...]] | None], list[int]]:
    """Windows for each annotation (None: no prediction) and the lines that matched nothing."""
    by_qid: dict[str, int] = {}
    by_text: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, a in enumerate(annotations):
        if a.query_id:
            by_qid.setdefault(str(a.query_id), i)
        by_text[(a.video_id, _normalise(a.query))].append(i)
    out: list[list[tuple[float, ...]] | None] = [None] * len(annotations)
    seen_qid: dict[str, int] = {}
    text_lines: dict[tuple[str, str], list[PredictionRecord]] = defaultdict(list)
    unmatched: list[int] = []
    for r in records:
        if r.qid is not None:
            if r.qid in seen_qid:
                raise VdiError(
                    f"qid {r.qid} has two predictions (lines {seen_qid[r.qid]} and {r.line})",
                    hint="keep one prediction line per query",
                )
            seen_qid[r.qid] = r.line
            if r.qid in by_qid:
                out[by_qid[r.qid]] = r.windows
            else:
                unmatched.append(r.line)
        else:
            text_lines[(r.vid or "", r.query or "")].append(r)
    for key, lines in text_lines.items():
        targets = [i for i in by_text.get(key, []) if out[i] is None]
        if not targets:
            unmatched.extend(r.line for r in lines)
        elif len(lines) == 1:
            for i in targets:
                out[i] = lines[0].windows
        else:
            for i, r in zip(targets, lines, strict=False):
                out[i] = r.windows
            unmatched.extend(r.line for r in lines[len(targets):])
    return out, sorted(unmatched)


def evaluate_windows(
    annotations: Sequence[Annotation],
    windows: Sequence[Sequence[Sequence[float]] | None],
    recalls: Sequence[int] = DEFAULT_RECALLS,
    ious: Sequence[float] = DEFAULT_IOUS,
) -> RetrievalMetrics:
    """Metrics of ranked windows (seconds) against the annotations, one entry per annotation;
    None or [] is a miss. The ground truth is clipped to [0, duration]."""
    import numpy as np

    from vdi_cli.metrics import pad_windows, retrieval_metrics

    if len(windows) != len(annotations):
        raise ValueError(f"{len(windows)} window lists for {len(annotations)} annotations")
    if not annotations:
        raise VdiError("there are no annotated queries to evaluate",
                       hint="check the annotation file and --dataset")
    padded, counts = pad_windows([w or [] for w in windows], keep=max(recalls))
    gt = np.array([[a.start, a.end] for a in annotations], dtype=np.float64)
    durations = np.array([a.duration for a in annotations], dtype=np.float64)
    return retrieval_metrics(padded, counts, gt, durations, recalls=recalls, ious=ious)


def evaluate_predictions(
    predictions: str | Path,
    annotations: str | Path,
    format_id: str,
    *,
    recalls: Sequence[int] = DEFAULT_RECALLS,
    ious: Sequence[float] = DEFAULT_IOUS,
    dataset_options: dict[str, Any] | None = None,
    split: str | None = None,
    suites: Sequence[str] = ("recall",),
) -> EvalReport:
    """Standalone mode: a predictions JSONL file against an annotation file of `format_id`.
    A file without answers (a test split) is refused: there is nothing to score against."""
    from vdi_cli.datasets import load_dataset
    from vdi_cli.metric_sets import compute_metrics

    records = read_predictions(predictions)
    report = load_dataset(format_id, annotations, **(dataset_options or {}))
    windows, unmatched = match_predictions(report.annotations, records)
    metrics = compute_metrics(report.annotations, windows, suites, recalls, ious)
    missing = [
        a.query_id or f"{a.video_id} | {a.query}"
        for a, w in zip(report.annotations, windows, strict=True)
        if w is None
    ]
    return EvalReport(
        metrics=metrics,
        split=split or Path(annotations).stem,
        num_predictions=len(records),
        missing=missing,
        unmatched=unmatched,
        dataset=report.summary(),
        annotations=list(report.annotations),
        windows=list(windows),
    )


def record_metrics(
    db: Any, run_id: int, metrics: Any, split: str, epoch: int | None = None
) -> None:
    """One `metrics` row per metric; values stored x100, as printed and as papers report them."""
    from vdi_cli.store.predictions import insert_metrics

    insert_metrics(db, run_id, split, {n: metrics.values[n] * 100.0 for n in metrics.names()},
                   epoch)
