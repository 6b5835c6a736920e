"""The `tiny-shapes` backbones: a tiny open_clip ViT pretrained (image-text, contrastive) on still
frames of the synthetic moving-shapes world, shipped with vdi so that the whole method runs
offline on a CPU. `tiny-shapes`: static captions only (no motion word, world versions 1-3).
`tiny-shapes-v2`: also stills with motion trails captioned with every verb synonym of world
version 4, the trained and the held-out ones (`vdi_plugins.synthetic.trails`). Reproduce the
weights with `python -m vdi_plugins.tiny_shapes.pretrain` (each info file holds the exact
command and seed).
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
# backbone id -> (weights, info file); one architecture, two pretrainings
RELEASES = {"tiny-shapes": (WEIGHTS, WEIGHTS_INFO),
            "tiny-shapes-v2": (HERE / "tiny-shapes-v2.safetensors",
                               HERE / "tiny-shapes-v2.info.json")}


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
    backbone_id = backbone_id or "tiny-shapes"
    shipped, _ = RELEASES.get(backbone_id, RELEASES["tiny-shapes"])
    if weights is None and not shipped.is_file():
        raise VdiError(f"the {backbone_id} weights are missing ({shipped})",
                       hint="reinstall vdi, or rebuild them: python -m "
                       f"vdi_plugins.tiny_shapes.pretrain --backbone {backbone_id}")
    return OpenClipSpec(OpenClipConfig(arch=ARCH), weights=weights or str(shipped),
                        backbone_id=backbone_id)


def build_v2(config: Any = None, weights: str | None = None, backbone_id: str | None = None,
             **kwargs: Any) -> Any:
    return build(config, weights, backbone_id or "tiny-shapes-v2", **kwargs)


@hookimpl
def register_backbones(register: Any) -> None:
    register("tiny-shapes", build, config=TinyShapesConfig,
             description="Tiny open_clip ViT (48 px, 6x6 patches, 128-d) pretrained on the "
             "synthetic shapes world; shipped, offline. The demo's backbone.",
             requires=("clip",), synthetic_only=True, default_for="offline-backbone")
    register("tiny-shapes-v2", build_v2, config=TinyShapesConfig,
             description="tiny-shapes pretrained again with motion-trail stills captioned with "
             "motion verbs (world version 4's synonyms, held-out ones included); shipped.",
             requires=("clip",), synthetic_only=True)
