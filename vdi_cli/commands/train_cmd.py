"""`vdi train`: VDI (or the MMN+CLIP baseline) on a dataset, with checkpoints and metrics."""

from __future__ import annotations

import sys
from typing import Any

import typer

from vdi_cli.output import print_json, print_table, shows_progress

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
                              hint="e.g. --objective-option ID.weight=0.5 (`vdi objectives "
                              "show ID` lists an objective's keys)")
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
    from vdi_cli.recipes import merge

    return merge(base, extra)


def _default(key: str) -> str:
    """The value `vdi train --help` shows for an option: TrainConfig's own default, the one
    place it is declared (the command-line options default to None = "not given")."""
    from vdi_cli.errors import VdiError
    from vdi_cli.pipeline.train_config import TrainConfig

    try:
        value = TrainConfig.model_fields[key].get_default(call_default_factory=True)
    except VdiError:  # no installed plugin offers a default: the help still builds
        return "the registered default"
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _preset_default(key: str) -> str:
    """"the head preset's (18 for mmn's charades)": what an option left at None takes, shown
    for the default head's default preset (read from its registration)."""
    from vdi_cli.errors import VdiError
    from vdi_cli.pipeline.train_config import head_train_defaults

    head = _default("head")
    try:
        name, values = head_train_defaults(head, {})
    except VdiError:  # no plugin offers a head: the help still builds
        return "the head preset's"
    return f"the head preset's ({values[key]:g} for {head}'s {name})" if name else \
        f"the head's ({values[key]:g})"


def _fps_default() -> str:
    """The sampling rate a run without --fps / --num-frames gets (vdi_cli.video's)."""
    from vdi_cli.video import DEFAULT_FPS

    return f"{DEFAULT_FPS:g}"


