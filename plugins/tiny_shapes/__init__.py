"""The `tiny-shapes` backbone: a tiny open_clip ViT pretrained (image-text, contrastive) on still
frames of the synthetic moving-shapes world with static captions, shipped with vdi so that the
whole method runs offline on a CPU. Reproduce the weights with
`python -m vdi_plugins.tiny_shapes.pretrain` (the exact command is in README and WEIGHTS_INFO).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from vdi_cli.hookspecs import hookimpl

ARCH = "vdi-tiny-shapes"
HERE = Path(__file__).resolve().parent
ARCH_JSON = HERE / f"{ARCH}.json"
WEIGHTS = HERE / "tiny-shapes.safetensors"
WEIGHTS_INFO = HERE / "tiny-shapes.info.json"


def register_arch() -> str:
    """Make open_clip know the architecture (idempotent)."""
    from vdi_cli.compat.torchvision_shim import ensure_torchvision

    ensure_torchvision()
    import open_clip

    if ARCH not in open_clip.list_models():
        open_clip.add_model_config(ARCH_JSON)
    return ARCH


class TinyShapesConfig(BaseModel):
    pass


def build(config: Any = None, weights: str | None = None, backbone_id: str | None = None,
          **_: Any) -> Any:
    from vdi_cli.errors import VdiError
    from vdi_plugins.backbones_open_clip import OpenClipConfig, OpenClipSpec

    register_arch()
    path = weights or str(WEIGHTS)
    if weights is None and not WEIGHTS.is_file():
        raise VdiError(f"the tiny-shapes weights are missing ({WEIGHTS})",
                       hint="reinstall vdi, or rebuild them: python -m "
                       "vdi_plugins.tiny_shapes.pretrain")
    return OpenClipSpec(OpenClipConfig(arch=ARCH), weights=path,
                        backbone_id=backbone_id or "tiny-shapes")


@hookimpl
def register_backbones(register: Any) -> None:
    register("tiny-shapes", build, config=TinyShapesConfig,
             description="Tiny open_clip ViT (48 px, 6x6 patches, 128-d) pretrained on the "
             "synthetic shapes world; shipped, offline. The demo's backbone.",
             requires=("clip",))
