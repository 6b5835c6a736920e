"""Image-text backbones: resolving an id to a spec, and the loaded backbone every stage uses.

Ids: a registered id (`clip-vit-b32`, `clip-vit-b16`, `clip-vit-l14`, ...), or a prefixed form a
plugin registers (`id_prefix=`, see `vdi_cli.defaults`): the built-ins' `open_clip:ARCH@TAG`
(any open_clip architecture and pretrained tag; `open_clip:ARCH` alone is a seeded random
initialisation) and `hf-clip:FOLDER_OR_HUB_ID` (a transformers `CLIPModel`). Without an id the
default is the backbone a plugin registers with `default_for="backbone"`.
`resolve_backbone` turns an id into a spec without loading anything (its `weights_id` is known
before loading, so a fully cached extraction never loads the model); `spec.load(device)` returns a
`LoadedBackbone`.

Torch is imported inside methods only: this module is part of the torch-free core.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from vdi_cli.compat.torchvision_shim import install_import_hook
from vdi_cli.errors import VdiError

# open_clip and transformers import torchvision, which needs the shim beside the CPU build of
# torch: applied when torchvision is first imported, by vdi or by the caller (imports nothing now)
install_import_hook()

RANDOM_WEIGHTS = "random:0"  # seeded random initialisation (tests, benchmarks)

# OpenAI CLIP's pixel statistics, the default when a model does not say otherwise.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class BackboneSpec(Protocol):
    """What a registered backbone factory returns: cheap to build, loads on `load()`."""

    id: str

    @property
    def weights_id(self) -> str: ...

    def load(self, device: str = "cpu", precision: str = "auto") -> LoadedBackbone: ...


class LoadedBackbone:
    """A loaded image-text model: frozen frame encoder plus trainable text encoder.

    Attributes (set by the backend):
      id          the backbone id it was resolved from (`clip-vit-b32`, `open_clip:ARCH@TAG`, ...)
      weights_id  the pretrained tag (`openai`), `sha256:<hex>` of a weights file, or `random:0`
      embed_dim   D, the joint image-text dimension
      patch_grid  (H, W) of the patch features (7 x 7 for ViT-B/32 at 224 px)
      image_size  the square input side in pixels
      device      torch device string; on cuda the visual tower runs in float16 unless
                  precision="fp32" (the text tower always stays float32, so it can be trained)
      module      the whole torch module (for `.to()`, `.train()`, state dicts)
      context_length  the text context in tokens, start and end tokens included (CLIP's 77,
                  tiny-shapes' 32): `tokenize` pads and cuts to it, and the length check of
                  training's queries counts against it (0: not stated, the CLIP default holds)

    Methods:
      preprocess(frames uint8 [N,H,W,3]) -> float32 [N,3,S,S] on the CPU (resize the short side
          with torch's antialiased bicubic on uint8, centre crop, normalise; within a few grey
          levels of open_clip's PIL transform): safe to run in a decoding thread.
      encode_pixels(pixels) -> (global [N,D], patches [N,H*W,D]) float32 on `device`, no grad.
      encode_frames(frames uint8 [N,H,W,3]) -> the same from raw RGB frames.
      tokenize(texts, context_length=None) -> LongTensor [B, L] (the model's default L if None).
      encode_text(tokens, pool="eot") -> [B,D] float32, differentiable (the text tower is
          trainable). pool "eot": CLIP's sentence vector (the end-of-text token); "mean": the
          mean of the final token states from the start token to the end token, through the
          same projection (TEXT_POOLS).
      text_parameters() / named_text_parameters() / text_state_dict() / load_text_state_dict().

    Global and patch features are the projected (joint-space) vectors, not L2-normalised: the
    global one is CLIP's image embedding, the patches are the vision tower's final tokens through
    the same final norm and projection.
    """

    id: str = ""
    weights_id: str = ""
    embed_dim: int = 0
    patch_grid: tuple[int, int] = (0, 0)
    image_size: int = 224
    device: str = "cpu"
    module: Any = None
    context_length: int = 0
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    resize_mode: str = "shortest"  # shortest (resize + centre crop) | squash
    visual_dtype: Any = None  # torch dtype of the visual tower

    def preprocess(self, frames: Any) -> Any:
        from vdi_cli.preprocess import preprocess_frames

        return preprocess_frames(frames, self.image_size, self.mean, self.std, self.resize_mode)

    def encode_pixels(self, pixels: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def encode_frames(self, frames: Any) -> tuple[Any, Any]:
        return self.encode_pixels(self.preprocess(frames))

    def tokenize(self, texts: Sequence[str], context_length: int | None = None) -> Any:
        raise NotImplementedError

    def encode_text(self, tokens: Any, pool: str = "eot") -> Any:
        raise NotImplementedError

    def named_text_parameters(self) -> list[tuple[str, Any]]:
        raise NotImplementedError

    def text_parameters(self) -> list[Any]:
        return [p for _, p in self.named_text_parameters()]

    def text_state_dict(self) -> dict[str, Any]:
        """The text tower's tensors (names as in `module.state_dict()`), for checkpoints."""
        names = {n for n, _ in self.named_text_parameters()}
        return {k: v for k, v in self.module.state_dict().items() if k in names}

    def load_text_state_dict(self, state: dict[str, Any]) -> None:
        names = {n for n, _ in self.named_text_parameters()}
        unknown = sorted(set(state) - names)
        if unknown:
            raise VdiError(
                f"the checkpoint's text encoder does not fit backbone '{self.id}' "
                f"(unexpected tensors: {', '.join(unknown[:5])})",
                hint="use the backbone the checkpoint was trained with",
            )
        self.module.load_state_dict(state, strict=False)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "weights": self.weights_id,
            "embed_dim": self.embed_dim,
            "patch_grid": list(self.patch_grid),
            "image_size": self.image_size,
            "device": self.device,
        }

    def _finish_pixels(self, pixels: Any) -> Any:
        import torch

        dtype = self.visual_dtype or torch.float32
        return pixels.to(self.device, dtype=dtype, non_blocking=True)


def use_half(device: str, precision: str) -> bool:
    """fp16 for the frozen visual tower on cuda (precision auto or fp16), fp32 elsewhere."""
    if precision not in ("auto", "fp16", "fp32"):
        raise VdiError(
            f"unknown precision '{precision}'", hint="use auto, fp16 or fp32"
        )
    if precision == "fp32":
        return False
    is_cuda = str(device).startswith("cuda")
    if precision == "fp16" and not is_cuda:
        raise VdiError("fp16 needs a cuda device", hint="use --device cuda, or precision fp32")
    return is_cuda


DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")
DEVICE_HINT = "--device takes cpu, cuda, cuda:N, mps or xpu"


def check_device(device: str) -> str:
    """Fail early, with a hint, for a device this torch cannot use: a string torch does not
    parse (`banana`), a type vdi does not run on (`meta`), an accelerator this machine or torch
    build lacks, or a CUDA index past the last GPU. Costs importing torch, no model: commands
    call it before loading one (torch's own error came only after the weights were loaded)."""
    import torch

    from vdi_cli.config import did_you_mean

    d = str(device)
    try:
        parsed = torch.device(d)
    except (RuntimeError, ValueError, TypeError) as exc:
        guess = did_you_mean(d.partition(":")[0].strip().lower(), DEVICE_TYPES)
        raise VdiError(f"unknown device '{d}'{guess}", hint=DEVICE_HINT) from exc
    if parsed.type not in DEVICE_TYPES:
        raise VdiError(f"device '{d}' is not one vdi runs on", hint=DEVICE_HINT)
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise VdiError(
                f"device '{d}' requested but this torch has no CUDA device",
                hint="use --device cpu, or install a CUDA build of torch",
            )
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            last = f" to cuda:{count - 1}" if count > 1 else ""
            raise VdiError(
                f"device '{d}' does not exist: this machine has {count} CUDA "
                f"device{'s' * (count != 1)} (cuda:0{last})",
                hint="pick an index below the device count, or use --device cuda",
            )
    if parsed.type == "mps" and not (
        hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    ):
        raise VdiError(f"device '{d}' is not available here", hint="use --device cpu")
    if parsed.type == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        raise VdiError(f"device '{d}' is not available here", hint="use --device cpu")
    return d


_sha_memo: dict[tuple[int, int, int, int], str] = {}
HASHES_FILE = "weight-hashes.json"
_MIN_PERSIST = 1 << 24  # files under 16 MB are hashed again; bigger ones are remembered


def file_sha256(path: str | Path) -> str:
    """sha256 of a weights file's content, memoised by its stat identity (device, inode, size,
    mtime_ns) in the process and, for files of 16 MB or more, in `VDI_HOME/weight-hashes.json`,
    so a cold start does not read a 600 MB checkpoint only to name its weights (0.45 s for
    ViT-B/32). A changed file has a new identity and is hashed again."""
    import json
    import os

    from vdi_cli.store.db import app_dir
    from vdi_cli.store.hashes import hash_file

    st = os.stat(path)
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _sha_memo:
        return _sha_memo[key]
    cache = app_dir() / HASHES_FILE
    text_key = ":".join(map(str, key))
    known: dict[str, str] = {}
    if st.st_size >= _MIN_PERSIST:
        try:
            known = json.loads(cache.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            known = {}
        if isinstance(known, dict) and isinstance(known.get(text_key), str):
            _sha_memo[key] = known[text_key]
            return known[text_key]
    _sha_memo[key] = hash_file(path)
    if st.st_size >= _MIN_PERSIST:
        known = known if isinstance(known, dict) else {}
        known[text_key] = _sha_memo[key]
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        try:  # a cache: failing to write it costs the next start a hash, nothing else
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(known), encoding="utf-8")
            os.replace(tmp, cache)
        except OSError:
            tmp.unlink(missing_ok=True)
    return _sha_memo[key]


def is_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) says downloads must not be tried."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return True
    return False


TEXT_POOLS = ("eot", "mean")


def mean_to_position(states: Any, last: Any) -> Any:
    """[B, L, W] token states -> [B, W]: the mean of rows 0..last[b] of each sentence (the start
    token through the end token; padding after it is left out)."""
    import torch

    keep = torch.arange(states.shape[1], device=states.device)[None, :] <= last[:, None]
    keep = keep.to(states.dtype)[..., None]
    return (states * keep).sum(1) / keep.sum(1)


def check_text_pool(pool: str) -> None:
    if pool not in TEXT_POOLS:
        raise VdiError(f"unknown text pooling '{pool}'",
                       hint=f"text_pool is one of {', '.join(TEXT_POOLS)}")


def backbone_component(backbone_id: str, options: dict[str, Any] | None = None
                       ) -> tuple[Any, dict[str, Any]]:
    """(registry component, config values) of `backbone_id`: an id in a registered prefixed
    form (`open_clip:ARCH@TAG`) is its component with the id's parts as values (the plugin's
    `parse_id`). Nothing is built, so `component.make_config(values)` checks the options
    cheaply."""
    from vdi_cli.defaults import prefixed_component
    from vdi_cli.registry import get_component

    values = dict(options or {})
    found = prefixed_component("backbone", backbone_id)
    if found is not None:
        component, parts = found
        values.update(parts)
        return component, values
    return get_component("backbone", backbone_id), values


def resolve_backbone(
    backbone_id: str | None,
    weights: str | None = None,
    options: dict[str, Any] | None = None,
) -> BackboneSpec:
    """The (unloaded) spec for `backbone_id`; `weights` is a local checkpoint file or
    `local-dir:FOLDER`; `options` are the component's config values (`-o key=value`). None:
    the backbone a plugin registers with `default_for="backbone"`."""
    if backbone_id is None:
        from vdi_cli.defaults import default_id

        backbone_id = default_id("backbone")
    component, values = backbone_component(backbone_id, options)
    return component.build(values or None, weights=weights, backbone_id=backbone_id)


def load_backbone(
    backbone_id: str | None = None,
    weights: str | None = None,
    device: str = "cpu",
    precision: str = "auto",
    options: dict[str, Any] | None = None,
    text_only: bool = False,
) -> LoadedBackbone:
    """Resolve and load in one call (`text_only`: see `load_spec`); no id: the default backbone
    (`vdi_cli.defaults`)."""
    return load_spec(resolve_backbone(backbone_id, weights, options), device=device,
                     precision=precision, text_only=text_only)


def load_spec(spec: Any, device: str = "cpu", precision: str = "auto",
              text_only: bool = False) -> LoadedBackbone:
    """Load a backbone spec. `text_only=True` asks for the text tower alone (retrieval on cached
    features, library search): a backend that can skip its image tower does (open_clip), one
    that cannot loads in full; either way `encode_text` gives the same vectors."""
    import inspect

    if text_only and "text_only" in inspect.signature(spec.load).parameters:
        return spec.load(device=device, precision=precision, text_only=True)
    return spec.load(device=device, precision=precision)
