"""`vdi eval`: the metrics of ranked predictions (or of a trained model) against an annotation
file: R@n,IoU=m and mIoU, or QVHighlights' own (`--metrics`, default: the format's own); with
`--save-predictions` a model also writes a split's predictions in the submission shape, which
is how a split without answers (QVHighlights test) gets a predictions file."""

from __future__ import annotations

import json
import sys

import typer

from vdi_cli.errors import UsageError, VdiError
from vdi_cli.output import info, print_json, print_table, shows_progress, warn


def _numbers(text: str, kind: type, what: str) -> tuple:
    try:
        values = tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise VdiError(f"{what} '{text}' is not a comma-separated list of numbers",
                       hint=f"e.g. {'--recall 1,5' if kind is int else '--iou 0.3,0.5,0.7'}"
                       ) from exc
    if not values:
        raise VdiError(f"{what} is empty", hint="give at least one value")
    if kind is int and min(values) < 1:
        raise VdiError(f"{what} values must be >= 1, got {text}", hint="e.g. --recall 1,5")
    if kind is float and not all(0 < v <= 1 for v in values):
        raise VdiError(f"{what} values must be in (0, 1], got {text}", hint="e.g. --iou 0.5,0.7")
    return values


def eval_mode(predictions: str | None, checkpoint: str | None, run_id: int | None,
              baseline: str | None, save_predictions: str | None = None) -> str:
    """The one rule of `vdi eval`: what is scored is named by exactly one of --predictions FILE
    ("predictions"), --checkpoint PATH or --run ID ("model") and --baseline NAME ("baseline");
    any other combination is a usage error that says which flags to drop."""
    model = checkpoint is not None or run_id is not None
    given = [name for name, on in (("--predictions", predictions is not None),
                                   ("--checkpoint/--run", model),
                                   ("--baseline", baseline is not None)) if on]
    if not given:
        raise UsageError("nothing to evaluate",
                         hint="give --predictions FILE, or --checkpoint PATH / --run ID with "
                         "--video-dir, or --baseline NAME")
    if baseline is not None and len(given) > 1:
        raise UsageError("--baseline is a mode of its own",
                         hint="drop --predictions / --checkpoint / --run")
    if len(given) > 1:
        raise UsageError("--predictions and --checkpoint/--run are two modes: pick one",
                         hint="drop --predictions to evaluate the model")
    if checkpoint is not None and run_id is not None:
        raise UsageError("give exactly one of --checkpoint PATH and --run ID",
                         hint="--run ID evaluates that training run's best checkpoint")
    mode = given[0].lstrip("-").split("/")[0]
    mode = {"checkpoint": "model"}.get(mode, mode)
    if save_predictions is not None and mode != "model":
        raise UsageError("--save-predictions writes a model's predictions",
                         hint="use it with --checkpoint PATH or --run ID and --video-dir")
    return mode


# options that only one mode reads: given in another mode they are ignored, with a warning
_MODE_ONLY = {"video_dir": ("--video-dir", "model"), "query_form": ("--query-form", "model"),
              "batch_size": ("--batch-size", "model"), "seed": ("--seed", "baseline")}


def _warn_ignored(ctx: typer.Context, mode: str) -> None:
    for param, (flag, wanted) in _MODE_ONLY.items():
        source = ctx.get_parameter_source(param)
        if mode != wanted and source is not None and source.name not in ("DEFAULT",
                                                                         "DEFAULT_MAP"):
            warn(f"{flag} is read only when evaluating a {wanted}; ignored with "
                 f"{'--predictions' if mode == 'predictions' else '--' + mode}")


