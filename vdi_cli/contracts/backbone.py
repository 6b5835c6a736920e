"""The backbone contract (`register_backbones`): a cheap spec, then a loaded image-text model.

Extraction (`vdi extract`, `vdi retrieve` on a new video) needs frame features; training,
evaluation and retrieval need the text tower. The spec is separate from the loaded model so that
a fully cached extraction never loads weights: the cache key uses `spec.weights_id`.
`vdi_cli.backbones.LoadedBackbone` is a base class that implements the inherited members
(`preprocess`, `encode_frames`, `text_parameters`, `text_state_dict`, `load_text_state_dict`);
a backend sets the attributes and implements `encode_pixels`, `tokenize`, `encode_text` and
`named_text_parameters`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class BackboneFactory(Protocol):
    """How `vdi_cli.backbones.resolve_backbone` calls the registered factory."""

    def __call__(self, config: Any, *, weights: str | None = None,
                 backbone_id: str = "") -> BackboneSpec:
        """Build the spec (nothing loaded). `config` is the component's validated config (or
        the factory is called without it when the component has no config class); `weights`
        is a local checkpoint file or `local-dir:FOLDER` (`--weights`), `backbone_id` the id as
        the user wrote it (`open_clip:ARCH@TAG` reaches the `open-clip` component)."""
        ...


@runtime_checkable
class BackboneSpec(Protocol):
    """What the factory returns: cheap to build, loads on `load()`."""

    @property
    def id(self) -> str:
        """The backbone id, recorded with every feature row and checkpoint."""
        ...

    @property
    def weights_id(self) -> str:
        """Which weights, known before loading (a pretrained tag, `sha256:<hex>` of a file,
        `random:0`): part of the feature cache key, so a cached extraction never loads."""
        ...

    def load(self, device: str = "cpu", precision: str = "auto") -> LoadedBackbone:
        """The loaded model on `device` (`precision`: auto | fp32 | fp16). A spec may also take
        `text_only=True` (retrieval on cached features loads only the text tower)."""
        ...


@runtime_checkable
class LoadedBackbone(Protocol):
    """A loaded backbone: a frozen frame encoder and a trainable text encoder in one joint space
    of `embed_dim` dimensions. Shapes: N frames, D = embed_dim, HW = patch_grid[0] x [1]."""

    id: str
    """The id it was resolved from (checkpoints refuse another backbone's tensors)."""
    weights_id: str
    """As `BackboneSpec.weights_id`: stored with features and checkpoints."""
    embed_dim: int
    """D: heads and objectives are built with it (`video_dim=`, `text_dim=`, `dim=`)."""
    patch_grid: tuple[int, int]
    """(H, W) of the patch features; L_sd's `patch_count` is H * W."""
    image_size: int
    """The square input side in pixels that `preprocess` produces (recorded with features)."""
    device: str
    """The torch device string the model lives on; stages move batches there."""
    module: Any
    """The whole torch module (`.to()`, `.train()`, `.eval()`, state dicts)."""
    context_length: int
    """The text context in tokens, start and end tokens included (CLIP's 77, tiny-shapes' 32):
    `tokenize` without a length gives [B, context_length], and training checks its queries'
    length against it (`vdi_cli.clip_context.check_length`), not against CLIP's."""

    def preprocess(self, frames: Any) -> Any:
        """uint8 [N, H, W, 3] RGB -> float32 [N, 3, S, S] on the CPU (run in decoding
        threads by extraction; the base class resizes, centre-crops and normalises)."""
        ...

    def encode_pixels(self, pixels: Any) -> tuple[Any, Any]:
        """`preprocess` output -> (global [N, D], patches [N, HW, D]) float32 on `device`,
        without grad: the joint-space vectors extraction stores (not L2-normalised)."""
        ...

    def encode_frames(self, frames: Any) -> tuple[Any, Any]:
        """`encode_pixels(preprocess(frames))`: what a caller with raw frames uses."""
        ...

    def tokenize(self, texts: Sequence[str], context_length: int | None = None) -> Any:
        """Sentences -> LongTensor [B, L] (L = `context_length`, or the model's own when None);
        training and retrieval tokenize every query through it."""
        ...

    def encode_text(self, tokens: Any, pool: str = "eot") -> Any:
        """Tokens -> [B, D] float32 sentence vectors, differentiable (VDI trains the text tower).
        `pool="eot"` is CLIP's end-of-text vector; `"mean"` (needed only for `-o text_pool=mean`)
        the mean of the token states through the same projection."""
        ...

    def named_text_parameters(self) -> list[tuple[str, Any]]:
        """The text tower's (name, tensor) pairs: what training may update (`--text-layers`)
        and what a checkpoint stores under `text.`."""
        ...

    def text_parameters(self) -> list[Any]:
        """The tensors of `named_text_parameters` (inherited)."""
        ...

    def text_state_dict(self) -> dict[str, Any]:
        """The text tower's tensors by name, for checkpoints (inherited)."""
        ...

    def load_text_state_dict(self, state: dict[str, Any]) -> None:
        """Load a checkpoint's text tower; a `VdiError` when a name does not fit (inherited)."""
        ...
