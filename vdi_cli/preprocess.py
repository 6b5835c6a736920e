"""Frame preprocessing as a plain, picklable function of four numbers.

`LoadedBackbone.preprocess` is this function with the backbone's image size, mean, std and
resize mode. Keeping it free of the model means a decoding process (`vdi extract --workers K`)
can preprocess frames without loading the model: `FramePreprocess` carries the four values
across a process boundary, and gives bit-identical tensors to the in-process path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def preprocess_frames(frames: Any, image_size: int, mean: tuple[float, float, float],
                      std: tuple[float, float, float], resize_mode: str = "shortest") -> Any:
    """uint8 [N,H,W,3] (or [H,W,3]) -> float32 [N,3,S,S] on the CPU: resize the short side
    (or squash) with torch's antialiased bicubic on uint8, centre crop, normalise."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    arr = np.ascontiguousarray(np.asarray(frames))
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [N,H,W,3], got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    # NHWC memory seen as NCHW is channels-last: torch's fast uint8 antialiased resize path
    x = torch.from_numpy(arr).permute(0, 3, 1, 2)
    s = image_size
    h, w = x.shape[-2:]
    if resize_mode == "squash":
        size = (s, s)
    else:
        scale = s / min(h, w)
        size = (max(s, round(h * scale)), max(s, round(w * scale)))
    if (h, w) != size:
        x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
    top, left = (x.shape[-2] - s) // 2, (x.shape[-1] - s) // 2
    x = x[..., top : top + s, left : left + s]
    # One uint8 -> float32 copy into a contiguous NCHW tensor, then normalise in place:
    # (x / 255 - mean) / std == (x - 255 mean) / (255 std). This runs in the decoding thread,
    # where every millisecond is taken from the model on a small machine (~3x cheaper than
    # float() + div + sub + div + contiguous(), equal to 1e-6).
    out = torch.empty(x.shape, dtype=torch.float32)
    out.copy_(x)
    mean_t = torch.tensor(mean).view(1, 3, 1, 1) * 255.0
    std_t = torch.tensor(std).view(1, 3, 1, 1) * 255.0
    return out.sub_(mean_t).div_(std_t)


@dataclass(frozen=True)
class FramePreprocess:
    """`preprocess_frames` with a backbone's values bound: picklable, model-free."""

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize_mode: str = "shortest"

    def __call__(self, frames: Any) -> Any:
        return preprocess_frames(frames, self.image_size, self.mean, self.std, self.resize_mode)


def frame_preprocess(loaded: Any) -> FramePreprocess | None:
    """The model-free preprocessing of a loaded backbone, or None when its class overrides
    `preprocess` (a plugin's own transform, which only the backbone itself can run)."""
    from vdi_cli.backbones import LoadedBackbone

    if type(loaded).preprocess is not LoadedBackbone.preprocess:
        return None
    return FramePreprocess(int(loaded.image_size), tuple(loaded.mean), tuple(loaded.std),
                           str(loaded.resize_mode))
