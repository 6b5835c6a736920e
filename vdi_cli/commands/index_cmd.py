"""`vdi index build|add|remove|list|show`: a video library's proposals in a vector index.

A thin adapter over `vdi_cli.pipeline.index`; `vdi search` (search_cmd.py) reads what it makes.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from vdi_cli.commands._flags import notice
from vdi_cli.errors import VdiError
from vdi_cli.output import (
    print_json,
    print_table,
    shows_progress,
    warn,
    warn_damaged,
)

Opt = typer.Option
index_app = typer.Typer(help="Index a video library once (`build`, `add`, `remove`, `list`, "
                        "`show`), then find moments across it with `vdi search`.")


def _sources(sources: list[str], dataset: str | None, annotations: str | None,
             video_dir: str | None) -> list[Any]:
    """VideoInput list from folders / files / quoted globs, or a dataset's videos."""
    from vdi_cli.pipeline.retrieve import VideoInput, expand_inputs

    if dataset or annotations or video_dir:
        from vdi_cli.commands.extract_cmd import _inputs

        items, _ = _inputs(sources, dataset, annotations, video_dir, {})
        return [VideoInput(str(name), path) for name, path in items if path is not None]
    if not sources:
        raise VdiError("no videos given",
                       hint="give folders, video files or quoted globs ('clips/*.mp4'), or "
                       "--dataset FORMAT --annotations FILE --video-dir DIR")
    videos: list[Any] = []
    for spec in sources:
        videos += expand_inputs(spec)
    seen: dict[str, int] = {}
    for v in videos:  # names stay unique across sources
        k = seen.get(v.vid, 0)
        seen[v.vid] = k + 1
        if k:
            v.vid = f"{v.vid}-{k + 1}"
    return videos


def _report(report: Any, json_out: bool, run_id: int) -> None:
    for f in report.failed:
        warn(f"{f['path']}: {f['reason']}: {f['error']} (left out)")
    warn_damaged(report.damaged)
    if json_out:
        print_json({"run_id": run_id, **report.summary()})
        return
    typer.echo(f"index {report.name} ({report.kind}): {report.videos} videos, "
               f"{report.proposals} proposals; added {len(report.added)}, "
               f"already indexed {len(report.skipped)}, removed {len(report.removed)}, "
               f"failed {len(report.failed)} (run {run_id}, {report.seconds:.1f} s)")


def _options(items: list[str]) -> dict[str, Any]:
    from vdi_cli.config import parse_overrides

    return parse_overrides(items)


@index_app.command("build")
def build_cmd(
    name: str = typer.Argument(..., help="Index name (letters, digits, . _ -)."),
    sources: list[str] = typer.Argument(None, help="Folders, video files or quoted globs."),
    checkpoint: str = Opt(None, "--checkpoint", "-c", help="Checkpoint folder from `vdi train`."),
    run: int = Opt(None, "--run", help="Training run id: use its best checkpoint."),
    training_free: bool = Opt(False, "--training-free",
                              help="The training-free head (`vdi heads`)."),
    backbone: str = Opt(None, "--backbone", "-b", help="Backbone of the training-free head."),
    weights: str = Opt(None, "--weights", help="Local weights file or local-dir:FOLDER."),
    fps: float = Opt(None, "--fps", help="Frame sampling of the training-free head."),
    window: float = Opt(None, "--window", help="Window length in seconds (as vdi retrieve)."),
    overlap: float = Opt(0.5, "--overlap", help="Overlap of consecutive windows, in [0, 1)."),
    head_option: list[str] = Opt([], "--head-option", "-H",
                                 help="Training-free head option key=value."),
    kind: str = Opt("flat", "--kind", help="flat (exact), winpq, ivfpq or hnsw (approximate)."),
    index_option: list[str] = Opt([], "--index-option",
                                  help="Index option key=value (winpq: m, nprobe; ivfpq: nlist, m, "
                                  "nprobe; hnsw: neighbors, ef_search, ef_construction)."),
    dataset: str = Opt(None, "--dataset", help="Index a dataset's videos: its format."),
    annotations: str = Opt(None, "--annotations", help="The dataset's annotation file."),
    video_dir: str = Opt(None, "--video-dir", help="Folder with <video_id>.<ext> files."),
    force: bool = Opt(False, "--force", help="Replace an index of that name."),
    batch_size: int = Opt(32, "--batch-size", help="Frames per backbone forward pass."),
    json_out: bool = Opt(False, "--json", help="JSON output."),
) -> None:
    """Make an index over a library: extract what is not cached, encode every window's
    proposals once, store them in FAISS."""
    from vdi_cli.commands._flags import run_context  # library errors in CLI words
    from vdi_cli.pipeline.index import build_index
    from vdi_cli.settings import get_settings, open_store

    settings = get_settings()
    config = {"name": name, "sources": sources, "checkpoint": checkpoint, "run": run,
              "training_free": training_free, "backbone": backbone, "kind": kind,
              "options": index_option, "dataset": dataset, "annotations": annotations,
              "video_dir": video_dir, "window": window, "overlap": overlap}
    db = open_store()
    with run_context(db, "index", config, sys.argv[1:]) as handle:
        videos = _sources(sources or [], dataset, annotations, video_dir)
        report = build_index(
            db, name, videos, kind=kind, options=_options(index_option), force=force,
            checkpoint=checkpoint, run=run, training_free=training_free, backbone=backbone,
            weights=weights, fps=fps, window=window, overlap=overlap,
            head_options=_options(head_option), device=settings.device,
            show_progress=shows_progress(json_out), run_id=handle.id, batch_size=batch_size,
            notify=notice)
        handle.update(backbone=report.model["backbone"], head=report.model["head"])
        handle.summary.update(report.summary())
        _report(report, json_out, handle.id)


