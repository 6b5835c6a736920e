"""Reading videos: sampling options, the frame type, and `open_video` over the plugin hook.

A reader is whatever the first `open_video` hook implementation returns (the built-in one is the
PyAV reader in `vdi_plugins.video_pyav`). It decodes straight through the file (no per-frame
seeking) and yields the sampled frames one at a time, so a long video never sits in memory.

`Sampling` picks frames either at a fixed rate (`fps`: targets at 0, 1/fps, 2/fps, ... while
below the video's end) or a fixed count (`num_frames`: the centres of N equal segments of the
duration). Each target takes the decoded frame whose timestamp is nearest to it (the earlier one
on a tie), so timestamps are real presentation times, not the targets. `FrameSampler` is that rule
as a small state machine any reader can reuse.

Everything here is torch-free; numpy is only touched by readers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vdi_cli.errors import VdiError

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")
DEFAULT_FPS = 1.0

# Reasons a video could not be read, as recorded in run summaries.
MISSING = "missing"
CORRUPT = "corrupt"
ZERO_FRAMES = "zero-frames"
AUDIO_ONLY = "audio-only"
UNSUPPORTED_CODEC = "unsupported-codec"


class VideoError(VdiError):
    """A video that cannot be read. `reason` is one of missing, corrupt, zero-frames,
    audio-only, unsupported-codec; extraction records it per video and goes on."""

    def __init__(self, path: str | Path, reason: str, detail: str, hint: str | None = None):
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{path}: {detail}", hint=hint)


@dataclass(frozen=True)
class Sampling:
    """Which frames to take: `fps` (frames per second) or `num_frames` (uniform), not both."""

    fps: float | None = None
    num_frames: int | None = None

    def __post_init__(self) -> None:
        if self.fps is None and self.num_frames is None:
            object.__setattr__(self, "fps", DEFAULT_FPS)
        if self.fps is not None and self.num_frames is not None:
            raise VdiError(
                "give either a frame rate or a number of frames, not both",
                hint="use --fps N or --num-frames N",
            )
        if self.fps is not None:
            if not (self.fps > 0 and math.isfinite(self.fps)):
                raise VdiError(f"--fps must be positive, got {self.fps}", hint="e.g. --fps 1")
            object.__setattr__(self, "fps", float(self.fps))
        if self.num_frames is not None and self.num_frames < 1:
            raise VdiError(
                f"--num-frames must be at least 1, got {self.num_frames}",
                hint="e.g. --num-frames 32",
            )

    def to_dict(self) -> dict[str, Any]:
        return {"fps": self.fps} if self.fps is not None else {"num_frames": self.num_frames}

    def key(self) -> str:
        """Canonical JSON, the form stored in the `features.sampling` column (cache key)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_any(cls, value: Sampling | dict[str, Any] | str | None) -> Sampling:
        if value is None:
            return cls()
        if isinstance(value, Sampling):
            return value
        if isinstance(value, str):
            value = json.loads(value)
        return cls(fps=value.get("fps"), num_frames=value.get("num_frames"))


@dataclass
class VideoInfo:
    """What the container says (with fallbacks). `duration` in seconds; `num_frames` may be an
    estimate (0 when unknown)."""

    path: str
    duration: float
    fps: float
    width: int
    height: int
    num_frames: int = 0
    codec: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Frame:
    """One sampled frame: `image` is RGB uint8 [H, W, 3]; `time` its presentation time in seconds
    from the start of the stream; `index` its position in the sample, `source_index` in the
    decoded stream."""

    index: int
    time: float
    image: Any
    source_index: int = -1


