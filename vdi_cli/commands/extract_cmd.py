"""`vdi extract`: videos (files, folders, or a dataset's videos) -> cached CLIP frame features.

A thin adapter over `vdi_cli.pipeline.extract.extract_features`. Exit code 1 when any video
failed (the others are still extracted); the run row keeps the per-video reasons.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from vdi_cli.errors import VdiError
from vdi_cli.output import (
    info,
    print_json,
    print_table,
    shows_progress,
    warn,
    warn_damaged,
)

MAX_LISTED = 5


def _inputs(
    paths: list[str], dataset: str | None, annotations: str | None, video_dir: str | None,
    dataset_options: dict[str, Any] | None = None,
) -> tuple[list[Any], dict[str, Any]]:
    """The (name, path) pairs to extract and a description of where they came from."""
    from vdi_cli.video import find_videos, video_for_id

    if dataset is not None or annotations is not None or video_dir is not None:
        if paths:
            raise typer.BadParameter("give video paths or --dataset, not both")
        if not (dataset and annotations and video_dir):
            raise typer.BadParameter(
                "--dataset FORMAT, --annotations FILE and --video-dir DIR go together"
            )
        from vdi_cli.datasets import load_dataset

        report = load_dataset(dataset, annotations, need_answers=False,
                              **(dataset_options or {}))
        for message in report.messages:
            info(f"{dataset}: {message}")
        folder = Path(video_dir)
        if not folder.is_dir():
            raise VdiError(f"video folder '{folder}' does not exist", hint="check --video-dir")
        items = [(vid, video_for_id(folder, vid)) for vid in sorted(report.videos)]
        return items, {"dataset": dataset, "annotations": str(annotations),
                       "video_dir": str(folder), "videos": len(items),
                       "durations": [float(report.videos[vid] or 0.0) for vid, _ in items]}
    if not paths:
        raise typer.BadParameter("give video files or folders, or --dataset with --annotations")
    items: list[Any] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = find_videos(p)
            if not found:
                raise VdiError(
                    f"no video files in folder '{p}'",
                    hint="looked for .mp4, .mkv, .webm, .avi and .mov files",
                )
            items.extend((f.name, f) for f in found)
        else:
            items.append((p.name, p))
    return items, {"inputs": [str(p) for p in paths], "videos": len(items)}


def extract_command(
    paths: list[str] = typer.Argument(None, help="Video files or folders of videos."),
    dataset: str = typer.Option(None, "--dataset", help="Dataset format (see `vdi datasets`)."),
    annotations: str = typer.Option(None, "--annotations", help="The dataset's annotation file."),
    video_dir: str = typer.Option(None, "--video-dir", help="Folder with <video_id>.<ext> files."),
    dataset_option: list[str] = typer.Option(
        None, "--dataset-option", help="Dataset format option key=value, e.g. durations=FILE."
    ),
    backbone: str = typer.Option(
        None, "--backbone", "-b",
        help="Backbone id or id form (`vdi backbones` lists both; default: the backbone a "
        "plugin registers as the default).",
    ),
    weights: str = typer.Option(
        None, "--weights", help="Local checkpoint file, or local-dir:FOLDER (offline use)."
    ),
    fps: float = typer.Option(None, "--fps", help="Frames per second to sample (default 1)."),
    num_frames: int = typer.Option(None, "--num-frames", help="Uniformly spaced frames instead."),
    batch_size: int = typer.Option(32, "--batch-size", help="Frames per forward pass."),
    device: str = typer.Option(None, "--device", help="Torch device (default: the global one)."),
    precision: str = typer.Option("auto", "--precision", help="auto (fp16 on cuda), fp16, fp32."),
    dtype: str = typer.Option("float16", "--dtype", help="Stored dtype: float16 or float32."),
    force: bool = typer.Option(False, "--force", help="Recompute even when cached."),
    option: list[str] = typer.Option(None, "--backbone-option",
                                     help="Backbone option key=value."),
    shard: str = typer.Option(None, "--shard", help="I/N (0-based): only shard I of N of the "
                              "videos, balanced by duration; auto: from Slurm's array task or "
                              "torchrun's RANK / WORLD_SIZE."),
    workers: int = typer.Option(0, "--workers", help="Decode in K processes feeding the one "
                                "model (0: one decoding thread). Same features either way."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Extract per-frame global and patch features (cached: a second run is free)."""
    from vdi_cli.backbones import check_device
    from vdi_cli.checks import check_backbone
    from vdi_cli.commands._flags import run_context  # library errors in CLI words
    from vdi_cli.config import parse_overrides
    from vdi_cli.pipeline.extract import extract_features
    from vdi_cli.settings import get_settings, open_store
    from vdi_cli.shards import parse_shard, rank_device, unsharded_launch
    from vdi_cli.video import Sampling

    if dtype not in ("float16", "float32"):
        raise typer.BadParameter("--dtype must be float16 or float32")
    if workers < 0:
        raise typer.BadParameter(f"--workers must be 0 or more, got {workers}")
    sampling = Sampling(fps=fps, num_frames=num_frames)
    device = check_device(rank_device(device or get_settings().device))
    options = parse_overrides(option)
    if backbone is None:
        from vdi_cli.defaults import default_id

        backbone = default_id("backbone")
    check_backbone(backbone, options)  # id and -o keys, before videos are hashed or a model loads
    picked = parse_shard(shard)
    launcher = unsharded_launch() if picked is None else None
    if launcher is not None:
        warn(f"running under {launcher} without --shard: every process extracts every video "
             "(the cache keeps one copy); add --shard auto to split them")
    items, source = _inputs(
        paths or [], dataset, annotations, video_dir, parse_overrides(dataset_option)
    )
    durations = source.pop("durations", None)
    if picked is not None:
        items = shard_items(items, durations, *picked)
        source.update(shard=f"{picked[0]}/{picked[1]}", shard_videos=len(items))
        info(f"shard {picked[0]}/{picked[1]}: {len(items)} of {source['videos']} videos")
    config = {
        "backbone": backbone, "weights": weights, "sampling": sampling.to_dict(),
        "batch_size": batch_size, "device": device, "precision": precision, "dtype": dtype,
        "force": force, "options": options, "workers": workers, **source,
    }
    db = open_store()
    with run_context(db, "extract", config, sys.argv[1:], backbone=backbone) as run:
        report = extract_features(
            db, items, backbone=backbone, weights=weights, sampling=sampling,
            batch_size=batch_size, device=device, precision=precision, dtype=dtype, force=force,
            run_id=run.id, options=options, show_progress=shows_progress(json_out), workers=workers,
        )
        run.summary = report.summary()
        if json_out:
            print_json({"run_id": run.id, **report.to_dict()})
        else:
            _print_report(report, run.id)
        failed = report.failures()
        if failed:
            listed = ", ".join(f"{v.name} ({v.reason})" for v in failed[:MAX_LISTED])
            more = f" and {len(failed) - MAX_LISTED} more" if len(failed) > MAX_LISTED else ""
            total, others = len(report.videos), len(report.videos) - len(failed)
            done = ("no video has features" if not others else
                    "the other video has its features" if others == 1 else
                    f"the other {others} videos have their features")
            raise VdiError(
                f"{len(failed)} of {total} video{'s' * (total != 1)} could not be read: "
                f"{listed}{more}",
                hint=f"{done}; `vdi runs show {run.id}` lists every failure with its reason",
            )


