"""The HTML pages (Jinja2 templates shipped in `templates/`): search, runs, one run."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from vdi_cli.errors import VdiError
from vdi_cli.serve.app import HERE

_templates: Any = None
# the grounding head's own loss terms; every other `loss/*` is an objective (VDI's
# visual-context, spatial-dynamic) or one of its diagnostics
HEAD_TERMS = ("iou", "vid", "sent", "contrastive", "contrastive_weight")


def templates() -> Any:
    global _templates
    if _templates is None:
        from starlette.templating import Jinja2Templates

        _templates = Jinja2Templates(directory=str(HERE / "templates"))
    return _templates


def _page(request: Any, name: str, status: int = 200, **context: Any) -> Any:
    return templates().TemplateResponse(request, name, context, status_code=status)


def _not_found(request: Any, exc: VdiError) -> Any:
    return _page(request, "error.html", 404, message=exc.message, hint=exc.hint)


def search_page(request: Any) -> Any:
    store = request.app.state.store
    names = store.index_names()
    try:
        chosen = store.index_name(None) if names else None
    except VdiError:
        chosen = names[0]
    return _page(request, "search.html", indexes=names, chosen=chosen)


def runs_page(request: Any) -> Any:
    from vdi_cli.store import list_runs

    store = request.app.state.store
    with store.lock:
        rows = list_runs(store.db, limit=200)
    for r in rows:
        r["duration_s"] = duration_s(r.get("started_at"), r.get("finished_at"))
    return _page(request, "runs.html", runs=rows)


def duration_s(started: str | None, finished: str | None) -> float | None:
    """Seconds between two ISO timestamps (None when either is missing)."""
    from datetime import datetime

    if not started or not finished:
        return None
    return (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()


def metric_plots(metrics: list[dict[str, Any]]) -> list[str]:
    """Per-epoch metrics as SVG plots: training losses (`loss/*`) split into the total, the
    head's terms and the VDI terms (objectives and their diagnostics) so that small terms are
    not flattened by large ones, and validation metrics in one plot."""
    from vdi_cli.serve.svg import line_plot

    groups: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(dict)
    for m in metrics:
        if m.get("epoch") is None:
            continue
        name, split = str(m["name"]), str(m["split"])
        if split == "train" and name.startswith("loss/"):
            term = name[len("loss/"):]
            group = ("training loss" if term == "loss" else
                     "loss terms" if term in HEAD_TERMS else "VDI terms")
        else:
            group, term = f"{split} metrics", name
        groups[group].setdefault(term, []).append((float(m["epoch"]), float(m["value"])))
    order = ["training loss", "loss terms", "VDI terms"]
    names = [g for g in order if g in groups] + sorted(g for g in groups if g not in order)
    return [line_plot(groups[g], title=g) for g in names]


def run_page(request: Any) -> Any:
    import json

    from vdi_cli.store import get_run

    store = request.app.state.store
    try:
        with store.lock:
            run = get_run(store.db, int(request.path_params["run_id"]))
    except VdiError as exc:
        return _not_found(request, exc)
    run["duration_s"] = duration_s(run.get("started_at"), run.get("finished_at"))
    final = [m for m in run["metrics"] if m.get("epoch") is None]
    return _page(request, "run.html", run=run, plots=metric_plots(run["metrics"]),
                 final=final, config=json.dumps(run.get("config") or {}, indent=2,
                                                sort_keys=True, default=str),
                 summary=json.dumps(run.get("summary") or {}, indent=2, sort_keys=True,
                                    default=str)[:20000])


def _eval_args(request: Any) -> dict[str, Any]:
    q = request.query_params
    try:
        iou = float(q.get("iou") or 0.5)
        offset = max(0, int(q.get("offset") or 0))
    except ValueError:
        raise VdiError("iou must be a number and offset a whole number",
                       hint="e.g. ?iou=0.5&offset=0") from None
    return {"iou": iou, "misses": q.get("misses") in ("1", "true", "on"),
            "by": q.get("by") or None, "value": q.get("value") or None, "offset": offset}


def _evaluation_view(request: Any) -> dict[str, Any]:
    """The evaluation view the JSON and the page both show (VdiError on bad input)."""
    from vdi_cli.serve.evaluation import evaluation

    store = request.app.state.store
    args = _eval_args(request)
    with store.lock:
        return evaluation(store.db, int(request.path_params["run_id"]), **args)


def _eval_status(exc: VdiError) -> int:
    return 404 if exc.message.startswith("no run with id") else 400


def eval_json(request: Any) -> Any:
    from vdi_cli.serve.api import error_response, json_response

    try:
        view = _evaluation_view(request)
    except VdiError as exc:
        return error_response(exc, _eval_status(exc))
    return json_response(view)


def eval_page(request: Any) -> Any:
    from vdi_cli.serve.svg import window_strip

    try:
        view = _evaluation_view(request)
    except VdiError as exc:
        return _page(request, "error.html", _eval_status(exc), message=exc.message,
                     hint=exc.hint)
    for r in view["queries"]:
        r["strip"] = window_strip(r["duration"], r["gt"], r["predictions"])
    from urllib.parse import urlencode

    query = {k: v for k, v in request.query_params.items() if k != "offset"}
    next_url = "?" + urlencode({**query, "offset": view["offset"] + view["limit"]})
    return _page(request, "eval.html", view=view, next_url=next_url)
