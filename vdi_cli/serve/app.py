"""`create_app(db_path, ...)`: the Starlette application `vdi serve` runs (tests call it
directly with Starlette's TestClient)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


def create_app(db_path: str | Path, *, index: str | None = None, device: str = "cpu",
               preload: bool = False, candidates: int | None = None) -> Any:
    """The app over the database at `db_path` (opened read-only). `index`: the default index
    for searches; `preload`: load its model now instead of on the first search;
    `candidates`: the default of `vdi search --candidates` (None: exact)."""
    from starlette.applications import Starlette
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from vdi_cli.serve import api, media, pages
    from vdi_cli.serve.store import ServeStore

    store = ServeStore(db_path, device=device, default_index=index)
    store.candidates = candidates
    if preload and (index is not None or len(store.index_names()) == 1):
        store.searcher(store.index_name(None))  # else the first search names its index
    routes = [
        Route("/", pages.search_page),
        Route("/runs", pages.runs_page),
        Route("/runs/{run_id:int}", pages.run_page),
        Route("/eval/{run_id:int}", pages.eval_page),
        Route("/api/runs", api.runs_list),
        Route("/api/runs/{run_id:int}", api.run_show),
        Route("/api/indexes", api.indexes_list),
        Route("/api/search", api.search),
        Route("/api/timeline", api.timeline),
        Route("/api/eval/{run_id:int}", pages.eval_json),
        Route("/video", media.video_endpoint),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.store = store
    return app
