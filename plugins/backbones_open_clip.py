"""open_clip backbones: `clip-vit-b32` (the paper's), `clip-vit-b16`, `clip-vit-l14`, and the
generic `open-clip` component behind `open_clip:ARCH@TAG` ids.

Pretrained weights are resolved before the model is built: a file already in the Hugging Face
cache (or open_clip's URL cache) is used directly; offline (HF_HUB_OFFLINE=1) a missing file is an
immediate error that names the tag, the source, the cache folder and `--weights`; online, open_clip
downloads it. `--weights FILE` loads a local open_clip checkpoint into the architecture (with the
tag's QuickGELU setting, so an OpenAI checkpoint behaves as with the tag); `--weights
local-dir:FOLDER` loads an open_clip folder (open_clip_config.json + weights).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, create_model

from vdi_cli.backbones import (
    RANDOM_WEIGHTS,
    LoadedBackbone,
    check_device,
    file_sha256,
    is_offline,
    use_half,
)
from vdi_cli.errors import VdiError
from vdi_cli.hookspecs import hookimpl
from vdi_cli.log_filters import muted

LOCAL_DIR = "local-dir:"
OPEN_CLIP_PREFIX = "open_clip:"  # the id form open_clip:ARCH@TAG (registered as id_prefix)


def parse_open_clip_id(backbone_id: str) -> tuple[str, str | None]:
    """`open_clip:ARCH@TAG` -> (ARCH, TAG); `open_clip:ARCH` -> (ARCH, None)."""
    rest = backbone_id[len(OPEN_CLIP_PREFIX) :] if backbone_id.startswith(OPEN_CLIP_PREFIX) else ""
    arch, _, tag = rest.partition("@")
    if not arch or (backbone_id.count("@") and not tag):
        raise VdiError(
            f"backbone id '{backbone_id}' is not of the form open_clip:ARCH@TAG",
            hint="e.g. open_clip:ViT-B-32@openai (open_clip.list_pretrained() lists the pairs), "
            "or open_clip:ViT-B-32 for random weights",
        )
    return arch, tag or None


def open_clip_values(backbone_id: str) -> dict[str, Any]:
    """The `open-clip` config values of an id `open_clip:ARCH@TAG` (its `parse_id`)."""
    arch, tag = parse_open_clip_id(backbone_id)
    return {"arch": arch, "pretrained": tag}


class OpenClipConfig(BaseModel):
    arch: str = Field(..., description="open_clip architecture, e.g. ViT-B-32.")
    pretrained: str | None = Field(
        None, description="Pretrained tag (e.g. openai); none = seeded random weights."
    )
    cache_dir: str | None = Field(None, description="Download cache (default: the HF hub cache).")


def _preset(name: str, arch: str, tag: str) -> type[OpenClipConfig]:
    return create_model(  # type: ignore[call-overload, no-any-return]
        name,
        __base__=OpenClipConfig,
        arch=(str, Field(arch, description="open_clip architecture.")),
        pretrained=(str | None, Field(tag, description="Pretrained tag; none = random.")),
    )


PRESETS = {
    "clip-vit-b32": ("ViT-B-32", "openai", "CLIP ViT-B/32, OpenAI weights (the paper's backbone)."),
    "clip-vit-b16": ("ViT-B-16", "openai", "CLIP ViT-B/16, OpenAI weights (14 x 14 patches)."),
    "clip-vit-l14": ("ViT-L-14", "openai", "CLIP ViT-L/14, OpenAI weights (16 x 16 patches)."),
}


def _open_clip() -> Any:
    from vdi_cli.compat.torchvision_shim import ensure_torchvision

    ensure_torchvision()
    import open_clip

    return open_clip


def _local_dir_checkpoint(folder: Path) -> Path:
    if not (folder / "open_clip_config.json").is_file():
        raise VdiError(
            f"'{folder}' is not an open_clip model folder (no open_clip_config.json)",
            hint="pass a folder saved by open_clip (config + weights), or --weights FILE",
        )
    names = (
        "open_clip_model.safetensors",
        "open_clip_pytorch_model.safetensors",
        "open_clip_pytorch_model.bin",
        "model.safetensors",
        "pytorch_model.bin",
    )
    found = [folder / n for n in names if (folder / n).is_file()]
    found += sorted(p for ext in ("*.safetensors", "*.bin", "*.pth", "*.pt")
                    for p in folder.glob(ext))
    if not found:
        raise VdiError(
            f"no weights file in '{folder}'", hint="copy the checkpoint next to its config"
        )
    return found[0]


class OpenClipSpec:
    """An unloaded open_clip backbone: id, weights id, and `load()`."""

    def __init__(
        self, config: OpenClipConfig, weights: str | None = None, backbone_id: str | None = None
    ) -> None:
        tag = config.pretrained
        self.arch = config.arch
        self.tag = None if tag in (None, "", "none", "None", "random") else tag
        self.cache_dir = config.cache_dir
        self.weights = weights
        generic = f"open_clip:{self.arch}" + (f"@{self.tag}" if self.tag else "")
        preset = PRESETS.get(backbone_id or "")
        if preset is not None and preset[:2] != (self.arch, self.tag):
            backbone_id = None  # -o arch=/pretrained= changed the preset: name what it is
        if backbone_id in (None, "open-clip"):
            backbone_id = generic
        self.id: str = backbone_id  # type: ignore[assignment]
        self._weights_id: str | None = None

    def _weights_path(self) -> Path:
        raw = self.weights or ""
        path = Path(raw[len(LOCAL_DIR):] if raw.startswith(LOCAL_DIR) else raw).expanduser()
        if raw.startswith(LOCAL_DIR):
            if not path.is_dir():
                raise VdiError(f"weights folder '{path}' does not exist", hint="check the path")
            return _local_dir_checkpoint(path)
        if not path.is_file():
            raise VdiError(
                f"weights file '{path}' does not exist",
                hint="pass an open_clip checkpoint (.pt/.bin/.safetensors) or local-dir:FOLDER",
            )
        return path

    @property
    def weights_id(self) -> str:
        if self._weights_id is None:
            if self.weights:
                self._weights_id = "sha256:" + file_sha256(self._weights_path())
            else:
                self._weights_id = self.tag or RANDOM_WEIGHTS
        return self._weights_id

    def _tag_checkpoint(self, open_clip: Any) -> tuple[str, dict[str, Any]]:
        """The local path of the tag's weights, downloading only when online."""
        cfg = open_clip.get_pretrained_cfg(self.arch, self.tag)
        if not cfg:
            tags = open_clip.list_pretrained_tags_by_model(self.arch)
            raise VdiError(
                f"open_clip has no pretrained tag '{self.tag}' for {self.arch}",
                hint=f"known tags: {', '.join(tags) or '(none)'}; or pass --weights FILE",
            )
        hub = cfg.get("hf_hub", "")
        url = cfg.get("url", "")
        if hub:
            from huggingface_hub import constants, hf_hub_download

            repo, filename = os.path.split(hub)  # "org/name/" -> ("org/name", "")
            names = [filename] if filename else []
            names += ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
            cache = self.cache_dir or constants.HF_HUB_CACHE
            source = f"the Hugging Face hub repo '{repo}'"
            for name in names:
                try:
                    return hf_hub_download(
                        repo, name, cache_dir=self.cache_dir, local_files_only=True
                    ), cfg
                except Exception:  # noqa: BLE001 - not in the cache: try the next name
                    continue
        else:
            cache = self.cache_dir or os.path.expanduser("~/.cache/clip")
            source = url
            local = Path(cache) / os.path.basename(url)
            if local.is_file():
                return str(local), cfg
        message = (
            f"pretrained weights '{self.tag}' for {self.arch} are not in the cache ({cache}); "
            f"they come from {source}"
        )
        hint = (
            "download them on a connected machine (or copy the cache folder), or pass a local "
            f"checkpoint: --weights /path/to/{self.arch}.pt (or --weights local-dir:FOLDER)"
        )
        if is_offline():
            raise VdiError(message + " and HF_HUB_OFFLINE=1 forbids downloading", hint=hint)
        try:
            return open_clip.download_pretrained(cfg, cache_dir=self.cache_dir), cfg
        except Exception as exc:  # noqa: BLE001 - any network failure
            raise VdiError(f"{message}; the download failed ({exc})", hint=hint) from exc

    def load(self, device: str = "cpu", precision: str = "auto", text_only: bool = False
             ) -> OpenClipBackbone:
        """The model on `device`. `text_only=True` (the features are cached, only sentences
        need encoding) builds the architecture without initialising it and loads only the
        non-visual weights from the file: the image tower is never materialised, which is
        most of a cold start (ViT-B/32's 88 M image parameters). Random weights and local-dir
        folders take the full load (their text tower depends on the whole initialisation)."""
        import torch

        check_device(device)
        half = use_half(device, precision)
        open_clip = _open_clip()
        if self.arch not in open_clip.list_models() and not (
            self.weights or ""
        ).startswith(LOCAL_DIR):
            raise VdiError(
                f"open_clip has no architecture '{self.arch}'",
                hint="open_clip.list_models() lists them, e.g. ViT-B-32, ViT-B-16, ViT-L-14",
            )
        quick_gelu = False
        checkpoint: str | None = None
        if self.tag:
            quick_gelu = bool(open_clip.get_pretrained_cfg(self.arch, self.tag).get("quick_gelu"))
        if self.weights:
            checkpoint = str(self._weights_path())
        elif self.tag:
            checkpoint, cfg = self._tag_checkpoint(open_clip)
            quick_gelu = bool(cfg.get("quick_gelu"))
        name = self.arch
        if (self.weights or "").startswith(LOCAL_DIR):
            folder = Path(self.weights[len(LOCAL_DIR):]).expanduser()  # type: ignore[index]
            name, checkpoint = LOCAL_DIR + str(folder), None
        if text_only and checkpoint is not None:
            model = _text_only_model(open_clip, name, checkpoint, quick_gelu)
            if model is not None:
                loaded = OpenClipBackbone(self, model, device, half, open_clip, name)
                loaded.text_only = True
                return loaded
        # "initialized randomly" is what we asked for: muted for this call only (the caller's
        # logging is left as it was, `vdi_cli.log_filters`)
        randomly = checkpoint is None and not name.startswith(LOCAL_DIR)
        with torch.random.fork_rng(devices=[]), \
                muted("open_clip") if randomly else contextlib.nullcontext():
            torch.manual_seed(0)  # random weights are the same on every load
            try:
                model = open_clip.create_model(
                    name, pretrained=checkpoint, force_quick_gelu=quick_gelu, weights_only=True
                )
            except VdiError:
                raise
            except Exception as exc:  # noqa: BLE001 - bad checkpoint, shape mismatch
                raise VdiError(
                    f"could not load {self.id} with weights {checkpoint or self.weights}: {exc}",
                    hint="check that the checkpoint matches the architecture",
                ) from exc
        return OpenClipBackbone(self, model, device, half, open_clip, name)


