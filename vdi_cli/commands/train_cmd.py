"""`vdi train`: VDI (or the MMN+CLIP baseline) on a dataset, with checkpoints and metrics."""

from __future__ import annotations

import sys
from typing import Any

import typer

from vdi_cli.output import print_json, print_table

Opt = typer.Option


def _component_options(items: list[str], what: str) -> dict[str, dict[str, Any]]:
    """["visual-context.probe=query", "spatial-dynamic.sequence_options.heads=4"] ->
    {"visual-context": {"probe": "query"}, "spatial-dynamic": {"sequence_options": {"heads": 4}}}.

    The id ends at the first dot (ids have none); the rest is a key, nested at its dots."""
    from vdi_cli.config import parse_overrides
    from vdi_cli.errors import ConfigError

    grouped: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        cid, dot, option = key.partition(".")
        if not sep or not dot or not cid or not option:
            raise ConfigError(f"{what} option '{item}' is not ID.key=value",
                              hint="e.g. --objective-option visual-context.probe=query")
        grouped.setdefault(cid, []).append(f"{option}={value}")
    return {cid: parse_overrides(options) for cid, options in grouped.items()}


def _list_options(value: bool) -> None:
    """`vdi train --list-options`: every TrainConfig field `-o` sets, with type and default."""
    if not value:
        return
    from vdi_cli.config import class_schema
    from vdi_cli.pipeline.train_config import TrainConfig

    schema = class_schema(TrainConfig)
    print_table([(k, v["type"], v["default"], v["description"]) for k, v in schema.items()],
                ["option", "type", "default", "description"])
    raise typer.Exit()


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` over `base`, nested dictionaries merged: `-H a=1 -o head_options.b=2` keeps a."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def train(
    ctx: typer.Context,
    dataset: str = Opt(None, "--dataset", help="Annotation format (vdi datasets); required "
                       "unless --resume."),
    annotations: str = Opt(None, "--annotations", help="Training annotation file; required "
                           "unless --resume."),
    video_dir: str = Opt(None, "--video-dir", help="Folder with <video id>.mp4 files; required "
                         "unless --resume."),
    val: str = Opt(None, "--val", help="Validation annotation file (same format)."),
    backbone: str = Opt("clip-vit-b32", "--backbone", help="Backbone id (vdi backbones)."),
    weights: str = Opt(None, "--weights", help="Local weights file or local-dir:FOLDER."),
    head: str = Opt("mmn", "--head", help="Grounding head id (vdi heads)."),
    head_option: list[str] = Opt([], "--head-option", "-H", help="Head option key=value."),
    parser: str = Opt("spacy", "--parser", help="Query parser id (vdi parsers)."),
    parser_option: list[str] = Opt([], "--parser-option", help="Parser option key=value."),
    objective: list[str] = Opt(None, "--objective", help="VDI objective id (repeatable); "
                               "default: visual-context and spatial-dynamic."),
    no_objective: bool = Opt(False, "--no-objective", help="No VDI term: MMN+CLIP baseline."),
    objective_option: list[str] = Opt([], "--objective-option", "-O",
                                      help="ID.key=value, e.g. visual-context.probe=query."),
    fps: float = Opt(None, "--fps", help="Feature sampling rate (default 1)."),
    num_frames: int = Opt(None, "--num-frames", help="Or a fixed frame count per video."),
    epochs: int = Opt(None, "--epochs", help="Default: the preset's (18)."),
    batch_size: int = Opt(48, "--batch-size", help="Videos per step."),
    lr: float = Opt(None, "--lr", help="Head learning rate (default: preset's)."),
    seed: int = Opt(25285, "--seed"),
    option: list[str] = Opt([], "-o", help="Any training option key=value (--list-options; "
                            "docs/train.md), e.g. -o scope=moment -o patience=0 "
                            "-o train_text_layers=2."),
    resume: int = Opt(None, "--resume", help="Continue run ID from its last checkpoint, with "
                      "its stored options (an option given that differs is refused; --epochs "
                      "and -o patience/keep_checkpoints may change)."),
    nproc: int = Opt(None, "--nproc", min=1, help="Train on N local processes: runs this "
                     "command under `torchrun --standalone --nproc-per-node N` (gloo on CPU, "
                     "nccl on GPU; --batch-size stays the global batch)."),
    json_out: bool = Opt(False, "--json", help="JSON summary on stdout."),
    list_options: bool = Opt(False, "--list-options", callback=_list_options, is_eager=True,
                             help="List the -o options (type, default) and exit."),
) -> None:
    """Train a grounding head and adapt the text encoder with Visual-Dynamic Injection."""
    from vdi_cli.checks import check_train_config
    from vdi_cli.config import check_option_keys, parse_overrides
    from vdi_cli.errors import ConfigError
    from vdi_cli.pipeline.train_config import DEFAULT_OBJECTIVES, TrainConfig
    from vdi_cli.settings import get_settings, open_store

    if no_objective and objective:
        raise ConfigError("--objective and --no-objective contradict each other",
                          hint="drop one of them")
    values: dict[str, Any] = {
        "dataset": dataset, "annotations": annotations, "video_dir": video_dir, "val": val,
        "backbone": backbone, "weights": weights, "head": head,
        "head_options": parse_overrides(head_option), "parser": parser,
        "parser_options": parse_overrides(parser_option),
        "objectives": [] if no_objective else list(objective or DEFAULT_OBJECTIVES),
        "objective_options": _component_options(objective_option, "objective"),
        "fps": fps, "num_frames": num_frames, "epochs": epochs, "batch_size": batch_size,
        "lr": lr, "seed": seed, "device": get_settings().device,
    }
    overrides = parse_overrides(option)
    check_option_keys(TrainConfig, overrides, "`vdi train --list-options` lists them",
                      noun="training option")
    values = _merge(values, overrides)
    from pydantic import ValidationError

    db = open_store() if resume is not None else None
    try:
        if resume is not None:
            from vdi_cli.pipeline.train_resume import resume_config

            config = resume_config(db, resume, _given(ctx, values, option))
        else:
            _require(dataset=dataset, annotations=annotations, video_dir=video_dir)
            config = TrainConfig(**values).resolved()
    except ValidationError as exc:
        problems = "; ".join(
            (f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "")
            + e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise ConfigError(f"invalid training options: {problems}",
                          hint="`vdi train --list-options` lists the -o options") from exc
    check_train_config(config)  # ids, component options, device: before any model loads
    from vdi_cli.commands._train_ranks import launch, train_on_ranks, without_nproc
    from vdi_cli.distributed import env_rank, under_torchrun

    if nproc is not None and nproc > 1 and not under_torchrun():
        raise typer.Exit(launch(nproc, without_nproc(sys.argv[1:]), config.device))
    summary = train_on_ranks(config, resume, db, show_progress=not json_out)
    if under_torchrun() and env_rank() != 0:
        return  # rank 0 prints the result
    if json_out:
        print_json(summary)
        return
    # validation columns only when there was a validation set (not a column of nan)
    val_keys = [k for k in ("R@1,IoU=0.5", "R@1,IoU=0.7", "mIoU")
                if any(k in h["val"] for h in summary["history"])]
    rows = [(h["epoch"], f"{h['losses'].get('loss', 0):.4f}",
             *(f"{h['val'][k]:.2f}" if k in h["val"] else "" for k in val_keys))
            for h in summary["history"]]
    names = {"R@1,IoU=0.5": "val R1@0.5", "R@1,IoU=0.7": "val R1@0.7", "mIoU": "val mIoU"}
    print_table(rows, ["epoch", "loss", *(names[k] for k in val_keys)])
    typer.echo(f"run {summary['run_id']}: best epoch {summary['best_epoch']}, "
               f"checkpoint {summary['best_checkpoint']}")


# command-line parameters -> the TrainConfig keys they set (the rest map one to one)
_PARAM_KEYS = {"head_option": "head_options", "parser_option": "parser_options",
               "objective": "objectives", "no_objective": "objectives",
               "objective_option": "objective_options"}
_CONFIG_PARAMS = ("dataset", "annotations", "video_dir", "val", "backbone", "weights", "head",
                  "head_option", "parser", "parser_option", "objective", "no_objective",
                  "objective_option", "fps", "num_frames", "epochs", "batch_size", "lr", "seed")


def _given(ctx: typer.Context, values: dict[str, Any], option: list[str]) -> dict[str, Any]:
    """The options the user typed (not left at their defaults), as TrainConfig keys: what a
    resume compares with the stored configuration."""
    from vdi_cli.config import parse_overrides

    given = {}
    for param in _CONFIG_PARAMS:
        source = ctx.get_parameter_source(param)  # typer's own click: compare by name
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
            key = _PARAM_KEYS.get(param, param)
            given[key] = values[key]
    given.update(parse_overrides(option))
    given["device"] = values["device"]
    return given


def _require(**options: Any) -> None:
    from vdi_cli.errors import UsageError

    missing = [f"--{name.replace('_', '-')}" for name, value in options.items() if value is None]
    if missing:
        raise UsageError(f"missing option{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
                         hint="a new run needs --dataset, --annotations and --video-dir; "
                         "`--resume ID` continues a run with its stored options")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
