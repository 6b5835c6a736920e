"""Model mode of `vdi eval`: a trained checkpoint on an annotated split of videos.

Features are extracted (or found in the cache) with the checkpoint's backbone and sampling, so
they always match training. `query_forms` evaluates with the full query Q, its static form Qs or
its dynamic form Qd (the paper's Fig. 3 analysis); Qs / Qd use the checkpoint's parser config.
Queries whose video cannot be read count as misses and are reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vdi_cli.errors import UsageError, VdiError
from vdi_cli.metrics import DEFAULT_IOUS, DEFAULT_RECALLS


@dataclass
class ModelEvaluation:
    form: str
    report: Any  # EvalReport
    annotations: list[Any]  # the split's Annotation rows
    predictions: list[list[tuple[float, float, float]] | None]  # per annotation


def check_query_forms(forms: Sequence[str]) -> None:
    from vdi_cli.pipeline.infer import QUERY_FORMS

    if not forms:
        raise VdiError("no query form given", hint="use q, static, dynamic or a comma list")
    for form in forms:
        if form not in QUERY_FORMS:
            raise VdiError(f"unknown query form '{form}'", hint="use q, static or dynamic")


def resolve_checkpoint(db: Any, checkpoint: str | None, run_id: int | None) -> str:
    if (checkpoint is None) == (run_id is None):
        raise UsageError("give exactly one of --checkpoint PATH and --run ID",
                       hint="`vdi runs list --command train` shows the training runs")
    if checkpoint is not None:
        return checkpoint
    from vdi_cli.pipeline.train_run import best_checkpoint
    from vdi_cli.store import get_run

    if get_run(db, run_id)["command"] != "train":  # type: ignore[arg-type]
        raise VdiError(f"run {run_id} is not a training run",
                       hint="`vdi runs list --command train` shows the training runs")
    return best_checkpoint(db, run_id)["path"]  # type: ignore[arg-type]


def evaluate_checkpoint(
    db: Any,
    checkpoint: str | Path,
    annotations: str | Path,
    format_id: str,
    video_dir: str | Path,
    *,
    query_forms: Sequence[str] = ("q",),
    dataset_options: dict[str, Any] | None = None,
    recalls: Sequence[int] = DEFAULT_RECALLS,
    ious: Sequence[float] = DEFAULT_IOUS,
    device: str = "cpu",
    batch_size: int = 32,
    split: str | None = None,
    show_progress: bool = True,
) -> list[ModelEvaluation]:
    from vdi_cli.datasets import load_dataset
    from vdi_cli.model import load_model
    from vdi_cli.pipeline.evaluate import EvalReport, evaluate_windows
    from vdi_cli.pipeline.feature_source import FeatureSource
    from vdi_cli.pipeline.infer import predict
    from vdi_cli.pipeline.parse import parse_texts
    from vdi_cli.pipeline.train_data import group_by_video

    check_query_forms(query_forms)
    data = load_dataset(format_id, annotations, **(dataset_options or {}))
    from vdi_cli.store.artifacts import recorded_sha256

    model, config = load_model(checkpoint, device=device,
                               sha256=recorded_sha256(db, checkpoint))
    source = FeatureSource(db, model.backbone, config["sampling"], patches=False)
    source.ensure([a.video_id for a in data.annotations], video_dir, show_progress=show_progress)
    usable = [a for a in data.annotations if a.video_id not in source.failed]
    parsed = None
    if any(f != "q" for f in query_forms):
        parser = config.get("parser") or {"id": "spacy", "options": {}}
        parsed = {q.text: q for q in parse_texts(sorted({a.query for a in usable}),
                                                 parser["id"], parser.get("options"),
                                                 db=db).queries}
    samples = group_by_video(usable, parsed)
    order = {id(a): i for i, a in enumerate(data.annotations)}
    by_video: dict[str, list[Any]] = {}
    for a in usable:
        by_video.setdefault(a.video_id, []).append(a)
    sample_order = [a for s in samples for a in by_video[s.video_id]]
    results = []
    for form in query_forms:
        preds = predict(model, samples, source, batch_size=batch_size, query_form=form,
                        top_k=max(max(recalls), 5))
        per_annotation: list[Any] = [None] * len(data.annotations)
        for a, p in zip(sample_order, preds, strict=True):
            per_annotation[order[id(a)]] = p
        windows = [[(s, e) for s, e, _ in p] if p is not None else None for p in per_annotation]
        metrics = evaluate_windows(data.annotations, windows, recalls, ious)
        name = split or Path(annotations).stem
        missing = [a.query_id or f"{a.video_id} | {a.query}"
                   for a, w in zip(data.annotations, windows, strict=True) if w is None]
        report = EvalReport(metrics=metrics, split=name if form == "q" else f"{name}/{form}",
                            num_predictions=sum(w is not None for w in windows),
                            missing=missing, dataset=data.summary())
        results.append(ModelEvaluation(form, report, data.annotations, per_annotation))
    return results


def store_predictions(db: Any, run_id: int, annotations: Sequence[Any],
                      predictions: Sequence[Any]) -> int:
    """Rows of the `predictions` table (rank from 1)."""
    rows = [
        {"run_id": run_id, "video": a.video_id, "query": a.query, "rank": r + 1,
         "start_s": s, "end_s": e, "score": sc}
        for a, p in zip(annotations, predictions, strict=True) if p
        for r, (s, e, sc) in enumerate(p)
    ]
    db["predictions"].insert_all(rows)
    return len(rows)