class OpenClipBackbone(LoadedBackbone):
    """A loaded open_clip model (see `LoadedBackbone` for the interface)."""

    def __init__(
        self, spec: OpenClipSpec, model: Any, device: str, half: bool, open_clip: Any, name: str
    ) -> None:
        import torch
        from open_clip.transformer import VisionTransformer

        visual = model.visual
        if not isinstance(visual, VisionTransformer) or visual.proj is None:
            raise VdiError(
                f"backbone {spec.id}: only ViT architectures with a projection give patch "
                "features",
                hint="pick a ViT model, e.g. open_clip:ViT-B-32@openai",
            )
        visual.output_tokens = True
        model.eval()
        model.to(device)
        if half:
            visual.half()
        self.module = model
        self.id = spec.id
        self.weights_id = spec.weights_id
        self.device = device
        self.visual_dtype = torch.float16 if half else torch.float32
        self.embed_dim = int(visual.output_dim)
        self.patch_grid = tuple(int(g) for g in visual.grid_size)  # type: ignore[assignment]
        cfg = getattr(visual, "preprocess_cfg", {}) or {}
        size = cfg.get("size", visual.image_size)
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.mean = tuple(cfg.get("mean", self.mean))  # type: ignore[assignment]
        self.std = tuple(cfg.get("std", self.std))  # type: ignore[assignment]
        self.resize_mode = "squash" if cfg.get("resize_mode") == "squash" else "shortest"
        self._tokenizer = _tokenizer_for(open_clip, name)
        self.context_length = int(getattr(model, "context_length", 0)
                                  or getattr(self._tokenizer, "context_length", 0) or 77)
        self._plain_clip = isinstance(model, open_clip.CLIP)

    def encode_pixels(self, pixels: Any) -> tuple[Any, Any]:
        import torch

        if getattr(self, "text_only", False):
            raise VdiError(f"backbone {self.id} was loaded without its image tower",
                           hint="load it with text_only=False to encode frames")
        with torch.no_grad():
            visual = self.module.visual
            pooled, tokens = visual(self._finish_pixels(pixels))
            patches = tokens @ visual.proj
        return pooled.float(), patches.float()

    def tokenize(self, texts: Any, context_length: int | None = None) -> Any:
        texts = [texts] if isinstance(texts, str) else list(texts)
        if context_length is None:
            return self._tokenizer(texts)
        return self._tokenizer(texts, context_length=context_length)

    def encode_text(self, tokens: Any, pool: str = "eot") -> Any:
        from vdi_cli.backbones import check_text_pool, mean_to_position

        check_text_pool(pool)
        tokens = tokens.to(self.device)
        model = self.module
        if not self._plain_clip:
            if pool != "eot":
                raise VdiError(f"text_pool={pool} needs a plain open_clip CLIP model; "
                               f"'{self.id}' has a custom text tower",
                               hint="leave text_pool at eot for this backbone")
            full = getattr(model, "context_length", tokens.shape[1])
            if tokens.shape[1] < full:  # pad after the end token: same result
                tokens = torch_pad(tokens, full)
            return model.encode_text(tokens).float()
        from open_clip.transformer import text_global_pool

        n = tokens.shape[1]
        cast = model.transformer.get_cast_dtype()
        x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:n].to(cast)
        mask = model.attn_mask[:n, :n] if model.attn_mask is not None else None
        x = model.ln_final(model.transformer(x, attn_mask=mask))
        if pool == "mean":  # CLIP's end token has the largest id, as text_global_pool assumes
            x = mean_to_position(x, tokens.argmax(dim=-1))
        else:
            x = text_global_pool(
                x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None)
            )
        proj = model.text_projection
        if proj is not None:
            x = proj(x) if hasattr(proj, "weight") else x @ proj
        return x.float()

    def named_text_parameters(self) -> list[tuple[str, Any]]:
        return [
            (n, p)
            for n, p in self.module.named_parameters()
            if not n.startswith("visual.") and n not in ("logit_scale", "logit_bias")
        ]