def eval_command(
    ctx: typer.Context,
    predictions: str = typer.Option(
        None, "--predictions", help="JSONL, one query per line: qid (or vid + query) and "
        "pred_relevant_windows [[start, end, score], ...], best first."),
    checkpoint: str = typer.Option(None, "--checkpoint", "-c", help="Evaluate this trained "
                                   "checkpoint folder on the annotated videos."),
    run_id: int = typer.Option(None, "--run", help="Evaluate the best checkpoint of this "
                               "training run."),
    video_dir: str = typer.Option(None, "--video-dir", help="Videos of the split (model mode)."),
    query_form: str = typer.Option("q", "--query-form", help="Model mode: q, static, dynamic "
                                   "or a comma list (the paper's Fig. 3: q,static,dynamic)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Videos per forward."),
    annotations: str = typer.Option(..., "--annotations", help="Annotation file."),
    format_id: str = typer.Option(
        ..., "--dataset", help="Annotation format (`vdi datasets` lists them)."),
    option: list[str] = typer.Option(
        [], "--dataset-option", help="Annotation format option key=value, e.g. "
        "--dataset-option durations=FILE.csv."),
    recall: str = typer.Option("1,5", "--recall", help="Comma-separated n of R@n."),
    iou: str = typer.Option("0.3,0.5,0.7", "--iou", help="Comma-separated IoU thresholds m."),
    split: str = typer.Option(None, "--split", help="Split name stored with the metrics "
                              "(default: the annotation file's name)."),
    baseline: str = typer.Option(
        None, "--baseline", help="Score a trivial baseline instead: most-frequent (the "
        "training split's most frequent moment; needs --train) or random."),
    train: str = typer.Option(None, "--train", help="Training annotations (same --dataset): "
                              "the most-frequent baseline's moments, and with --by each "
                              "group's prior beside a model's score."),
    by: str = typer.Option(None, "--by", help="Also score R@1 and mIoU per value of this "
                           "per-query annotation field, e.g. actions (the synthetic shapes "
                           "world's); a dict-valued field (Charades-CG's news) groups by its "
                           "keys."),
    metrics: str = typer.Option(
        None, "--metrics", help="recall (R@n,IoU=m and mIoU), qvhighlights (R1@0.5/0.7 against "
        "the best ground-truth window, mAP, short/middle/long) or both, comma-separated "
        "(default: the format's own: qvhighlights for qvhighlights, recall otherwise)."),
    save_predictions: str = typer.Option(
        None, "--save-predictions", help="Model mode: also write every query's predictions, "
        "scored or not, as JSONL (qid, query, vid, pred_relevant_windows): the submission "
        "file of a split without answers."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random baseline."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Score ranked predictions (--predictions) or a trained model (--checkpoint / --run):
    R@n,IoU=m (a hit when any of the top n has IoU >= m) and mIoU (mean IoU of the top-1
    window), x100. Queries without a prediction count as misses.

    One rule picks what is scored: exactly one of --predictions FILE (a predictions file),
    --checkpoint PATH or --run ID (a model, on the videos of --video-dir) and --baseline NAME
    (a trivial baseline). Two of them together is an error; --video-dir, --query-form,
    --batch-size and --save-predictions belong to a model, --seed to the random baseline."""
    from vdi_cli.checks import check_component
    from vdi_cli.commands._flags import run_context  # library errors in CLI words
    from vdi_cli.config import parse_overrides
    from vdi_cli.metric_sets import parse_suites
    from vdi_cli.pipeline.evaluate import evaluate_predictions, record_metrics
    from vdi_cli.settings import open_store

    recalls = _numbers(recall, int, "--recall")
    ious = _numbers(iou, float, "--iou")
    options = parse_overrides(option)
    check_component("dataset", format_id, options)  # id and -o keys, before any file is read
    suites = parse_suites(metrics, format_id)
    mode = eval_mode(predictions, checkpoint, run_id, baseline, save_predictions)
    _warn_ignored(ctx, mode)
    if mode == "baseline":
        _eval_baseline(baseline, annotations, format_id, train, by, seed, options, recalls,
                       ious, split, json_out, suites)
        return
    if mode == "model":
        _eval_model(checkpoint, run_id, annotations, format_id, video_dir, options, query_form,
                    recalls, ious, split, batch_size, json_out, by, train, suites,
                    save_predictions)
        return
    config = {"mode": "predictions", "predictions": predictions, "annotations": annotations,
              "format": format_id, "options": options, "recalls": list(recalls),
              "ious": list(ious), "split": split, "metrics": list(suites), "by": by}
    db = open_store()
    with run_context(db, "eval", config, sys.argv[1:]) as run:
        report = evaluate_predictions(predictions, annotations, format_id, recalls=recalls,
                                      ious=ious, dataset_options=options, split=split,
                                      suites=suites)
        groups = _groups(report.annotations, report.windows, by,
                         _train_annotations(train, format_id, options) if by else None,
                         _group_iou(ious))
        record_metrics(db, run.id, report.metrics, report.split)
        run.summary.update(report.to_dict())
        if groups is not None:
            run.summary["groups"] = groups["groups"]
    _warn_first_window(report.annotations, suites)
    summary = report.to_dict()
    info(f"run {run.id}: {summary['queries']} annotated queries, {summary['predictions']} "
         f"prediction lines, split '{report.split}'")
    for message in report.dataset.get("messages", []):
        info(f"annotations: {message}")
    if report.missing:
        shown = ", ".join(report.missing[:5]) + (", ..." if len(report.missing) > 5 else "")
        warn(f"{len(report.missing)} annotated queries have no prediction and count as "
             f"misses: {shown}")
    if report.unmatched:
        shown = ", ".join(str(n) for n in report.unmatched[:5])
        warn(f"{len(report.unmatched)} prediction lines match no annotated query (ignored): "
             f"line {shown}{', ...' if len(report.unmatched) > 5 else ''}")
    if json_out:
        print_json({"run_id": run.id, **summary,
                    "groups": groups["groups"] if groups else None,
                    "prior": groups["prior"] if groups else None})
        return
    print_metrics([("", report.metrics)])
    _print_groups(groups)


def _warn_first_window(annotations: list, suites: tuple) -> None:
    from vdi_cli.metric_sets import first_window_warning

    line = first_window_warning(annotations, suites)
    if line:
        warn(line)


def _train_annotations(train: str | None, format_id: str, options: dict) -> list | None:
    """The --train split's annotations, read once for the baseline and the priors."""
    if train is None:
        return None
    from vdi_cli.datasets import load_dataset

    return list(load_dataset(format_id, train, **options).annotations)


def _groups(annotations: list, windows: list, by: str | None, train_anns: list | None,
            iou: float) -> dict | None:
    """Per-group scores (and each group's own prior when training annotations are given)."""
    if by is None:
        return None
    from dataclasses import asdict

    from vdi_cli.baselines import group_table, grouped_scores, prior_scores

    if not any(by in a.extra for a in annotations):
        raise VdiError(f"no annotated query has a '{by}' field",
                       hint="--by takes a per-query field of the annotation file, e.g. actions")
    scores = grouped_scores(annotations, windows, by, iou)
    prior = prior_scores(annotations, train_anns, by, iou) if train_anns is not None else None
    header, rows = group_table(scores, prior, iou)
    return {"by": by, "iou": iou, "header": header, "rows": rows,
            "groups": [asdict(g) for g in scores],
            "prior": [asdict(p) for p in prior] if prior is not None else None}


def _print_groups(groups: dict | None) -> None:
    if groups is not None:
        sys.stdout.write(f"\nper {groups['by']}:\n")
        print_table(groups["rows"], groups["header"])


def _group_iou(ious: tuple) -> float:
    return 0.5 if 0.5 in ious else ious[0]


def _eval_baseline(name: str, annotations: str, format_id: str, train: str | None,
                   by: str | None, seed: int, options: dict, recalls: tuple, ious: tuple,
                   split: str | None, json_out: bool, suites: tuple = ("recall",)) -> None:
    from vdi_cli.baselines import evaluate_baseline
    from vdi_cli.commands._flags import run_context  # library errors in CLI words
    from vdi_cli.metric_sets import compute_metrics
    from vdi_cli.pipeline.evaluate import record_metrics
    from vdi_cli.settings import open_store

    config = {"mode": "baseline", "baseline": name, "annotations": annotations,
              "format": format_id, "train": train, "by": by, "seed": seed, "options": options,
              "recalls": list(recalls), "ious": list(ious), "split": split}
    db = open_store()
    with run_context(db, "eval", config, sys.argv[1:]) as run:
        train_anns = _train_annotations(train, format_id, options)
        report, windows, anns = evaluate_baseline(
            name, annotations, format_id, train=train_anns, seed=seed, recalls=recalls,
            ious=ious, dataset_options=options, split=split)
        report.metrics = compute_metrics(anns, windows, suites, recalls, ious)
        groups = _groups(anns, windows, by, train_anns, _group_iou(ious))
        record_metrics(db, run.id, report.metrics, report.split)
        run.summary.update(report.to_dict())
        if groups is not None:
            run.summary["groups"] = groups["groups"]
    if json_out:
        print_json({"run_id": run.id, "baseline": name, **report.to_dict(),
                    "groups": groups["groups"] if groups else None,
                    "prior": groups["prior"] if groups else None})
        return
    _warn_first_window(anns, suites)
    print_metrics([(name, report.metrics)], label="baseline")
    _print_groups(groups)


def _eval_model(checkpoint: str | None, run_id: int | None, annotations: str, format_id: str,
                video_dir: str | None, options: dict, query_form: str, recalls: tuple,
                ious: tuple, split: str | None, batch_size: int, json_out: bool,
                by: str | None = None, train: str | None = None,
                suites: tuple = ("recall",), save: str | None = None) -> None:
    from vdi_cli.commands._flags import run_context  # library errors in CLI words
    from vdi_cli.pipeline.evaluate import record_metrics
    from vdi_cli.pipeline.evaluate_model import (
        check_query_forms,
        check_submission_path,
        evaluate_checkpoint,
        evaluation_moments,
        resolve_checkpoint,
        write_submission,
    )
    from vdi_cli.settings import get_settings, open_store
    from vdi_cli.store.predictions import store_predictions

    if not video_dir:
        raise UsageError("model mode needs the videos", hint="add --video-dir DIR")
    forms = [f.strip() for f in query_form.split(",") if f.strip()]
    check_query_forms(forms)
    from vdi_cli.backbones import check_device

    check_device(get_settings().device)  # before the checkpoint's model loads
    db = open_store()
    config = {"mode": "model", "checkpoint": checkpoint, "run": run_id,
              "annotations": annotations, "format": format_id, "video_dir": video_dir,
              "options": options, "query_forms": forms, "recalls": list(recalls),
              "ious": list(ious), "split": split, "metrics": list(suites),
              "save_predictions": save}
    with run_context(db, "eval", config, sys.argv[1:]) as run:
        if save is not None:
            check_submission_path(save)  # before the model runs, not after
        path = resolve_checkpoint(db, checkpoint, run_id)
        run.update(config=json.dumps({**config, "checkpoint": path}))
        results = evaluate_checkpoint(
            db, path, annotations, format_id, video_dir, query_forms=forms,
            dataset_options=options, recalls=recalls, ious=ious,
            device=get_settings().device, batch_size=batch_size, split=split,
            show_progress=shows_progress(json_out), suites=suites,
            include_unannotated=save is not None)
        scored = [r for r in results if r.report is not None]
        for r in scored:
            record_metrics(db, run.id, r.report.metrics, r.report.split)
        first = results[0]
        stored = store_predictions(db, run.id,
                                   evaluation_moments(first.annotations, first.predictions))
        run.summary.update({r.form: r.report.to_dict() for r in scored})
        groups = None
        if scored:
            groups = _groups(first.report.annotations, first.report.windows, by,
                             _train_annotations(train, format_id, options) if by else None,
                             _group_iou(ious))
        if groups is not None:
            run.summary["groups"] = groups["groups"]
        run.summary["predictions_stored"] = stored
        written = None
        if save is not None:
            written = write_submission(save, first.annotations, first.predictions)
            run.summary["predictions_file"] = {"path": save, "lines": written,
                                               "form": first.form}
    unreadable = sum(p is None for p in first.predictions)
    if unreadable:
        warn(f"{unreadable} queries have no readable video"
             + (" and count as misses" if scored else ""))
    if scored:
        _warn_first_window(first.report.annotations, suites)
    if written is not None:
        info(f"wrote {written} predictions ({first.form} queries) to {save}"
             + ("" if scored else ": no query has an answer, so nothing was scored"))
    if json_out:
        print_json({"run_id": run.id, "checkpoint": path,
                    "forms": {r.form: r.report.to_dict() for r in scored},
                    "predictions_file": run.summary.get("predictions_file"),
                    "groups": groups["groups"] if groups else None,
                    "prior": groups["prior"] if groups else None})
        return
    if scored:
        print_metrics([(r.form, r.report.metrics) for r in scored], label="query")
    else:
        print_table([[save, written]], ["predictions file", "queries"])
    _print_groups(groups)


def print_metrics(labelled: list, label: str | None = None) -> None:
    """One table per suite: R@n / mIoU as one row per label; QVHighlights one row per label and
    length range."""
    head = [label] if label else []
    for k, suite in enumerate(labelled[0][1].parts):
        if k:
            sys.stdout.write("\n")
        if suite == "qvhighlights":
            from vdi_cli.metrics_qvh import COLUMNS

            rows = [([lab] if label else []) + row
                    for lab, m in labelled for row in m.parts[suite].rows()]
            print_table(rows, head + ["range", "queries", *COLUMNS])
            continue
        names = labelled[0][1].parts[suite].names()
        print_table([([lab] if label else []) + [f"{m.parts[suite].percent()[n]:.2f}"
                                                  for n in names] for lab, m in labelled],
                    head + names)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
