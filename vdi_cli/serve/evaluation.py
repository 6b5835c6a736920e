"""The evaluation view: for a `vdi eval` run of a model, each query of the split with its ground
truth and the run's stored top predictions, IoU beside each, filterable (misses only; one value
of a per-query annotation field, as `vdi eval --by`), with the video's URL when the file is
one the store knows.

The ground truth is read again from the run's annotation file (the store keeps the
predictions, not the split); a file that has changed or gone is an error that says so.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from vdi_cli.errors import VdiError

TOP = 5  # predictions shown per query
PAGE = 200  # queries per page


def _eval_run(db: Any, run_id: int) -> dict[str, Any]:
    from vdi_cli.store import get_run

    run = get_run(db, run_id)
    config = run.get("config") or {}
    if run["command"] != "eval" or not isinstance(config, dict) or config.get("mode") != "model":
        raise VdiError(f"run {run_id} is not an evaluation of a model ({run['command']})",
                       hint="open the evaluation of a `vdi eval --checkpoint/--run` run "
                       "(see the runs page)")
    return run


def _queries(db: Any, run: dict[str, Any]) -> list[dict[str, Any]]:
    """Every annotated query of the run's split with its stored predictions (in the order
    `vdi eval` scored them)."""
    from vdi_cli.datasets import load_dataset
    from vdi_cli.metrics import temporal_iou
    from vdi_cli.serve.media import known_files, video_url
    from vdi_cli.store.predictions import run_predictions
    from vdi_cli.video import video_for_id

    config = run["config"]
    try:
        data = load_dataset(config["format"], config["annotations"], need_answers=False,
                            **(config.get("options") or {}))
    except VdiError as exc:
        raise VdiError(f"cannot read run {run['id']}'s annotations: {exc.message}",
                       hint="the evaluation's annotation file must still be where it was "
                       f"({config['annotations']})") from exc
    runs: dict[tuple[str, str], list[list[tuple[float, float, float]]]] = defaultdict(list)
    for r in run_predictions(db, run["id"]):
        if r[2] == 1 or not runs[(r[0], r[1])]:  # rank 1 opens a query's list
            runs[(r[0], r[1])].append([])
        runs[(r[0], r[1])][-1].append((r[3], r[4], r[5]))
    used: dict[tuple[str, str], int] = defaultdict(int)
    known = known_files(db)
    urls: dict[str, str | None] = {}
    out = []
    for a in data.annotations:
        key = (a.video_id, a.query)
        lists = runs.get(key, [])
        preds = lists[used[key]] if used[key] < len(lists) else []
        used[key] += 1
        if a.video_id not in urls:
            path = video_for_id(config["video_dir"], a.video_id)
            urls[a.video_id] = (video_url(str(path)) if path is not None
                                and path.resolve() in known else None)
        ious = temporal_iou([p[:2] for p in preds], [a.start, a.end]).tolist() if preds else []
        out.append({"video": a.video_id, "query": a.query, "query_id": a.query_id,
                    "duration": round(float(a.duration), 3),
                    "gt": [round(float(a.start), 3), round(float(a.end), 3)],
                    "predictions": [[round(s, 3), round(e, 3), round(sc, 4), round(float(u), 4)]
                                    for (s, e, sc), u in zip(preds[:TOP], ious, strict=False)],
                    "extra": {k: v for k, v in a.extra.items()
                              if isinstance(v, str | int | float | bool | list)},
                    "url": urls[a.video_id]})
    return out


def _field_values(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def evaluation(db: Any, run_id: int, *, iou: float = 0.5, misses: bool = False,
               by: str | None = None, value: str | None = None, offset: int = 0,
               limit: int = PAGE) -> dict[str, Any]:
    """The view (what `/api/eval/ID` answers): the queries after the filters, a page of them,
    each marked hit or miss at `iou` (top-1 IoU >= iou), the fields `by` can take."""
    if not 0 < iou <= 1:
        raise VdiError(f"iou must be in (0, 1], got {iou}", hint="e.g. iou=0.5")
    run = _eval_run(db, run_id)
    rows = _queries(db, run)
    for r in rows:
        r["hit"] = bool(r["predictions"]) and r["predictions"][0][3] >= iou - 1e-9
    fields = sorted({k for r in rows for k in r["extra"]})
    values: list[str] = []
    if by is not None:
        if by not in fields:
            raise VdiError(f"no query of this split has a '{by}' field",
                           hint=f"fields: {', '.join(fields) or 'none'}")
        values = sorted({v for r in rows for v in _field_values(r["extra"].get(by, []))})
    chosen = [r for r in rows if (not misses or not r["hit"])
              and (by is None or value is None or value in _field_values(r["extra"].get(by, [])))]
    hits = sum(r["hit"] for r in rows)
    return {"run_id": run_id, "annotations": run["config"]["annotations"],
            "format": run["config"]["format"], "iou": iou, "queries_total": len(rows),
            "hits": hits, "recall_at_1": round(100.0 * hits / len(rows), 2) if rows else None,
            "fields": fields, "by": by, "by_values": values, "value": value, "misses": misses,
            "matched": len(chosen), "offset": offset, "limit": limit,
            "queries": chosen[offset: offset + limit]}