def shard_items(items: list[Any], durations: list[float] | None, index: int, count: int
                ) -> list[Any]:
    """Shard `index` of `count` of the (name, path) items; durations from the dataset, else
    from each file's container (a file that cannot be opened counts 0 s, and fails in its
    shard as it would unsharded)."""
    from vdi_cli.shards import shard_of
    from vdi_cli.video import VideoError, probe_video

    if durations is None:
        durations = []
        for _, path in items:
            try:
                durations.append(float(probe_video(path).duration or 0.0))
            except VideoError:
                durations.append(0.0)
    return shard_of(items, durations, index, count)


def _print_report(report: Any, run_id: int) -> None:
    rows = [
        (
            v.name,
            v.status,
            v.frames or "",
            "x".join(map(str, v.patch_shape)) if v.patch_shape else "",
            v.reason or "",
        )
        for v in report.videos
    ]
    print_table(rows, ["video", "status", "frames", "patches (T x HW x D)", "reason"])
    c = report.counts()
    typer.echo(
        f"{c['extracted']} extracted, {c['cached']} cached, {c['failed']} failed "
        f"({report.backbone}, weights {report.weights}, sampling "
        f"{', '.join(f'{k}={v}' for k, v in report.sampling.items())}; run {run_id})"
    )
    for v in report.failures():
        print(f"failed: {v.path or v.name}: {v.reason}: {v.error}", file=sys.stderr)
    warn_damaged(report.damaged())


def register(app: typer.Typer) -> None:
    app.command("extract")(extract_command)
