"""The JSON API behind the pages. Shapes are the CLI's `--json` ones:

- `GET /api/runs?limit=&status=&command=`: `vdi runs list --json`;
- `GET /api/runs/{id}`: `vdi runs show ID --json`;
- `GET /api/indexes`: `vdi index list --json`;
- `GET /api/search?q=...[&q=...]&k=5&index=NAME&candidates=M&timelines=1`: `vdi search
  --json` (run_id null: serving records no run), plus `videos` (per found video its `url`, and
  with `timelines=1` its frame `times` and per query the `timeline` of scores `--plot` draws)
  and the server-side `timings`; `candidates` as `vdi search --candidates`;
- `GET /api/timeline?q=...&vid=VID&index=NAME`: one video's `times` and `timeline`.

An expected error (bad input) answers `{"error", "hint"}` with status 400, 404 for an unknown
run or index.
"""

from __future__ import annotations

import math
from typing import Any

from vdi_cli.errors import VdiError

MAX_TOP_K = 100
# sentence features a searcher keeps (Retriever caches every sentence it encodes: fine for a
# command, a leak for a server that answers queries for days); past this the cache restarts
TEXT_MEMORY = 2048


def error_response(exc: VdiError, status: int = 400) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=status)


def json_response(data: Any) -> Any:
    import json

    from starlette.responses import Response

    return Response(json.dumps(data, default=str, ensure_ascii=False),
                    media_type="application/json")


def _int(request: Any, name: str, default: int, low: int = 1, high: int = 10_000) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise VdiError(f"{name} must be a whole number, got '{raw}'",
                       hint=f"e.g. {name}={default}") from None
    if not low <= value <= high:
        raise VdiError(f"{name} must be between {low} and {high}, got {value}",
                       hint=f"e.g. {name}={default}")
    return value


def runs_list(request: Any) -> Any:
    from vdi_cli.store import list_runs
    from vdi_cli.store.runs import RUN_STATUSES

    store = request.app.state.store
    try:
        limit = _int(request, "limit", 50)
        status = request.query_params.get("status") or None
        if status is not None and status not in RUN_STATUSES:
            raise VdiError(f"unknown status '{status}'",
                           hint=f"status is one of {', '.join(RUN_STATUSES)}")
    except VdiError as exc:
        return error_response(exc)
    with store.lock:
        rows = list_runs(store.db, limit=limit, status=status,
                         command=request.query_params.get("command") or None)
    return json_response(rows)


def run_show(request: Any) -> Any:
    from vdi_cli.store import get_run

    store = request.app.state.store
    try:
        with store.lock:
            row = get_run(store.db, int(request.path_params["run_id"]))
    except VdiError as exc:
        return error_response(exc, 404)
    return json_response(row)


def indexes_list(request: Any) -> Any:
    from vdi_cli.store.db import has_table
    from vdi_cli.store.indexes import list_indexes

    store = request.app.state.store
    with store.lock:
        rows = list_indexes(store.db) if has_table(store.db, "indexes") else []
    return json_response(rows)


def _finite(values: Any) -> list[float | None]:
    return [round(float(v), 5) if math.isfinite(float(v)) else None for v in values]


def search_json(store: Any, queries: list[str], *, top_k: int = 5,
                index: str | None = None, candidates: int | None = None,
                timelines: bool = False) -> dict[str, Any]:
    """What `/api/search` answers (see the module docstring); raises VdiError."""
    import time

    from vdi_cli.serve.media import video_url

    t0 = time.perf_counter()
    name = store.index_name(index)
    searcher = store.searcher(name)
    with store.lock:
        result = searcher.search(queries, top_k=top_k, keep_maps=timelines,
                                 candidates=candidates or store.candidates)
        texts = getattr(searcher.retriever, "_texts", None)
        if texts is not None and len(texts) > TEXT_MEMORY:
            texts.clear()
    out = result.to_json()
    out["index"] = name
    out["videos"] = [
        {"vid": v.vid, "path": v.path, "url": video_url(v.path),
         "duration": round(float(v.duration), 3),
         **({"times": _finite(v.ranking.times),
             "timeline": [_finite(row) for row in v.ranking.timeline]} if timelines else {})}
        for v in result.videos]
    out["timings"] = {**{k: round(t, 4) for k, t in result.timings.items()},
                      "server": round(time.perf_counter() - t0, 4)}
    return out


def search(request: Any) -> Any:
    from vdi_cli.pipeline.retrieve import check_queries

    store = request.app.state.store
    try:
        queries = check_queries(request.query_params.getlist("q"))
        top_k = _int(request, "k", 5, high=MAX_TOP_K)
        candidates = _int(request, "candidates", 256, high=10_000_000) \
            if request.query_params.get("candidates") else None
        timelines = request.query_params.get("timelines") in ("1", "true")
        index = _known_index(store, request)
        return json_response(search_json(store, queries, top_k=top_k, index=index,
                                         candidates=candidates, timelines=timelines))
    except LookupError as exc:
        return error_response(exc.args[0], 404)
    except VdiError as exc:
        return error_response(exc)


def _known_index(store: Any, request: Any) -> str | None:
    """The request's `index`, checked (LookupError(VdiError) for an unknown one: 404)."""
    index = request.query_params.get("index") or None
    if index is not None:
        try:
            store.index_name(index)
        except VdiError as exc:
            raise LookupError(exc) from exc
    return index


def timeline(request: Any) -> Any:
    from vdi_cli.pipeline.retrieve import check_queries
    from vdi_cli.serve.timeline import video_timeline

    store = request.app.state.store
    try:
        query = check_queries(request.query_params.getlist("q")[:1])[0]
        name = store.index_name(_known_index(store, request))
        searcher = store.searcher(name)
        with store.lock:
            data = video_timeline(searcher, query, request.query_params.get("vid", ""))
        return json_response(data)
    except LookupError as exc:
        return error_response(exc.args[0], 404)
    except VdiError as exc:
        return error_response(exc, 404 if exc.message.startswith("no video") else 400)