def train(
    ctx: typer.Context,
    recipe: str = Opt(None, "--recipe", "-r", help="Start from a training recipe: a name "
                      "(`vdi recipes`) or a .toml file; options given here override its "
                      "values. Without one, the defaults below."),
    dataset: str = Opt(None, "--dataset", help="Annotation format (vdi datasets); required "
                       "unless --resume or the recipe names it."),
    annotations: str = Opt(None, "--annotations", help="Training annotation file; required "
                           "unless --resume."),
    video_dir: str = Opt(None, "--video-dir", help="Folder with <video id>.mp4 files; required "
                         "unless --resume."),
    val: str = Opt(None, "--val", help="Validation annotation file (same format)."),
    backbone: str = Opt(None, "--backbone", "-b", help="Backbone id (vdi backbones). Default: "
                        f"{_default('backbone')}."),
    weights: str = Opt(None, "--weights", help="Local weights file or local-dir:FOLDER."),
    head: str = Opt(None, "--head", help="Grounding head id (vdi heads). Default: "
                    f"{_default('head')}."),
    head_option: list[str] = Opt([], "--head-option", "-H", help="Head option key=value."),
    parser: str = Opt(None, "--parser", "-p", help="Query parser id (vdi parsers). Default: "
                      f"{_default('parser')}."),
    parser_option: list[str] = Opt([], "--parser-option", help="Parser option key=value."),
    objective: list[str] = Opt(None, "--objective", help="VDI objective id (repeatable). "
                               f"Default: {_default('objectives')}."),
    no_objective: bool = Opt(False, "--no-objective", help="No VDI term: MMN+CLIP baseline."),
    objective_option: list[str] = Opt([], "--objective-option", "-O",
                                      help="ID.key=value (`vdi objectives show ID` lists "
                                      "the keys), e.g. -O ID.weight=0.5."),
    fps: float = Opt(None, "--fps", help="Feature sampling rate (frames a second). Default: "
                     f"{_fps_default()}."),
    num_frames: int = Opt(None, "--num-frames", help="Or a fixed frame count per video."),
    epochs: int = Opt(None, "--epochs", help="Epochs to train. Default: "
                      f"{_preset_default('epochs')}."),
    batch_size: int = Opt(None, "--batch-size", help="Videos per step. Default: "
                          f"{_default('batch_size')}."),
    lr: float = Opt(None, "--lr", help="Head learning rate. Default: "
                    f"{_preset_default('lr')}."),
    seed: int = Opt(None, "--seed", help=f"Default: {_default('seed')}."),
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
    from vdi_cli.errors import VdiError
    from vdi_cli.settings import open_store

    config, used, db = resolve_options(ctx, open_store)
    try:
        check_train_config(config)  # ids, component options, device: before any model loads
    except VdiError as exc:
        if used is not None:  # the value may be the recipe's: say which file it was
            exc.message += f" (training with recipe '{used.name}', {used.path})"
        raise
    from vdi_cli.commands._train_ranks import launch, train_on_ranks, without_nproc
    from vdi_cli.distributed import env_rank, under_torchrun

    if nproc is not None and nproc > 1 and not under_torchrun():
        raise typer.Exit(launch(nproc, without_nproc(sys.argv[1:]), config.device))
    summary = train_on_ranks(config, resume, db, show_progress=shows_progress(json_out),
                             recipe=used.record() if used else None)
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


def resolve_options(ctx: typer.Context, open_db: Any = None) -> tuple[Any, Any, Any]:
    """The run's TrainConfig, the Recipe it started from (or None) and the store (opened with
    `open_db()` for --resume only, after the options are parsed, else None), from a parsed
    `vdi train` command line: TrainConfig's defaults, then the recipe's values, then the
    options the user typed (only those: an option left out keeps the recipe's value). With
    --resume, the stored configuration instead of the defaults."""
    from pydantic import ValidationError

    from vdi_cli.errors import ConfigError
    from vdi_cli.pipeline.train_config import TrainConfig
    from vdi_cli.recipes import apply_recipe, find_recipe
    from vdi_cli.settings import get_settings

    p = ctx.params
    if p["no_objective"] and p["objective"]:
        raise ConfigError("--objective and --no-objective contradict each other",
                          hint="drop one of them")
    given = _given(ctx)
    used = find_recipe(p["recipe"]) if p.get("recipe") else None
    values = apply_recipe(used.values if used else {}, given)
    values["device"] = get_settings().device
    db = None
    try:
        if p["resume"] is not None:
            if open_db is None:
                raise ConfigError("--resume needs the run database",
                                  hint="run `vdi train --resume ID` itself")
            db = open_db()
            from vdi_cli.pipeline.train_resume import resume_config

            config = resume_config(db, p["resume"], values)
        else:
            _require(**{k: values.get(k) for k in ("dataset", "annotations", "video_dir")})
            config = TrainConfig(**values).resolved()
    except ValidationError as exc:
        problems = "; ".join(
            (f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "")
            + e["msg"].removeprefix("Value error, ") for e in exc.errors())
        where = f" (with recipe '{used.name}', {used.path})" if used else ""
        raise ConfigError(f"invalid training options{where}: {problems}",
                          hint="`vdi train --list-options` lists the -o options") from exc
    return config, used, db


def _given(ctx: typer.Context) -> dict[str, Any]:
    """The options the user typed (not left at their defaults), as TrainConfig keys, with the
    `-o` overrides merged in (`-o head_options.b=2` merges with `-H a=1`)."""
    from vdi_cli.config import check_option_keys, parse_overrides
    from vdi_cli.pipeline.train_config import TrainConfig

    p = ctx.params
    given: dict[str, Any] = {}
    for param in _CONFIG_PARAMS:
        source = ctx.get_parameter_source(param)  # typer's own click: compare by name
        if source is None or source.name in ("DEFAULT", "DEFAULT_MAP"):
            continue
        key, value = _PARAM_KEYS.get(param, param), p[param]
        if param in ("head_option", "parser_option"):
            value = parse_overrides(value)
        elif param == "objective_option":
            value = _component_options(value, "objective")
        elif param == "no_objective":
            if not value:
                continue
            value = []
        elif param == "objective":
            value = list(value)
        given[key] = value
    overrides = parse_overrides(p["option"])
    check_option_keys(TrainConfig, overrides, "`vdi train --list-options` lists them",
                      noun="training option")
    return _merge(given, overrides)


def _require(**options: Any) -> None:
    from vdi_cli.errors import UsageError

    missing = [f"--{name.replace('_', '-')}" for name, value in options.items() if value is None]
    if missing:
        raise UsageError(f"missing option{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
                         hint="a new run needs --dataset, --annotations and --video-dir (or "
                         "a --recipe that names them); `--resume ID` continues a run with its "
                         "stored options")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
