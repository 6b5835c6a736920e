"""`create_app(db_path, ...)`: the Starlette application `vdi serve` runs (tests call it
directly with Starlette's TestClient)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


def create_app(db_path: str | Path, *, index: str | None = None, device: str = "cpu",
               preload: bool = False, candidates: int | None = None,
               folders: Sequence[str | Path] = (), checkpoint: str | None = None,
               run: int | None = None, training_free: bool = False,
               notify: Any = None) -> Any:
    """The app over the database at `db_path` (opened read-only). `index`: the default index
    for searches (or a served folder's name); `preload`: load its model now instead of on the
    first search; `candidates`: the default of `vdi search --candidates` (None: exact).
    `folders`: folders (or globs) searched without an index, each a source named
    `folder:NAME`, with the model `vdi retrieve` would choose for `checkpoint` / `run` /
    `training_free` (loaded now; with `preload` their proposals are encoded now too)."""
    from starlette.applications import Starlette
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from vdi_cli.serve import api, media, pages
    from vdi_cli.serve.store import ServeStore

    store = ServeStore(db_path, device=device)
    store.candidates = candidates
    if folders:
        from vdi_cli.pipeline.folder_search import FolderSearcher

        shared = None  # one model for every folder
        for name, spec in folder_names(folders).items():
            searcher = FolderSearcher(store.db, [spec], name=name, checkpoint=checkpoint,
                                      run=run, training_free=training_free, device=device,
                                      notify=notify, retriever=shared)
            shared = searcher.retriever
            if preload:
                searcher.prepare()
            store.add_folder(searcher)
    if index is not None:
        store.set_default_index(index)
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


def folder_names(folders: Sequence[str | Path]) -> dict[str, str]:
    """`folder:NAME` for each served folder or glob (NAME: its last path part without glob
    characters; `-2`, `-3` ... when two share one)."""
    out: dict[str, str] = {}
    for spec in folders:
        text = str(spec).rstrip("/") or "/"
        parts = [p for p in Path(text).parts if not set(p) & set("*?[]")]
        base = f"folder:{parts[-1] if parts else 'videos'}"
        name, k = base, 2
        while name in out:
            name, k = f"{base}-{k}", k + 1
        out[name] = str(spec)
    return out
