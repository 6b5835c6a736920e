"""The transformers backend: `hf-clip:<folder or hub id>` loads a `CLIPModel`.

Global feature = `visual_projection(pooler_output)` (CLIP's image embedding); patch features =
the vision tower's last hidden state without the class token, through `post_layernorm` and the
same `visual_projection`, so both live in the joint space like the open_clip backbones'. The text
side is `text_projection(text_model(...).pooler_output)`. The tokenizer is the folder's own; a
folder without one (e.g. a bare `save_pretrained` of a model) falls back to open_clip's CLIP BPE
tokenizer, which is the same vocabulary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from vdi_cli.backbones import (
    CLIP_MEAN,
    CLIP_STD,
    LoadedBackbone,
    check_device,
    file_sha256,
    is_offline,
    use_half,
)
from vdi_cli.errors import VdiError
from vdi_cli.hookspecs import hookimpl


class HFClipConfig(BaseModel):
    model: str = Field(..., description="Local model folder or Hugging Face hub id.")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")


def _weight_files(folder: Path) -> list[Path]:
    return sorted(
        p for ext in ("*.safetensors", "*.bin") for p in folder.glob(ext) if p.is_file()
    )


class HFClipSpec:
    """An unloaded transformers CLIP model."""

    def __init__(
        self, config: HFClipConfig, weights: str | None = None, backbone_id: str | None = None
    ) -> None:
        if weights:
            raise VdiError(
                "hf-clip backbones take their weights from the folder in the id, not --weights",
                hint=f"use --backbone hf-clip:{weights}",
            )
        self.model = config.model
        self.revision = config.revision
        self.id = backbone_id or f"hf-clip:{config.model}"
        self._weights_id: str | None = None

    @property
    def folder(self) -> Path | None:
        path = Path(self.model).expanduser()
        return path if path.is_dir() else None

    @property
    def weights_id(self) -> str:
        if self._weights_id is None:
            folder = self.folder
            if folder is not None:
                files = _weight_files(folder)
                if not files:
                    raise VdiError(
                        f"no weights (*.safetensors, *.bin) in '{folder}'",
                        hint="save the model with CLIPModel.save_pretrained(folder)",
                    )
                digests = [file_sha256(f) for f in files]
                if len(digests) > 1:
                    import hashlib

                    digests = [hashlib.sha256("".join(digests).encode()).hexdigest()]
                self._weights_id = "sha256:" + digests[0]
            else:
                self._weights_id = f"hub:{self.model}@{self.revision or 'main'}"
        return self._weights_id

    def load(self, device: str = "cpu", precision: str = "auto") -> HFClipBackbone:
        from vdi_cli.compat.torchvision_shim import ensure_torchvision

        check_device(device)
        half = use_half(device, precision)
        ensure_torchvision()
        from transformers import CLIPModel

        local_only = self.folder is not None or is_offline()
        if self.folder is None and Path(self.model).expanduser().exists():
            raise VdiError(f"'{self.model}' is a file, not a model folder", hint="pass the folder")
        try:
            model = CLIPModel.from_pretrained(
                str(self.folder or self.model), revision=self.revision, local_files_only=local_only
            )
        except (OSError, ValueError) as exc:
            from huggingface_hub import constants

            where = (
                f"the folder '{self.folder}'"
                if self.folder is not None
                else f"the hub cache ({constants.HF_HUB_CACHE})"
            )
            offline = " and HF_HUB_OFFLINE=1 forbids downloading" if is_offline() else ""
            raise VdiError(
                f"cannot load the CLIP model '{self.model}' from {where}{offline}: "
                f"{str(exc).splitlines()[0]}",
                hint="pass a local folder saved with CLIPModel.save_pretrained: "
                "--backbone hf-clip:/path/to/folder",
            ) from exc
        return HFClipBackbone(self, model, device, half)

    def _preprocess_config(self) -> dict[str, Any]:
        folder = self.folder
        path: Path | None = folder / "preprocessor_config.json" if folder else None
        if folder is None:
            try:
                from huggingface_hub import hf_hub_download

                path = Path(
                    hf_hub_download(
                        self.model, "preprocessor_config.json", revision=self.revision,
                        local_files_only=True,
                    )
                )
            except Exception:  # noqa: BLE001 - optional file
                path = None
        if path is None or not path.is_file():
            return {}
        return json.loads(path.read_text(encoding="utf-8"))


class HFClipBackbone(LoadedBackbone):
    """A loaded transformers CLIPModel (see `LoadedBackbone` for the interface)."""

    def __init__(self, spec: HFClipSpec, model: Any, device: str, half: bool) -> None:
        import torch

        model.eval()
        model.to(device)
        if half:
            model.vision_model.half()
            model.visual_projection.half()
        self.module = model
        self.spec = spec
        self.id = spec.id
        self.weights_id = spec.weights_id
        self.device = device
        self.visual_dtype = torch.float16 if half else torch.float32
        vcfg = model.config.vision_config
        self.embed_dim = int(model.config.projection_dim)
        side = int(vcfg.image_size) // int(vcfg.patch_size)
        self.patch_grid = (side, side)
        pre = spec._preprocess_config()
        crop = pre.get("crop_size", vcfg.image_size)
        if isinstance(crop, dict):
            crop = crop.get("height", vcfg.image_size)
        self.image_size = int(crop)
        self.mean = tuple(pre.get("image_mean", CLIP_MEAN))  # type: ignore[assignment]
        self.std = tuple(pre.get("image_std", CLIP_STD))  # type: ignore[assignment]
        self.context_length = int(model.config.text_config.max_position_embeddings)
        self._tokenizer = self._load_tokenizer()

    def _load_tokenizer(self) -> Any:
        try:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(
                str(self.spec.folder or self.spec.model),
                revision=self.spec.revision,
                local_files_only=True,
            )
        except Exception:  # noqa: BLE001 - no tokenizer files: use CLIP's BPE from open_clip
            return None
        # without vocabulary files transformers builds an empty (2-token) tokenizer
        return tokenizer if len(tokenizer) > 1000 else None

    def encode_pixels(self, pixels: Any) -> tuple[Any, Any]:
        import torch

        with torch.no_grad():
            vm = self.module.vision_model
            out = vm(pixel_values=self._finish_pixels(pixels))
            proj = self.module.visual_projection
            pooled = proj(out.pooler_output)
            patches = proj(vm.post_layernorm(out.last_hidden_state[:, 1:]))
        return pooled.float(), patches.float()

    def tokenize(self, texts: Any, context_length: int | None = None) -> Any:
        texts = [texts] if isinstance(texts, str) else list(texts)
        length = context_length or self.context_length
        if self._tokenizer is not None:
            return self._tokenizer(
                texts, padding="max_length", truncation=True, max_length=length,
                return_tensors="pt",
            )["input_ids"]
        try:
            from vdi_cli.compat.torchvision_shim import ensure_torchvision

            ensure_torchvision()
            import open_clip
        except ImportError as exc:
            raise VdiError(
                f"'{self.spec.model}' has no tokenizer files and open_clip is not installed",
                hint="save the tokenizer into the folder (CLIPTokenizer.save_pretrained) or "
                "pip install -c constraints.txt 'vdi[clip]'",
            ) from exc
        return open_clip.tokenize(texts, context_length=length)

    def encode_text(self, tokens: Any, pool: str = "eot") -> Any:
        from vdi_cli.backbones import check_text_pool, mean_to_position

        check_text_pool(pool)
        tokens = tokens.to(self.device)
        out = self.module.text_model(input_ids=tokens)
        if pool == "eot":
            return self.module.text_projection(out.pooler_output).float()
        eos = getattr(self.module.config.text_config, "eos_token_id", 2)
        # where transformers' CLIP pools: the largest id (legacy eos id 2), else the first eos
        last = (tokens.argmax(-1) if eos == 2 else (tokens == eos).int().argmax(-1))
        return self.module.text_projection(
            mean_to_position(out.last_hidden_state, last)).float()

    def named_text_parameters(self) -> list[tuple[str, Any]]:
        return [
            (n, p)
            for n, p in self.module.named_parameters()
            if n.startswith(("text_model.", "text_projection."))
        ]


def build(config: HFClipConfig, weights: str | None = None, backbone_id: str | None = None):
    return HFClipSpec(config, weights=weights, backbone_id=backbone_id)


HF_CLIP_PREFIX = "hf-clip:"  # the id form hf-clip:FOLDER_OR_HUB_ID (registered as id_prefix)


def hf_clip_values(backbone_id: str) -> dict[str, Any]:
    """The `hf-clip` config values of an id `hf-clip:MODEL` (its `parse_id`)."""
    model = backbone_id[len(HF_CLIP_PREFIX) :]
    if not model:
        raise VdiError(
            "hf-clip needs a model folder or hub id after the prefix",
            hint="e.g. hf-clip:/models/clip-vit-base-patch32 or "
            "hf-clip:openai/clip-vit-base-patch32",
        )
    return {"model": model}


@hookimpl
def register_backbones(register: Any) -> None:
    register(
        "hf-clip",
        build,
        config=HFClipConfig,
        description="A transformers CLIPModel: use the id hf-clip:FOLDER_OR_HUB_ID.",
        requires=("hf",),
        id_prefix=HF_CLIP_PREFIX,
        parse_id=hf_clip_values,
    )
