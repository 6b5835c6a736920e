"""The built-in video reader (PyAV): sequential decoding with nearest-frame sampling.

Decoding goes straight through the stream (seeking per frame is slower and less exact with
long GOPs); only the sampled frames are converted to RGB. Duration comes from the stream, else the
container, else frames / rate, else a demux-only scan of the packets; the frame rate from the
stream's guessed rate, else its average or base rate. Frames without timestamps (raw elementary
streams) get index / fps.

Damaged files are decoded as far as they can be, as ffmpeg does: a packet that fails to decode
is skipped and counted, a stream that ends early (a download cut short) ends the frames there.
After `frames()` the reader's `damage` says what was lost (None for a clean file); the file counts
as corrupt only when fewer than MIN_DECODED (half) of the frames the container announces could be
decoded, or when _DECODE_ERROR_LIMIT packets in a row fail.

It is registered with `trylast=True`, so any other `open_video` plugin is asked first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from vdi_cli.hookspecs import hookimpl
from vdi_cli.video import (
    AUDIO_ONLY,
    CORRUPT,
    UNSUPPORTED_CODEC,
    Frame,
    FrameSampler,
    Sampling,
    VideoError,
    VideoInfo,
)

_DECODE_ERROR_LIMIT = 50  # consecutive undecodable packets before the file counts as corrupt
MIN_DECODED = 0.5  # fraction of the announced frames a damaged file must still give


def _av() -> Any:
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is in the video extra
        from vdi_cli.errors import VdiError

        raise VdiError(
            f"reading videos needs PyAV ({exc})",
            hint="pip install -c constraints.txt 'vdi[video]'",
        ) from exc
    return av


class PyAVReader:
    """Reads one file; `frames()` may be iterated once."""

    def __init__(self, path: str, sampling: Sampling) -> None:
        av = _av()
        self.path = path
        self.sampling = sampling
        self.damage: dict[str, Any] | None = None
        try:
            self._container = av.open(path)
        except av.error.FFmpegError as exc:
            raise VideoError(
                path,
                CORRUPT,
                f"cannot open the file as a video ({exc.strerror or exc})",
                hint="the file is damaged or not a media file; re-encode or re-download it",
            ) from exc
        try:
            self._stream = self._pick_stream()
            self.info = self._probe()
        except BaseException:
            self._container.close()
            raise

    def _pick_stream(self) -> Any:
        streams = self._container.streams
        if not streams.video:
            if streams.audio:
                raise VideoError(
                    self.path,
                    AUDIO_ONLY,
                    "the file has audio but no video stream",
                    hint="pass the video file, not its audio track",
                )
            raise VideoError(
                self.path,
                CORRUPT,
                "the file has no readable streams (truncated or damaged)",
                hint="re-encode or re-download it",
            )
        stream = streams.video[0]
        if stream.codec_context is None:
            raise VideoError(
                self.path,
                UNSUPPORTED_CODEC,
                "no decoder for this video's codec (unknown to this FFmpeg build)",
                hint="re-encode it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4",
            )
        if (os.cpu_count() or 1) > 4:  # frame threads pay off only with cores to spare
            stream.thread_type = "AUTO"
        return stream

    def _rate(self) -> float:
        s = self._stream
        for rate in (s.guessed_rate, s.average_rate, s.base_rate):
            if rate:
                return float(rate)
        return 0.0

    def _start(self) -> float:
        s = self._stream
        return float(s.start_time * s.time_base) if s.start_time is not None else 0.0

    def _probe(self) -> VideoInfo:
        s = self._stream
        fps = self._rate()
        source = "stream"
        duration = float(s.duration * s.time_base) if s.duration and s.time_base else 0.0
        if duration <= 0 and self._container.duration:
            duration, source = self._container.duration / 1_000_000, "container"
        if duration <= 0 and s.frames and fps:
            duration, source = s.frames / fps, "frames"
        frames = int(s.frames or 0)
        if duration <= 0:
            duration, frames, fps = self._scan(fps)
            source = "scan"
        if not fps and duration > 0 and frames:
            fps = frames / duration
        if not frames and fps:
            frames = round(duration * fps)
        return VideoInfo(
            path=self.path,
            duration=duration,
            fps=fps,
            width=int(s.codec_context.width or 0),
            height=int(s.codec_context.height or 0),
            num_frames=frames,
            codec=s.codec_context.name,
            extra={"duration_source": source},
        )

    def _scan(self, fps: float) -> tuple[float, int, float]:
        """Demux (no decode) to count packets and find the last timestamp; rewinds after."""
        av = _av()
        s = self._stream
        count, end = 0, 0.0
        try:
            for packet in self._container.demux(s):
                if packet.size == 0:
                    continue
                count += 1
                if packet.pts is not None and packet.time_base:
                    dur = packet.duration or 0
                    end = max(end, float((packet.pts + dur) * packet.time_base))
        except av.error.FFmpegError:
            pass
        self._container.close()
        self._container = av.open(self.path)
        self._stream = self._pick_stream()
        duration = end - self._start() if end > 0 else (count / fps if fps else 0.0)
        return duration, count, fps or (count / duration if duration else 0.0)

    def frames(self) -> Iterator[Frame]:
        av = _av()
        fps = self.info.fps or 25.0
        start = self._start()
        sampler = FrameSampler(self.sampling, self.info.duration or None)
        if self.sampling.num_frames is not None and not self.info.duration:
            return
        index, last_time, failures, lost_packets = 0, None, 0, 0
        stopped: str | None = None  # why the stream ended early, if it did
        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:  # the container ends early or is damaged
                stopped = str(exc.strerror or exc)
                break
            try:
                decoded = packet.decode()
                failures = 0
            except av.error.DecoderNotFoundError as exc:
                raise VideoError(
                    self.path,
                    UNSUPPORTED_CODEC,
                    f"no decoder for this video's codec ({exc.strerror or exc})",
                    hint="re-encode it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4",
                ) from exc
            except (av.error.FFmpegError, ValueError):
                failures += 1  # a damaged packet: skip it, like ffmpeg does
                lost_packets += 1
                if failures >= _DECODE_ERROR_LIMIT:
                    raise VideoError(
                        self.path,
                        CORRUPT,
                        f"{failures} packets in a row could not be decoded "
                        f"(after {index} good frames)",
                        hint="the file is damaged; re-encode or re-download it",
                    ) from None
                continue
            for frame in decoded:
                t = (
                    float(frame.pts * frame.time_base) - start
                    if frame.pts is not None and frame.time_base
                    else index / fps
                )
                last_time = t
                for k, picked, picked_t in sampler.push(t, (frame, index)):
                    yield self._to_frame(k, picked, picked_t)
                index += 1
        self._check_damage(index, lost_packets, stopped, last_time)
        if last_time is None:
            return
        for k, picked, picked_t in sampler.finish(last_time + 1.0 / fps):
            yield self._to_frame(k, picked, picked_t)

    def _check_damage(self, decoded: int, lost_packets: int, stopped: str | None,
                      last_time: float | None) -> None:
        """Set `damage` when frames were lost; raise when too few are left to use."""
        fps, duration = self.info.fps or 25.0, self.info.duration
        if stopped is None and last_time is not None and duration and \
                last_time + 2.0 / fps < duration:  # demuxing just stopped: a file cut short
            stopped = f"no data after {last_time:.1f} s of {duration:.1f} s"
        expected = max(self.info.num_frames, decoded)
        if not lost_packets and stopped is None and decoded >= expected:
            return
        self.damage = {
            "decoded_frames": decoded, "expected_frames": expected,
            "lost_frames": expected - decoded, "damaged_packets": lost_packets,
            "ended_early": stopped,
            "decoded_until": round(last_time, 3) if last_time is not None else None,
        }
        if decoded == 0 and stopped is None and not lost_packets:
            return  # a stream with no frames: the caller's zero-frames rule applies
        if decoded < MIN_DECODED * expected:
            why = f"the stream ends early: {stopped}" if stopped else \
                f"{lost_packets} damaged packets"
            raise VideoError(
                self.path,
                CORRUPT,
                f"only {decoded} of {expected} frames could be decoded ({why})",
                hint="the file is damaged or cut short; re-encode or re-download it",
            )

    @staticmethod
    def _to_frame(k: int, picked: tuple[Any, int], time: float) -> Frame:
        frame, source_index = picked
        return Frame(
            index=k,
            time=time,
            image=frame.to_ndarray(format="rgb24"),
            source_index=source_index,
        )

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> PyAVReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@hookimpl(trylast=True)
def open_video(path: str, options: Any) -> PyAVReader:
    return PyAVReader(path, Sampling.from_any(options))
