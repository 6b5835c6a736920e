"""Built-in grounding heads: `mmn` (Mutual Matching Network, the head VDI builds on).

The package is torch-free at import: the factory is a lazy "module:function" string, so listing
heads (`vdi heads`, `vdi heads show mmn`) never imports torch. See `mmn_model` for the head's
interface (forward / loss / decode) and `mmn_config` for the presets.

The training recipes that name `mmn` (the paper's settings on Charades-STA and ActivityNet, their
baselines, the synthetic demo's and experiment's) ship here too, as `recipes/*.toml` package
data registered through `register_recipes`, so the core names no built-in component.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vdi_cli.hookspecs import hookimpl
from vdi_plugins.heads.mmn_config import MMNConfig
from vdi_plugins.heads.similarity_config import SimilarityConfig


@hookimpl
def register_heads(register: Any) -> None:
    register(
        "mmn",
        "vdi_plugins.heads.mmn_model:build_mmn",
        config=MMNConfig,
        description="MMN 2D-map grounding head (presets: charades N=16, activitynet N=64); "
        "build(cfg, video_dim=, text_dim=).",
        requires=("clip",),
        default_for="head",
        train_defaults="vdi_plugins.heads.mmn_config:train_defaults",
    )
    register(
        "clip-similarity",
        "vdi_plugins.heads.similarity:build_similarity",
        config=SimilarityConfig,
        description="Training-free: CLIP text-frame cosine, mean inside a moment minus mean "
        "outside, on a 2D map of windows with NMS (vdi retrieve without a checkpoint).",
        requires=("clip",),
        default_for="training-free-head",
    )


@hookimpl
def register_recipes(register: Any) -> None:
    for path in sorted((Path(__file__).parent / "recipes").glob("*.toml")):
        register(path)
