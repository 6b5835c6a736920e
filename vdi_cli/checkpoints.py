"""Checkpoints: a folder with `config.json` + `model.safetensors` (+ `train_state.pt` to resume).

`config.json` records everything needed to rebuild the model and to refuse a mismatch: backbone
id and weights id, feature sampling, parser config, head id and config, vdi version. Tensors are
safetensors (head.*, text.* and objective.<id>.*); the optimizer state is a plain dict of tensors
loaded with `torch.load(weights_only=True)`: nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from vdi_cli.errors import VdiError

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
TRAIN_STATE = "train_state.pt"
FORMAT_VERSION = 1


def _umask() -> int:
    """The process umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(folder: str | Path, config: dict[str, Any], tensors: dict[str, Any],
                    train_state: dict[str, Any] | None = None) -> tuple[Path, str]:
    """Write atomically (a temp folder renamed into place); returns (folder, sha256 of weights)."""
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    contiguous = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    save_file(contiguous, str(tmp / WEIGHTS))
    (tmp / CONFIG).write_text(json.dumps({"format": FORMAT_VERSION, **config}, indent=1,
                                         sort_keys=True, default=str))
    if train_state is not None:
        torch.save(train_state, tmp / TRAIN_STATE)
    mode = 0o666 & ~_umask()  # safetensors writes 0600: others could not read the weights
    for path in tmp.iterdir():
        path.chmod(mode)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder, sha256_file(folder / WEIGHTS)


def stale_temporaries(run_folder: str | Path) -> list[Path]:
    """The `epoch-NNN.tmp/` folders `save_checkpoint` left in a run folder when its process was
    killed (SIGKILL, the OOM killer) before the rename; only call this for a run that is not
    writing any more."""
    root = Path(run_folder)
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("epoch-*.tmp") if p.is_dir() and not p.is_symlink())


def remove_stale_temporaries(run_folder: str | Path) -> tuple[list[str], int]:
    """Delete `stale_temporaries(run_folder)`; returns (their names, the bytes they held)."""
    names, freed = [], 0
    for path in stale_temporaries(run_folder):
        freed += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        shutil.rmtree(path, ignore_errors=True)
        names.append(path.name)
    return names, freed


def read_config(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    if folder.is_file() and folder.name == WEIGHTS:
        folder = folder.parent
    path = folder / CONFIG
    if not path.is_file():
        raise VdiError(
            f"'{folder}' is not a vdi checkpoint (no {CONFIG})",
            hint="pass a checkpoint folder written by `vdi train` (see `vdi runs show ID`)",
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise VdiError(f"checkpoint config '{path}' is corrupt: {exc}",
                       hint="use another checkpoint of the run") from exc


def load_tensors(folder: str | Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(folder) / WEIGHTS
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise VdiError(f"checkpoint weights '{path}' cannot be read: {exc}",
                       hint="use another checkpoint of the run") from exc


def load_train_state(folder: str | Path) -> dict[str, Any]:
    import torch

    path = Path(folder) / TRAIN_STATE
    if not path.is_file():
        raise VdiError(f"'{folder}' has no training state to resume from",
                       hint="resume from an epoch checkpoint of the run")
    return torch.load(path, map_location="cpu", weights_only=True)


def subset(tensors: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def check_compatible(config: dict[str, Any], *, backbone: str | None = None,
                     weights: str | None = None, sampling: dict[str, Any] | None = None) -> None:
    """Refuse features or a backbone that differ from what the checkpoint was trained with."""
    trained = config.get("backbone", {})
    if backbone is not None and backbone != trained.get("id"):
        raise VdiError(
            f"the checkpoint was trained with backbone '{trained.get('id')}', "
            f"not '{backbone}'",
            hint=f"use --backbone {trained.get('id')} (features must come from the same model)",
        )
    if weights is not None and weights != trained.get("weights"):
        raise VdiError(
            f"the checkpoint was trained on {trained.get('id')} weights "
            f"'{trained.get('weights')}', not '{weights}'",
            hint="pass the same --weights as in training",
        )
    if sampling is not None and sampling != config.get("sampling"):
        raise VdiError(
            f"the checkpoint was trained on features sampled with {config.get('sampling')}, "
            f"not {sampling}",
            hint="extract with the checkpoint's sampling (vdi retrieve/eval do this for you)",
        )