class VideoReader(Protocol):
    """What an `open_video` hook implementation returns."""

    info: VideoInfo

    def frames(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...

    # Optional: `damage`, a dict set after `frames()` when a damaged file lost frames
    # (decoded_frames, expected_frames, lost_frames, damaged_packets, ended_early,
    # decoded_until); None or absent for a clean file.


class FrameSampler:
    """Nearest-frame selection over frames arriving in presentation order.

    `push(time, payload)` returns the (target index, payload, time) selections it could settle;
    `finish(end)` settles the rest: for `fps` the targets before `end`, for `num_frames` all of
    them (a short video repeats its last frame so the count is always N).
    """

    def __init__(self, sampling: Sampling, duration: float | None = None) -> None:
        self.sampling = sampling
        if sampling.num_frames is not None and not duration:
            raise ValueError("uniform sampling needs the duration")
        self.duration = duration
        self._k = 0
        self._prev: tuple[float, Any] | None = None

    def target(self, k: int) -> float | None:
        if self.sampling.fps is not None:
            return k / self.sampling.fps
        n = self.sampling.num_frames or 0
        return (k + 0.5) * float(self.duration or 0) / n if k < n else None

    def push(self, time: float, payload: Any) -> list[tuple[int, Any, float]]:
        if self._prev is not None and time < self._prev[0]:
            return []  # out-of-order timestamp from a damaged file: ignore the frame
        out = []
        while (t := self.target(self._k)) is not None and t <= time + 1e-9:
            prev = self._prev
            if prev is not None and (t - prev[0]) <= (time - t) + 1e-9:
                out.append((self._k, prev[1], prev[0]))
            else:
                out.append((self._k, payload, time))
            self._k += 1
        self._prev = (time, payload)
        return out

    def finish(self, end: float) -> list[tuple[int, Any, float]]:
        out = []
        if self._prev is None:
            return out
        while (t := self.target(self._k)) is not None:
            if self.sampling.fps is not None and t >= end - 1e-9:
                break
            out.append((self._k, self._prev[1], self._prev[0]))
            self._k += 1
        return out


def expected_count(sampling: Sampling, duration: float) -> int:
    """How many frames `sampling` takes from a video of `duration` seconds."""
    if sampling.num_frames is not None:
        return sampling.num_frames
    return max(1, math.ceil(duration * (sampling.fps or DEFAULT_FPS) - 1e-9))


# Name parts that mark a file still being written (older vdi versions wrote `name.tmp.mp4`;
# downloaders use `.part` / `.partial` / `.crdownload`). Such a file is never a video.
_PARTIAL_PARTS = {"tmp", "part", "partial", "crdownload"}


def is_video_name(path: str | Path) -> bool:
    """True for a name with a video extension that is neither hidden (a dot file: temporary
    files, macOS `._x.mp4` metadata) nor marked as partial (`x.tmp.mp4`, `x.part.mp4`), so a
    folder scan never takes a half-written file from a killed writer for a video."""
    name = Path(path).name
    if name.startswith(".") or Path(name).suffix.lower() not in VIDEO_EXTENSIONS:
        return False
    return not ({part.lower() for part in name.split(".")[1:-1]} & _PARTIAL_PARTS)


def find_videos(folder: str | Path) -> list[Path]:
    """The video files directly inside `folder`, sorted by name (see `is_video_name`)."""
    root = Path(folder)
    return sorted(p for p in root.iterdir() if is_video_name(p) and p.is_file())


def video_for_id(folder: str | Path, video_id: str) -> Path | None:
    """`folder/<video_id>.<ext>` for the known video extensions, or None."""
    for ext in VIDEO_EXTENSIONS:
        for cand in (ext, ext.upper()):
            path = Path(folder) / f"{video_id}{cand}"
            if path.is_file():
                return path
    return None


class _CheckedReader:
    """Wraps a reader so that a stream which yields nothing raises `VideoError(zero-frames)`."""

    def __init__(self, reader: Any, path: str) -> None:
        self._reader = reader
        self._path = path
        self.info: VideoInfo = reader.info

    def frames(self) -> Iterator[Frame]:
        count = 0
        for frame in self._reader.frames():
            count += 1
            yield frame
        if count == 0:
            raise VideoError(
                self._path,
                ZERO_FRAMES,
                "the video stream has no decodable frames",
                hint="check the file with ffprobe; re-encode it or drop it from the list",
            )

    @property
    def damage(self) -> dict[str, Any] | None:
        """What a reader that decodes damaged files lost (None: nothing, or not reported)."""
        return getattr(self._reader, "damage", None)

    def close(self) -> None:
        close = getattr(self._reader, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> _CheckedReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_video(path: str | Path, sampling: Sampling | dict[str, Any] | None = None) -> Any:
    """Open `path` with the first `open_video` plugin that takes it; returns a reader with
    `.info` and `.frames()` (usable as a context manager). Raises `VideoError` for a missing,
    corrupt, zero-frame, audio-only or unsupported file."""
    from vdi_cli.plugins import get_host

    path = Path(path)
    if not path.is_file():
        raise VideoError(path, MISSING, "no such video file", hint="check the path")
    options = Sampling.from_any(sampling)
    reader = get_host().hook.open_video(path=str(path), options=options)
    if reader is None:
        raise VideoError(
            path,
            UNSUPPORTED_CODEC,
            "no video reader plugin can open this file",
            hint="install the video extra: pip install -c constraints.txt 'vdi[video]'",
        )
    return _CheckedReader(reader, str(path))


def probe_video(path: str | Path) -> VideoInfo:
    """The container's duration, fps and size, without decoding frames."""
    reader = open_video(path)
    try:
        return reader.info
    finally:
        reader.close()
