"""`vdi train --resume ID`: the stored configuration, what may change, and what a resumed run
inherits from the run it continues.

A resumed run continues the stored trajectory, so it runs with the configuration the parent's
checkpoint was trained with: `--resume ID` alone is enough. An option given with it that differs
from the stored value is refused before anything is loaded (a changed learning rate would
otherwise be recorded but never used; a changed head would not fit the weights; a changed
backbone would need new features), listing every difference. Only the options in `RESUMABLE`,
which decide how long and where training goes on but not what is trained, may change.

A resumed run is a new run row with its own checkpoint folder. It inherits the parent's best and
newest checkpoint rows (pointing at the parent's files: same epoch, path, sha256 and value), so
until a resumed epoch beats it the parent's best is the new run's best: `--run NEW` loads the
weights its "best epoch" names, and a run killed before its first epoch resumes from where its
parent stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vdi_cli.errors import ConfigError, VdiError
from vdi_cli.pipeline.train_config import TrainConfig

RESUMABLE = ("epochs", "patience", "keep_checkpoints", "device", "eval_batch_size",
             "feature_batch_size", "diagnostics_every", "diagnostics_spread_floor",
             "diagnostics_grad_floor")
# options added after runs were stored, with the value those runs trained with
_BEFORE = {"vdi_form": "paper", "objective_lr": "head", "objectives_frozen": "train"}
_PATHS = ("annotations", "video_dir", "val")


def resume_point(db: Any, run_id: int) -> dict[str, Any]:
    """The checkpoint row a resume of `run_id` starts from (its newest epoch); refuses a run
    that is not a training run or has no checkpoint."""
    from vdi_cli.store import get_run
    from vdi_cli.store.checkpoints import latest_checkpoint

    run = get_run(db, run_id)
    if run["command"] != "train":
        raise VdiError(f"run {run_id} was made by `vdi {run['command']}`, not `vdi train`: "
                       "there is nothing to resume",
                       hint="`vdi runs list --command train` shows the training runs")
    return latest_checkpoint(db, run_id)


def stored_config(db: Any, run_id: int) -> dict[str, Any]:
    """The training configuration run `run_id`'s newest checkpoint was trained with (the run
    row's recorded configuration for a checkpoint that does not carry one)."""
    from vdi_cli.checkpoints import read_config
    from vdi_cli.store.runs import recorded_config

    row = resume_point(db, run_id)
    train = read_config(row["path"]).get("train")
    if not train:
        train = recorded_config(db, run_id)
    if not train:
        raise VdiError(f"run {run_id}'s checkpoint records no training configuration",
                       hint="start a new run with the options you want (without --resume)")
    return {**_BEFORE, **train} if "vdi_form" not in train else dict(train)


def merge_given(stored: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The stored options with the given ones on top; dict-valued options merge key by key
    (`-H hidden_size=64` changes one head option, not all of them)."""
    out = dict(stored)
    for key, value in given.items():
        old = out.get(key)
        out[key] = (merge_given(old, value) if isinstance(old, dict) and isinstance(value, dict)
                    else value)
    return out


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _same(key: str, a: Any, b: Any) -> bool:
    if a == b:
        return True
    if key in _PATHS and a and b:
        return Path(str(a)).expanduser().resolve() == Path(str(b)).expanduser().resolve()
    return False


def differences(stored: dict[str, Any], config: TrainConfig) -> list[str]:
    """`key: stored -> now` for every option (nested ones dotted) that differs, RESUMABLE
    ones aside."""
    old = _flat({k: v for k, v in TrainConfig(**stored).resolved().model_dump().items()
                 if k not in RESUMABLE})
    new = _flat({k: v for k, v in config.resolved().model_dump().items() if k not in RESUMABLE})
    return [f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in sorted(set(old) | set(new))
            if not _same(key, old.get(key), new.get(key))]


def check_resume(db: Any, run_id: int, config: TrainConfig) -> dict[str, Any]:
    """Refuse a resume whose configuration differs from the stored one (listing every
    difference) or that has no epoch left to train; returns the checkpoint row to resume from.
    Reads only the store and a small JSON file, so it runs before any data or model is loaded."""
    from pydantic import ValidationError

    try:
        diffs = differences(stored_config(db, run_id), config)
    except ValidationError as exc:
        raise VdiError(f"run {run_id}'s stored configuration no longer validates: "
                       f"{exc.errors()[0]['msg']}",
                       hint="start a new run (without --resume)") from exc
    if diffs:
        raise ConfigError(
            f"--resume {run_id} continues with the stored options, and these differ: "
            + "; ".join(diffs),
            hint=f"drop them (`vdi train --resume {run_id}` alone uses the stored ones; "
            f"{', '.join(RESUMABLE)} may change), or start a new run without --resume")
    row = resume_point(db, run_id)
    epochs = int(config.resolved().epochs or 1)
    if epochs <= int(row["epoch"]):
        raise ConfigError(f"run {run_id} has already trained {row['epoch']} of {epochs} epochs",
                          hint=f"give more, e.g. --resume {run_id} --epochs {row['epoch'] + 1}")
    return row


def resume_config(db: Any, run_id: int, given: dict[str, Any]) -> TrainConfig:
    """`vdi train --resume ID [options]`: the stored configuration with the given options on
    top, checked by `check_resume`."""
    from pydantic import ValidationError

    try:
        config = TrainConfig(**merge_given(stored_config(db, run_id), given)).resolved()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid training options: {problems}",
                          hint="`vdi train --help` lists the options") from exc
    check_resume(db, run_id, config)
    return config


def inherit_checkpoints(db: Any, parent: int, run_id: int) -> None:
    """Copy the parent's best checkpoint row (flagged best) and its newest row (the one resumed
    from) into `run_id`."""
    from vdi_cli.store.checkpoints import best_checkpoint, copy_checkpoints, latest_checkpoint

    best, newest = best_checkpoint(db, parent), latest_checkpoint(db, parent)
    copy_checkpoints(db, run_id, best, [] if best["id"] == newest["id"] else [newest])
