"""Model mode of `vdi eval`: a trained checkpoint on an annotated split of videos.

Features are extracted (or found in the cache) with the checkpoint's backbone and sampling, so
they always match training. `query_forms` evaluates with the full query Q, its static form Qs or
its dynamic form Qd (the paper's Fig. 3 analysis); Qs / Qd use the checkpoint's parser config.
Queries whose video cannot be read count as misses and are reported.

With `include_unannotated` (`--save-predictions`), the queries of a split without answers (the
QVHighlights test file) are decoded too: they get predictions, not scores. `write_submission`
writes them in the benchmark's submission shape (qid, query, vid, pred_relevant_windows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vdi_cli.errors import UsageError, VdiError, param
from vdi_cli.metrics import DEFAULT_IOUS, DEFAULT_RECALLS

SUBMISSION_WINDOWS = 10  # windows per query in a written predictions file (mAP reads 10)


@dataclass
class ModelEvaluation:
    form: str
    report: Any  # EvalReport; None when no query of the split has an answer
    annotations: list[Any]  # the split's Annotation rows (then its unannotated ones)
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
        raise UsageError(f"give exactly one of {param('checkpoint', 'PATH')} and "
                         f"{param('run', 'ID')}",
                         hint="`vdi runs list --command train` shows the training runs")
    if checkpoint is not None:
        return checkpoint
    from vdi_cli.store import get_run
    from vdi_cli.store.checkpoints import best_checkpoint

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
    suites: Sequence[str] = ("recall",),
    include_unannotated: bool = False,
) -> list[ModelEvaluation]:
    from vdi_cli.datasets import load_dataset
    from vdi_cli.metric_sets import compute_metrics
    from vdi_cli.model import load_model
    from vdi_cli.pipeline.evaluate import EvalReport
    from vdi_cli.pipeline.feature_source import FeatureSource
    from vdi_cli.pipeline.infer import predict
    from vdi_cli.pipeline.parse import parse_texts
    from vdi_cli.pipeline.train_data import group_by_video

    check_query_forms(query_forms)
    data = load_dataset(format_id, annotations, need_answers=not include_unannotated,
                        **(dataset_options or {}))
    rows = data.all_queries() if include_unannotated else list(data.annotations)
    scored = len(data.annotations)
    from vdi_cli.store.artifacts import recorded_sha256

    model, config = load_model(checkpoint, device=device,
                               sha256=recorded_sha256(db, checkpoint))
    source = FeatureSource(db, model.backbone, config["sampling"], patches=False)
    source.ensure([a.video_id for a in rows], video_dir, show_progress=show_progress)
    usable = [a for a in rows if a.video_id not in source.failed]
    parsed = None
    if any(f != "q" for f in query_forms):
        from vdi_cli.defaults import default_id

        parser = config.get("parser") or {"id": default_id("parser"), "options": {}}
        parsed = {q.text: q for q in parse_texts(sorted({a.query for a in usable}),
                                                 parser["id"], parser.get("options"),
                                                 db=db).queries}
    samples = group_by_video(usable, parsed)
    order = {id(a): i for i, a in enumerate(rows)}
    by_video: dict[str, list[Any]] = {}
    for a in usable:
        by_video.setdefault(a.video_id, []).append(a)
    sample_order = [a for s in samples for a in by_video[s.video_id]]
    top_k = max(max(recalls), 5)
    if include_unannotated or "qvhighlights" in suites:
        top_k = max(top_k, SUBMISSION_WINDOWS)
    results = []
    for form in query_forms:
        preds = predict(model, samples, source, batch_size=batch_size, query_form=form,
                        top_k=top_k)
        per_annotation: list[Any] = [None] * len(rows)
        for a, p in zip(sample_order, preds, strict=True):
            per_annotation[order[id(a)]] = p
        report = None
        if scored:
            answered, windows = data.annotations, per_annotation[:scored]
            metrics = compute_metrics(answered, windows, suites, recalls, ious)
            name = split or Path(annotations).stem
            missing = [a.query_id or f"{a.video_id} | {a.query}"
                       for a, w in zip(answered, windows, strict=True) if w is None]
            report = EvalReport(metrics=metrics, split=name if form == "q" else f"{name}/{form}",
                                num_predictions=sum(w is not None for w in windows),
                                missing=missing, dataset=data.summary(),
                                annotations=list(answered), windows=list(windows))
        results.append(ModelEvaluation(form, report, rows, per_annotation))
    return results


def submission_lines(annotations: Sequence[Any], predictions: Sequence[Any]) -> list[dict]:
    """The benchmark's submission shape, one dict per query: qid (its raw value where the format
    kept it), query, vid and pred_relevant_windows [[start, end, score], ...] best first."""
    return [
        {"qid": a.extra.get("qid", a.query_id), "query": a.query, "vid": a.video_id,
         "pred_relevant_windows": [[round(s, 4), round(e, 4), round(sc, 4)]
                                   for s, e, sc in (p or [])[:SUBMISSION_WINDOWS]]}
        for a, p in zip(annotations, predictions, strict=True)
    ]


def check_submission_path(path: str | Path) -> Path:
    """Refuse a --save-predictions path that cannot be written, before any model runs."""
    target = Path(path)
    if target.is_dir():
        raise VdiError(f"--save-predictions '{target}' is a folder",
                       hint="give a file name, e.g. test_submission.jsonl")
    if not target.parent.is_dir():
        raise VdiError(f"the folder of --save-predictions '{target}' does not exist",
                       hint="create it first, or give another path")
    return target


def write_submission(path: str | Path, annotations: Sequence[Any],
                     predictions: Sequence[Any]) -> int:
    """Write the predictions JSONL atomically (a temporary file beside it, then a rename):
    a failed write leaves no half file under the name. Returns the number of lines."""
    import json
    import os
    import tempfile

    target = check_submission_path(path)
    lines = submission_lines(annotations, predictions)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for line in lines:
                f.write(json.dumps(line) + "\n")
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise VdiError(f"cannot write the predictions file '{target}': {exc.strerror or exc}",
                       hint="check the folder, its permissions and the free space") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(lines)


def evaluation_moments(annotations: Sequence[Any], predictions: Sequence[Any]
                       ) -> list[tuple[str, str, int, float, float, float]]:
    """The rows `vdi_cli.store.predictions.store_predictions` writes: one (video, query, rank
    from 1, start, end, score) per predicted window of each annotated query."""
    return [
        (a.video_id, a.query, r + 1, s, e, sc)
        for a, p in zip(annotations, predictions, strict=True) if p
        for r, (s, e, sc) in enumerate(p)
    ]
