"""Checkpoints: a folder with `config.json` + `model.safetensors` (+ `train_state.pt` to resume).

`config.json` records everything needed to rebuild the model and to refuse a mismatch: backbone
id and weights id, feature sampling, parser config, head id and config, which plugins provided
them, vdi version. Tensors are safetensors (head.*, text.* and objective.<id>.*); only what
training changed is stored: text tensors left out (all of them while the tower is frozen) are
the backbone's pretrained ones, which loading takes from the backbone named by id and weights
id. The optimizer state is a plain dict of tensors loaded with `torch.load(weights_only=True)`:
nothing is ever unpickled; a training run keeps it in its newest epoch only.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from vdi_cli.errors import VdiError, param
from vdi_cli.store.hashes import hash_file as sha256_file  # the one file hasher

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
TRAIN_STATE = "train_state.pt"
FORMAT_VERSION = 1


def _umask() -> int:
    """The process umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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


def drop_train_state(folder: str | Path) -> int:
    """Delete a checkpoint's optimiser state (resume reads only the newest epoch's); returns the
    bytes freed. The weights and config stay, so the epoch still evaluates and retrieves."""
    path = Path(folder) / TRAIN_STATE
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    return size


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


def verify_weights(folder: str | Path, sha256: str | None) -> None:
    """Refuse weights whose hash is not the one the database recorded when it saved them
    (another database's run overwrote the folder, a copy went wrong, someone edited it)."""
    if not sha256:
        return
    path = Path(folder) / WEIGHTS
    if not path.is_file():
        raise VdiError(f"checkpoint weights '{path}' are missing",
                       hint="use another checkpoint of the run (`vdi runs show ID`)")
    actual = sha256_file(path)
    if actual != sha256:
        raise VdiError(
            f"checkpoint weights '{path}' are not the ones the database recorded (sha256 "
            f"{sha256[:12]}..., the file has {actual[:12]}...): the file was changed or "
            "overwritten since it was saved",
            hint="use another checkpoint of the run (`vdi runs show ID`), or retrain it")


def load_tensors(folder: str | Path, sha256: str | None = None) -> dict[str, Any]:
    """The checkpoint's tensors; `sha256` (the hash the database recorded) is checked first."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    verify_weights(folder, sha256)
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


def _registry_id(kind: str, component_id: str) -> str:
    """The registered id behind a component id (an id in a prefixed form, `open_clip:ARCH`, is
    its component's: `vdi_cli.defaults.registry_id`)."""
    if kind == "backbone":
        from vdi_cli.defaults import registry_id

        return registry_id(kind, component_id)
    return component_id


def provenance(kind: str, component_id: str) -> dict[str, Any]:
    """Which plugin (and distribution, version) provides a component now: recorded in every
    checkpoint, so a later load without that plugin can say what to install."""
    from vdi_cli.plugins import get_host
    from vdi_cli.registry import get_registry

    registry = get_registry(kind)
    rid = _registry_id(kind, component_id)
    if rid not in registry:
        return {"id": component_id}
    component = registry.get(rid)
    versions = {i.dist: i.version for i in get_host().infos}
    return {"id": component_id, "plugin": component.plugin,
            "distribution": component.distribution,
            "version": versions.get(component.distribution) or None}


def require_components(config: dict[str, Any], kinds: tuple[str, ...] = ("backbone", "head")
                       ) -> None:
    """Refuse a checkpoint whose backbone or head no installed plugin provides, naming the
    plugin and distribution that provided it at training time (when the checkpoint says)."""
    from vdi_cli.errors import UnknownComponentError
    from vdi_cli.registry import get_registry

    recorded = config.get("components") or {}
    for kind in kinds:
        cid = (config.get(kind) or {}).get("id")
        if not cid or _registry_id(kind, cid) in get_registry(kind):
            continue
        origin = recorded.get(kind) or {}
        dist = origin.get("distribution")
        if dist:
            version = f" {origin['version']}" if origin.get("version") else ""
            raise UnknownComponentError(
                f"the checkpoint's {kind} '{cid}' is not installed: it was provided by plugin "
                f"'{origin.get('plugin')}' of the distribution '{dist}{version}' when the "
                "checkpoint was trained",
                hint=f"install {dist}{version.replace(' ', '==')} (pip) and enable it "
                f"(VDI_PLUGINS, if set, must name it); `vdi plugins` lists what is loaded")
        raise UnknownComponentError(
            f"the checkpoint's {kind} '{cid}' is not installed (the checkpoint does not record "
            "which plugin provided it)",
            hint=f"install the plugin that registers {kind} '{cid}'; `vdi plugins` lists what "
            "is loaded")


def check_compatible(config: dict[str, Any], *, backbone: str | None = None,
                     weights: str | None = None, sampling: dict[str, Any] | None = None) -> None:
    """Refuse features or a backbone that differ from what the checkpoint was trained with."""
    trained = config.get("backbone", {})
    if backbone is not None and backbone != trained.get("id"):
        raise VdiError(
            f"the checkpoint was trained with backbone '{trained.get('id')}', "
            f"not '{backbone}'",
            hint=f"use {param('backbone', trained.get('id'))} (features must come from the same "
            "model)",
        )
    if weights is not None and weights != trained.get("weights"):
        raise VdiError(
            f"the checkpoint was trained on {trained.get('id')} weights "
            f"'{trained.get('weights')}', not '{weights}'",
            hint=f"pass the same {param('weights')} as in training",
        )
    if sampling is not None and sampling != config.get("sampling"):
        raise VdiError(
            f"the checkpoint was trained on features sampled with {config.get('sampling')}, "
            f"not {sampling}",
            hint="extract with the checkpoint's sampling (vdi retrieve/eval do this for you)",
        )
