"""`vdi retrieve VIDEO "QUERY" ["QUERY" ...]`: ranked moments from raw videos.

A thin adapter over `vdi_cli.pipeline.retrieve`: the run row, the output format, the plot.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer

from vdi_cli.commands._flags import notice
from vdi_cli.errors import VdiError
from vdi_cli.output import info, shows_progress, warn, warn_damaged

if TYPE_CHECKING:
    from vdi_cli.pipeline.retrieve import RetrieveResult

Opt = typer.Option


def retrieve_command(
    video: str = typer.Argument(None, metavar="VIDEO",
                                help="A video file, a folder of videos, or a quoted glob."),
    queries: list[str] = typer.Argument(None, metavar="QUERY...",
                                        help="One or more sentences to find."),
    checkpoint: str = Opt(None, "--checkpoint", "-c", help="Checkpoint folder from `vdi train`."),
    run: int = Opt(None, "--run", help="Training run id: use its best checkpoint."),
    training_free: bool = Opt(False, "--training-free", help="Use the training-free "
                              "head (`vdi heads`) even when a trained checkpoint exists."),
    backbone: str = Opt(None, "--backbone", "-b", help="Backbone of the training-free head "
                        "(default: the one a plugin registers for it); with a checkpoint it "
                        "must match."),
    weights: str = Opt(None, "--weights", help="Local weights file or local-dir:FOLDER."),
    fps: float = Opt(None, "--fps", help="Frame sampling of the training-free head (default 1); "
                     "a checkpoint's own sampling is always used."),
    window: float = Opt(None, "--window", help="Window length in seconds for long videos "
                        "(default: the longest training video of the checkpoint; 60 s for the "
                        "training-free head)."),
    overlap: float = Opt(0.5, "--overlap", help="Overlap of consecutive windows, in [0, 1)."),
    top_k: int = Opt(5, "--top-k", "-k", help="Moments per query (per video and overall)."),
    json_out: bool = Opt(False, "--json", help="JSON output (same as --format json)."),
    fmt: str = Opt("table", "--format", "-f", help="table, json, jsonl, srt or vtt."),
    plot: str = Opt(None, "--plot", help="Write a PNG: score over time with the top moments "
                    "shaded, and the 2D score map."),
    head_option: list[str] = Opt([], "--head-option", "-H",
                                 help="Training-free head option key=value (`vdi heads "
                                 "show ID`)."),
    batch_size: int = Opt(32, "--batch-size", help="Frames per backbone forward pass."),
) -> None:
    """Find when each sentence happens: ranked moments (start, end, score) of one video, or
    ranked across many (a folder or glob)."""
    from vdi_cli.commands._flags import run_context  # library errors in CLI words
    from vdi_cli.config import parse_overrides
    from vdi_cli.pipeline.retrieve import (
        Retriever,
        check_queries,
        expand_inputs,
        ranked_moments,
        split_arguments,
    )
    from vdi_cli.pipeline.retrieve_output import FORMATS
    from vdi_cli.settings import get_settings, open_store
    from vdi_cli.store.predictions import store_predictions

    fmt = "json" if json_out else fmt
    if fmt not in FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    specs, texts = split_arguments([a for a in [video, *(queries or [])] if a is not None])
    settings = get_settings()
    config = {"inputs": specs, "queries": texts, "checkpoint": checkpoint, "run": run,
              "training_free": training_free, "backbone": backbone, "weights": weights,
              "fps": fps, "window": window, "overlap": overlap, "top_k": top_k, "format": fmt,
              "plot": plot, "head_options": head_option, "device": settings.device}
    db = open_store()
    with run_context(db, "retrieve", config, sys.argv[1:]) as handle:
        if not specs:
            raise VdiError("no video given", hint='vdi retrieve VIDEO "QUERY" ["QUERY" ...]')
        videos = expand_inputs(specs[0], specs[1:])
        texts = check_queries(texts)
        if fmt in ("srt", "vtt") and len(videos) > 1:
            raise VdiError(f"--format {fmt} writes the cues of one video, not {len(videos)}",
                           hint="use --format table, json or jsonl for many videos")
        for name, value in (("--top-k", top_k), ("--batch-size", batch_size)):
            if value < 1:  # before the model loads, not after it (search checks again)
                raise VdiError(f"{name} must be at least 1, got {value}",
                               hint=f"e.g. {name} {5 if name == '--top-k' else 32}")
        if len(videos) == 1 and not _decoded_before(db, videos[0].path):
            from vdi_cli.video import probe_video  # an unreadable file fails before the model

            probe_video(videos[0].path)
        retriever = Retriever(db, checkpoint=checkpoint, run=run, training_free=training_free,
                              backbone=backbone, weights=weights, fps=fps, window=window,
                              overlap=overlap, head_options=parse_overrides(head_option),
                              device=settings.device, notify=notice, videos=videos)
        model = retriever.describe()
        handle.update(backbone=model["backbone"], head=model["head"])
        result = retriever.search(videos, texts, top_k=top_k, keep_maps=plot is not None,
                                  show_progress=shows_progress(fmt != "table"), run_id=handle.id,
                                  batch_size=batch_size)
        handle.summary.update(result.summary())
        handle.summary["predictions"] = store_predictions(db, handle.id, ranked_moments(result))
        for f in result.failed:
            warn(f"{f['path']}: {f['reason']}: {f['error']} (left out)")
        warn_damaged(result.damaged)
        if len(videos) > 1:
            new = sum(v.status == "extracted" for v in result.videos)
            info(f"searched {len(result.videos)} of {len(videos)} videos ({new} extracted, "
                 f"{len(result.videos) - new} cached, {len(result.failed)} failed) in "
                 f"{result.timings['total']:.1f} s")
        if plot is not None:
            from vdi_cli.pipeline.retrieve_plot import write_plot

            path, rows = write_plot(plot, result.queries, result.videos, model["head"])
            info(f"plot: {path} ({rows} of {len(result.queries) * len(result.videos)} "
                 "query-video pairs)")
    result.run_id = handle.id
    _print(result, fmt)


def _print(r: RetrieveResult, fmt: str) -> None:
    from vdi_cli.pipeline import retrieve_output as out

    if fmt == "json":
        sys.stdout.write(out.render_json(r.to_json()))
    elif fmt == "jsonl":
        extra = {"run_id": r.run_id, "backbone": r.model["backbone"], "head": r.model["head"]}
        sys.stdout.write(out.render_jsonl(out.prediction_records(r.queries, r.videos), extra))
    elif fmt in ("srt", "vtt"):
        render = out.render_srt if fmt == "srt" else out.render_vtt
        sys.stdout.write(render(r.queries, r.videos[0].moments))
    else:
        searched = r.model.get("index_videos")  # vdi search: the whole library
        many = len(r.videos) > 1 or bool(r.failed) or searched is not None
        sys.stdout.write(out.render_table(r.queries, r.videos, r.corpus if many else None,
                                          searched))
        info(f"run {r.run_id}: {r.model['head']} on {r.model['backbone']} ({r.model['source']}); "
             f"{r.timings['total']:.2f} s")


def _decoded_before(db: Any, path: Any) -> bool:
    """The file is unchanged (same stat identity) since frame features were extracted from it:
    probing it again would only cost the video library's import (~0.1-0.35 s of a repeat
    query's cold start)."""
    from vdi_cli.store.hashes import known_sha256
    from vdi_cli.store.videos import has_features

    sha = known_sha256(db, path)
    return sha is not None and has_features(db, sha)


def register(app: typer.Typer) -> None:
    app.command("retrieve")(retrieve_command)
