"""The video-reader contract (`open_video`, firstresult): a file -> sampled RGB frames.

`vdi_cli.video.open_video` calls the hook as `open_video(path=str, options=Sampling)`; the first
implementation that returns a reader wins (return None for a file you do not take); the built-in
PyAV reader runs last. The core wraps the reader: a stream that yields no frame becomes
`VideoError(zero-frames)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class VideoReader(Protocol):
    """A frame reader for one file, sampled by `options` (`fps` or `num_frames`)."""

    info: Any
    """A `vdi_cli.video.VideoInfo` (path, duration, fps, width, height, frame count, codec),
    known without decoding: extraction records it and plans the sampling with it."""

    def frames(self) -> Iterator[Any]:
        """Yield `vdi_cli.video.Frame`s: `image` RGB uint8 [H, W, 3], `time` in seconds
        (ascending, within the duration), `index` counting 0, 1, ... in yield order. With
        `fps` sampling the count is `vdi_cli.video.expected_count(options, duration)`, with
        `num_frames` exactly that many."""
        ...

    def close(self) -> None:
        """Release the file (called when extraction is done with it, also on errors)."""
        ...


@runtime_checkable
class DamageReportingReader(VideoReader, Protocol):
    """A reader that decodes damaged files and says what they lost (optional; PyAV's does)."""

    damage: Any
    """None, or a dict (set once `frames()` is exhausted) saying what a damaged file lost;
    extraction records it."""
