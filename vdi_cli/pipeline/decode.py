"""One video -> a stream of preprocessed frame batches: what every decoder of `vdi extract`
runs, the background thread (`--workers 0`) and each decoding process (`--workers K`), so both
give the same batches, and so the same features, for the same video.

The first batch is a quarter of the batch size, so the model starts early; the rest are full.
Any failure comes out as a `VideoError` with its reason (an unexpected exception from a reader
is a `corrupt` file: one odd file must not stop the others).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from vdi_cli.video import CORRUPT, Sampling, VideoError, open_video


def preprocess_batch(preprocess: Callable[[Any], Any] | None, images: list[Any]) -> Any:
    """Preprocess frames, grouping runs of equal size (in case the resolution changes);
    with no `preprocess`, the raw uint8 frames (the model's process preprocesses them)."""
    import numpy as np

    if preprocess is None:
        return list(images)
    groups: list[list[Any]] = []
    for img in images:
        if groups and groups[-1][0].shape == img.shape:
            groups[-1].append(img)
        else:
            groups.append([img])
    parts = [preprocess(np.stack(g)) for g in groups]
    if len(parts) == 1:
        return parts[0]
    import torch

    return torch.cat(parts)


def decode_video(path: str, sampling: Sampling, batch_size: int,
                 preprocess: Callable[[Any], Any] | None) -> Iterator[tuple[Any, ...]]:
    """Yield ("start", info), then ("batch", pixels, times) per batch, then ("end", damage).
    Raises `VideoError` (an unexpected exception becomes one with reason `corrupt`)."""
    try:
        with open_video(path, sampling) as reader:
            yield ("start", reader.info)
            limit = max(1, batch_size // 4)
            images: list[Any] = []
            times: list[float] = []
            for frame in reader.frames():
                images.append(frame.image)
                times.append(frame.time)
                if len(images) == limit:
                    yield ("batch", preprocess_batch(preprocess, images), times)
                    images, times, limit = [], [], batch_size
            if images:
                yield ("batch", preprocess_batch(preprocess, images), times)
        yield ("end", getattr(reader, "damage", None))
    except VideoError:
        raise
    except GeneratorExit:
        raise
    except Exception as exc:  # noqa: BLE001 - an odd file must not stop the others
        raise VideoError(path, CORRUPT, f"{type(exc).__name__}: {exc}") from exc


def error_fields(exc: VideoError) -> tuple[str, str, str, str | None]:
    """A VideoError as plain values (it crosses process boundaries; its own pickling would
    call the constructor with the wrong arguments)."""
    return exc.path, exc.reason, exc.detail, exc.hint


def error_from_fields(fields: tuple[str, str, str, str | None]) -> VideoError:
    path, reason, detail, hint = fields
    return VideoError(path, reason, detail, hint=hint)
