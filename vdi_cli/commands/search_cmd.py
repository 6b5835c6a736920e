"""`vdi search "QUERY" ["QUERY" ...] [--index NAME]`: moments across an indexed library.

A thin adapter over `vdi_cli.pipeline.search`; output as `vdi retrieve` prints it.
"""

from __future__ import annotations

import sys

import typer

from vdi_cli.commands._flags import notice
from vdi_cli.errors import VdiError
from vdi_cli.output import info

Opt = typer.Option


def search_command(
    queries: list[str] = typer.Argument(None, metavar="QUERY...",
                                        help="One or more sentences to find."),
    index: str = Opt(None, "--index", "-i", help="Index name (default: the only index)."),
    top_k: int = Opt(5, "--top-k", "-k", help="Moments per query, across the library."),
    candidates: int = Opt(None, "--candidates", help="Nearest neighbours to rescore (default: "
                          "as many as the exact bound needs; 3072 for winpq, 8192 for "
                          "ivfpq, 2048 for hnsw)."),
    json_out: bool = Opt(False, "--json", help="JSON output (same as --format json)."),
    fmt: str = Opt("table", "--format", "-f", help="table, json, jsonl, srt or vtt."),
    plot: str = Opt(None, "--plot", help="Write a PNG of the found videos' scores over time."),
) -> None:
    """Find when each sentence happens across an indexed library (`vdi index build`)."""
    from vdi_cli.commands._flags import run_context  # library errors in CLI words
    from vdi_cli.commands.retrieve_cmd import _print
    from vdi_cli.pipeline.retrieve import check_queries, ranked_moments
    from vdi_cli.pipeline.retrieve_output import FORMATS
    from vdi_cli.pipeline.search import LibrarySearcher
    from vdi_cli.settings import get_settings, open_store
    from vdi_cli.store.indexes import list_indexes
    from vdi_cli.store.predictions import store_predictions

    fmt = "json" if json_out else fmt
    if fmt not in FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    if candidates is not None and candidates < 1:
        raise typer.BadParameter("--candidates must be at least 1")
    db = open_store()
    config = {"queries": queries, "index": index, "top_k": top_k, "candidates": candidates,
              "format": fmt, "plot": plot}
    with run_context(db, "search", config, sys.argv[1:]) as handle:
        texts = check_queries(queries or [])
        if top_k < 1:
            raise VdiError(f"--top-k must be at least 1, got {top_k}", hint="e.g. --top-k 5")
        if index is None:
            names = [r["name"] for r in list_indexes(db)]
            if len(names) != 1:
                raise VdiError("no index in this database" if not names else
                               f"{len(names)} indexes: {', '.join(names[:8])}",
                               hint="vdi index build NAME SOURCES... makes one" if not names
                               else "choose one with --index NAME")
            index = names[0]
        searcher = LibrarySearcher(db, index, device=get_settings().device, notify=notice)
        result = searcher.search(texts, top_k=top_k, keep_maps=plot is not None,
                                 candidates=candidates, run_id=handle.id)
        if fmt in ("srt", "vtt") and len(result.videos) > 1:
            raise VdiError(f"--format {fmt} writes the cues of one video; the moments are in "
                           f"{len(result.videos)}",
                           hint="use --format table, json or jsonl")
        handle.update(backbone=result.model["backbone"], head=result.model["head"])
        handle.summary.update({"index": index, "queries": texts,
                               "rounds": searcher.stats.rounds, "proven": searcher.stats.proven,
                               "timings": {k: round(t, 4) for k, t in result.timings.items()}})
        handle.summary["predictions"] = store_predictions(db, handle.id, ranked_moments(result))
        if plot is not None:
            from vdi_cli.pipeline.retrieve_plot import write_plot

            path, rows = write_plot(plot, result.queries, result.videos, result.model["head"])
            info(f"plot: {path} ({rows} query-video pairs)")
    result.run_id = handle.id
    _print(result, fmt)


def register(app: typer.Typer) -> None:
    app.command("search")(search_command)