def _tokenizer_for(open_clip: Any, name: str) -> Any:
    """The model's tokenizer. Importing open_clip already builds a default `SimpleTokenizer`
    (context 77, `open_clip.tokenizer._tokenizer`); a model that uses exactly that one (plain
    CLIP: no HF tokenizer, no tokenizer options, not SigLIP) shares it instead of building a
    second (reading and indexing the 49k BPE merges: 0.1-0.4 s of every cold start)."""
    tok_mod = getattr(open_clip, "tokenizer", None)
    shared = getattr(tok_mod, "_tokenizer", None)
    cfg = None if name.startswith(LOCAL_DIR) else open_clip.get_model_config(name)
    text = (cfg or {}).get("text_cfg", {})
    plain = (cfg is not None and "hf_tokenizer_name" not in text
             and not text.get("tokenizer_kwargs") and "siglip" not in name.lower()
             and int(text.get("context_length", 77)) == 77)
    if plain and type(shared) is getattr(tok_mod, "SimpleTokenizer", None) \
            and getattr(shared, "context_length", None) == 77:
        return shared
    return open_clip.get_tokenizer(name)


def _text_only_model(open_clip: Any, name: str, checkpoint: str, quick_gelu: bool) -> Any:
    """The architecture with storage allocated but not initialised, the checkpoint's non-visual
    tensors loaded into it, and the text side's non-persistent buffers (the causal mask)
    rebuilt; None when something else would be left unset (the caller loads in full)."""
    import torch

    # "initialized randomly": nothing is initialised at all (muted for this call only)
    with muted("open_clip"), torch.device("meta"):
        model = open_clip.create_model(name, pretrained=None, force_quick_gelu=quick_gelu,
                                       device="meta")
    model.to_empty(device="cpu")
    if checkpoint.endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(checkpoint, framework="pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys() if not k.startswith("visual.")}
    else:
        from open_clip.factory import load_state_dict

        state = {k: v for k, v in load_state_dict(checkpoint, weights_only=True).items()
                 if not k.startswith("visual.")}
    own = model.state_dict()
    # the file's tensors become the parameters (no second copy of the text tower) when they
    # already have the model's dtypes and shapes; otherwise they are copied in and cast
    assign = all(k in own and own[k].dtype == v.dtype and own[k].shape == v.shape
                 for k, v in state.items())
    result = model.load_state_dict(state, strict=False, assign=assign)
    if result.unexpected_keys or [k for k in result.missing_keys if not k.startswith("visual.")]:
        return None
    for mod_name, module in model.named_modules():
        if mod_name.startswith("visual"):
            continue
        for buf_name, buf in list(module.named_buffers(recurse=False)):
            key = f"{mod_name}.{buf_name}" if mod_name else buf_name
            if key in state:
                continue
            if buf_name == "attn_mask" and buf.dim() == 2 and buf.shape[0] == buf.shape[1]:
                n = buf.shape[0]  # open_clip's causal mask: -inf above the diagonal
                mask = torch.empty(n, n).fill_(float("-inf")).triu_(1)
                module.register_buffer("attn_mask", mask, persistent=False)
            else:
                return None
    return model


def torch_pad(tokens: Any, length: int) -> Any:
    import torch.nn.functional as F

    return F.pad(tokens, (0, length - tokens.shape[1]), value=0)


def build(config: OpenClipConfig, weights: str | None = None, backbone_id: str | None = None):
    """Factory for every open_clip component (returns an unloaded spec)."""
    return OpenClipSpec(config, weights=weights, backbone_id=backbone_id)


@hookimpl
def register_backbones(register: Any) -> None:
    for bid, (arch, tag, description) in PRESETS.items():
        register(
            bid,
            build,
            config=_preset(f"Config_{bid.replace('-', '_')}", arch, tag),
            description=description,
            requires=("clip",),
            # ViT-B/32 with OpenAI's weights: the paper's backbone, also the training-free one
            **({"default_for": ("backbone", "training-free-backbone")}
               if bid == "clip-vit-b32" else {}),
        )
    register(
        "open-clip",
        build,
        config=OpenClipConfig,
        description="Any open_clip ViT: use the id open_clip:ARCH@TAG (ARCH alone = random).",
        requires=("clip",),
        id_prefix=OPEN_CLIP_PREFIX,
        parse_id=open_clip_values,
    )