@index_app.command("add")
def add_cmd(
    name: str = typer.Argument(..., help="Index name."),
    sources: list[str] = typer.Argument(None, help="Folders, video files or quoted globs."),
    dataset: str = Opt(None, "--dataset", help="Add a dataset's videos: its format."),
    annotations: str = Opt(None, "--annotations", help="The dataset's annotation file."),
    video_dir: str = Opt(None, "--video-dir", help="Folder with <video_id>.<ext> files."),
    batch_size: int = Opt(32, "--batch-size", help="Frames per backbone forward pass."),
    json_out: bool = Opt(False, "--json", help="JSON output."),
) -> None:
    """Add videos with the index's own model (videos already in it are skipped)."""
    from vdi_cli.commands._flags import run_context  # library errors in CLI words
    from vdi_cli.pipeline.index import add_videos
    from vdi_cli.settings import get_settings, open_store

    db = open_store()
    config = {"name": name, "sources": sources, "dataset": dataset}
    with run_context(db, "index", config, sys.argv[1:]) as handle:
        videos = _sources(sources or [], dataset, annotations, video_dir)
        report = add_videos(db, name, videos, device=get_settings().device,
                            show_progress=shows_progress(json_out), run_id=handle.id,
                            batch_size=batch_size, notify=notice)
        handle.summary.update(report.summary())
        _report(report, json_out, handle.id)


@index_app.command("remove")
def remove_cmd(
    name: str = typer.Argument(..., help="Index name."),
    videos: list[str] = typer.Argument(..., help="Video paths, names or content hashes."),
    json_out: bool = Opt(False, "--json", help="JSON output."),
) -> None:
    """Remove videos from an index (no rebuild)."""
    from vdi_cli.commands._flags import run_context  # library errors in CLI words
    from vdi_cli.pipeline.index import remove_videos
    from vdi_cli.settings import open_store

    db = open_store()
    with run_context(db, "index", {"name": name, "remove": videos}, sys.argv[1:]) as handle:
        report = remove_videos(db, name, videos)
        handle.summary.update(report.summary())
        _report(report, json_out, handle.id)


@index_app.command("list")
def list_cmd(json_out: bool = Opt(False, "--json", help="JSON output.")) -> None:
    """The indexes of this database."""
    from vdi_cli.settings import open_store
    from vdi_cli.store.indexes import list_indexes

    rows = list_indexes(open_store())
    if json_out:
        print_json(rows)
        return
    print_table([(r["name"], r["kind"], r["videos"], r["proposals"],
                  f"{r['model']['head']} on {r['model']['backbone']}",
                  r["model"].get("checkpoint") or "training-free", r["updated_at"][:19])
                 for r in rows],
                ["name", "kind", "videos", "proposals", "model", "checkpoint", "updated"])


@index_app.command("show")
def show_cmd(
    name: str = typer.Argument(..., help="Index name."),
    json_out: bool = Opt(False, "--json", help="JSON output."),
) -> None:
    """One index: its model, options, files and videos."""
    from pathlib import Path

    from vdi_cli.settings import open_store
    from vdi_cli.store.indexes import get_index, index_videos

    db = open_store()
    index = get_index(db, name)
    videos = index_videos(db, index["id"])
    size = Path(index["path"]).stat().st_size if index["path"] and \
        Path(index["path"]).is_file() else 0
    if json_out:
        print_json({**index, "faiss_bytes": size, "video_rows": videos})
        return
    m = index["model"]
    typer.echo(f"index {index['name']}: {index['kind']} {index['options']}, dim {index['dim']}, "
               f"{index['videos']} videos, {index['proposals']} proposals, FAISS file "
               f"{size / 2**20:.1f} MB")
    typer.echo(f"model: {m['head']} on {m['backbone']} (weights {m['weights']}), "
               f"{m.get('checkpoint') or 'training-free'}; sampling {m['sampling']}, "
               f"window {m['window']} s, overlap {m['overlap']}")
    print_table([(v["vid"], f"{v['duration']:.1f}", len(v["windows"]), v["proposals"], v["path"])
                 for v in videos], ["video", "duration", "windows", "proposals", "path"])


def register(app: typer.Typer) -> None:
    app.add_typer(index_app, name="index")
