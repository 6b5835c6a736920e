"""The grounding model used at train, eval and retrieve time: a backbone's text encoder + a head.

Inference needs nothing of VDI (paper: no extra cost at inference): a checkpoint restores the
adapted text tower and the head; frame features come from the (frozen) visual tower's cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vdi_cli.errors import VdiError


def trim_tokens(tokens: Any, pad_id: int = 0) -> Any:
    """Drop trailing columns that are padding in every row (exact for CLIP's causal text tower:
    later positions never affect earlier ones, and pooling reads, or averages up to, the
    end-of-text token)."""
    if tokens.ndim != 2 or tokens.shape[1] == 0:
        return tokens
    used = (tokens != pad_id).any(0).nonzero()
    last = int(used.max()) + 1 if used.numel() else 1
    return tokens[:, :last]


@dataclass
class GroundingModel:
    """backbone (LoadedBackbone, text tower possibly adapted) + head (nn.Module)."""

    backbone: Any
    head: Any
    head_id: str
    head_config: dict[str, Any]
    context_length: int | None = None
    text_pool: str = "eot"

    def encode_texts(self, texts: list[str]) -> Any:
        """[len(texts), D] sentence features through the backbone's text tower (differentiable)."""
        tokens = self.backbone.tokenize(texts, context_length=self.context_length)
        if getattr(self.backbone, "pad_token_id", 0) == 0:
            tokens = trim_tokens(tokens)
        if self.text_pool == "eot":  # plugin backbones written before `pool` existed still work
            return self.backbone.encode_text(tokens)
        return self.backbone.encode_text(tokens, pool=self.text_pool)

    def encode_unique(self, texts: list[str], grad: bool = True) -> Any:
        """Like encode_texts, but each distinct text is encoded once (short dynamic / static
        queries repeat a lot); `grad=False` builds no autograd graph."""
        import torch

        index: dict[str, int] = {}
        rows = [index.setdefault(t, len(index)) for t in texts]
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            feats = self.encode_texts(list(index))
        return feats[torch.tensor(rows, device=feats.device)]

    def scores(self, frames: Any, frame_mask: Any, texts: list[str], video_index: Any) -> Any:
        return self.head(frames, frame_mask, self.encode_texts(texts), video_index)

    def state_tensors(self) -> dict[str, Any]:
        out = {f"head.{k}": v for k, v in self.head.state_dict().items()}
        out.update({f"text.{k}": v for k, v in self.backbone.text_state_dict().items()})
        return out


def build_model(backbone: Any, head_id: str, head_options: dict[str, Any] | None,
                context_length: int | None = None, text_pool: str = "eot") -> GroundingModel:
    from vdi_cli.registry import get_component

    component = get_component("head", head_id)
    config = component.make_config(head_options or {})
    head = component.build(config, video_dim=backbone.embed_dim, text_dim=backbone.embed_dim)
    head.to(backbone.device)
    dumped = config.model_dump() if hasattr(config, "model_dump") else dict(head_options or {})
    return GroundingModel(backbone, head, head_id, dumped, context_length, text_pool)


def load_model(checkpoint: str | Path, device: str = "cpu", backbone: Any = None,
               sha256: str | None = None, text_only: bool = False
               ) -> tuple[GroundingModel, dict[str, Any]]:
    """Rebuild a trained model from a checkpoint folder; returns (model, checkpoint config).

    `backbone` reuses an already loaded LoadedBackbone (it must be the checkpoint's backbone);
    `sha256`, the weights hash the database recorded, is checked before anything is loaded."""
    from vdi_cli.backbones import load_backbone
    from vdi_cli.checkpoints import (
        check_compatible,
        load_tensors,
        read_config,
        require_components,
        subset,
        verify_weights,
    )

    folder = Path(checkpoint)
    if not folder.exists():
        raise VdiError(f"checkpoint '{folder}' does not exist",
                       hint="`vdi runs show ID` lists a training run's checkpoints")
    config = read_config(folder)
    require_components(config)  # before anything is loaded: name the plugin that is missing
    verify_weights(folder if folder.is_dir() else folder.parent, sha256)
    trained = config["backbone"]
    if backbone is None:
        backbone = load_backbone(trained["id"], weights=trained.get("weights_path"),
                                 device=device, options=trained.get("options"),
                                 text_only=text_only)
    check_compatible(config, backbone=backbone.id, weights=backbone.weights_id)
    model = build_model(backbone, config["head"]["id"], config["head"]["config"],
                        config.get("context_length"), config.get("text_pool", "eot"))
    tensors = load_tensors(folder if folder.is_dir() else folder.parent)
    head_state = subset(tensors, "head.")
    try:
        model.head.load_state_dict(head_state)
    except RuntimeError as exc:
        raise VdiError(f"the checkpoint's head does not fit '{config['head']['id']}': "
                       f"{str(exc).splitlines()[0]}",
                       hint="the checkpoint may come from another vdi version") from exc
    backbone.load_text_state_dict(subset(tensors, "text."))
    model.head.eval()
    return model, config
