"""Decode: segment spans, frame-accurate sampling, 16 kHz mono audio, shard-ready media, stable clip ids."""

import json
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from media_fixtures import card_image, counter_video, ffmpeg, tone

from curators.decode import (
    VideoFrames,
    clip_id_for,
    decode_asset,
    fixed_spans,
    frame_indices_at,
    sample_times,
    spans_from_cuts,
)
from curators.probe import probe_source
from schemas.config import DecodeConfig, ProbePolicy
from schemas.media import Clip, QuarantineRecord


def probe(path: Path):
    asset = probe_source(str(path), ProbePolicy())
    assert not isinstance(asset, QuarantineRecord), asset
    return asset


def streams(path: str) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format", path],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def reference_decode(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every frame of the video, decoded sequentially by the ffmpeg CLI, and each frame's timestamp."""
    info = streams(str(path))["streams"][0]
    w, h = info["width"], info["height"]
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0", "-fps_mode", "passthrough",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"], capture_output=True, check=True).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3).astype(np.float32)
    times = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries",
                            "frame=best_effort_timestamp_time", "-of", "csv=p=0", str(path)],
                           capture_output=True, text=True, check=True).stdout
    return frames, np.array([float(t.strip(",")) for t in times.split()])


def assert_sampled_frames_are_the_right_ones(path: Path, times: list[float]):
    reference, ref_times = reference_decode(path)
    frames = VideoFrames(str(path))
    # decord may list one trailing frame that the mp4 edit list hides from ffmpeg
    assert len(ref_times) <= len(frames.frame_starts) <= len(ref_times) + 1
    np.testing.assert_allclose(frames.frame_starts[: len(ref_times)], ref_times, atol=1e-3)
    expected = [int(np.searchsorted(ref_times, t + 1e-6, side="right") - 1) for t in times]
    indices = frame_indices_at(frames.frame_starts, times)
    assert indices == expected
    # ask in shuffled order too: a seeking decoder must not depend on the order of requests
    sampled = frames.frames(indices[::-1])[::-1].astype(np.float32)
    for frame, want in zip(sampled, expected):
        distances = np.abs(reference - frame).mean(axis=(1, 2, 3))
        assert int(distances.argmin()) == want, f"sampled frame is reference frame {distances.argmin()}, not {want}"
        assert distances[want] < 3.0


def test_uniform_samples_equal_a_full_sequential_decode(tmp_path: Path):
    # long GOP with B-frames: a fast keyframe seek would land on the wrong frame
    path = counter_video(tmp_path / "long_gop.mp4", seconds=4.0, fps=25, audio=False, gop=100)
    times = sample_times(0.3, 3.9, DecodeConfig(frames_per_clip=7))
    assert_sampled_frames_are_the_right_ones(path, times)


def test_variable_frame_rate_samples_follow_timestamps(tmp_path: Path):
    path = tmp_path / "vfr.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=5:duration=1", "-f", "lavfi",
           "-i", "testsrc2=size=160x120:rate=25:duration=1", "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]",
           "-map", "[v]", "-fps_mode", "passthrough", "-pix_fmt", "yuv420p", str(path))
    starts = VideoFrames(str(path)).frame_starts
    gaps = np.diff(starts)
    assert gaps.max() > 3 * gaps.min(), "fixture should be variable frame rate"
    assert_sampled_frames_are_the_right_ones(path, [0.05, 0.45, 0.95, 1.01, 1.5, 1.9])
    asset = probe(path)
    cfg = DecodeConfig(frames_per_clip=4)
    clips = decode_asset(asset, cfg, tmp_path / "work")
    assert len(clips) == 1 and not clips[0].audio_path
    shown = [float(starts[starts <= t + 1e-6].max()) for t in sample_times(0.0, asset.duration_s, cfg)]
    assert clips[0].frame_times_s == pytest.approx(shown, abs=1e-3)
    assert len(set(np.round(np.diff(clips[0].frame_times_s), 3))) > 1, "uniform times must land on uneven frames"


def test_sampling_policies():
    cfg = DecodeConfig(frames_per_clip=4, frame_policy="uniform")
    assert sample_times(0, 8, cfg) == [1, 3, 5, 7]
    assert sample_times(0, 3, DecodeConfig(frame_policy="fps", sample_fps=2)) == [0.25, 0.75, 1.25, 1.75, 2.25, 2.75]
    keys = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    keyframes = DecodeConfig(frame_policy="keyframes", frames_per_clip=8)
    assert sample_times(1.0, 4.5, keyframes, keys) == [1.0, 2.0, 3.0, 4.0]
    assert len(sample_times(0, 6, DecodeConfig(frame_policy="keyframes", frames_per_clip=3), keys)) == 3


def test_keyframe_policy_returns_keyframes(tmp_path: Path):
    path = counter_video(tmp_path / "k.mp4", seconds=3.0, fps=10, audio=False, gop=10)
    clips = decode_asset(probe(path), DecodeConfig(frame_policy="keyframes"), tmp_path / "work")
    assert clips[0].frame_times_s == pytest.approx([0.0, 1.0, 2.0])


def test_spans_cover_the_media_and_respect_the_window():
    spans = fixed_spans(25.0, 10.0, 12)
    assert spans == [(0.0, 8.333), (8.333, 16.667), (16.667, 25.0)]
    assert fixed_spans(5.0, 10.0, 12) == [(0.0, 5.0)]
    assert len(fixed_spans(100.0, 1.0, 12)) == 12
    assert spans_from_cuts(20.0, [4.0, 4.5, 15.0], 10.0, 12) == [(0.0, 4.0), (4.0, 9.5), (9.5, 15.0), (15.0, 20.0)]


def test_long_video_splits_into_clips_with_source_spans(tmp_path: Path):
    path = counter_video(tmp_path / "v.mp4", seconds=3.0, fps=10)
    asset = probe(path)
    cfg = DecodeConfig(clip_seconds=1.5, frames_per_clip=3)
    clips = decode_asset(asset, cfg, tmp_path / "work")
    assert [(c.start_s, c.end_s) for c in clips] == [(0.0, 1.5), (1.5, 3.0)]
    second = clips[1]
    assert all(1.5 <= t < 3.0 for t in second.frame_times_s)
    assert second.clip_id == clip_id_for(asset.media_id, 1.5, 3.0)
    assert Path(second.media_path).parent.name == second.clip_id
    info = streams(second.media_path)
    codecs = sorted(s["codec_name"] for s in info["streams"])
    assert codecs == ["aac", "h264"]
    assert float(info["format"]["duration"]) == pytest.approx(1.5, abs=0.15)
    with wave.open(second.audio_path) as wav:
        assert (wav.getframerate(), wav.getnchannels()) == (16000, 1)
        assert wav.getnframes() / 16000 == pytest.approx(1.5, abs=0.05)
    again = decode_asset(asset, cfg, tmp_path / "work2")
    assert [c.clip_id for c in again] == [c.clip_id for c in clips]
    assert Path(again[1].media_path).read_bytes() == Path(second.media_path).read_bytes()


def test_surround_audio_downmixes_to_16k_mono(tmp_path: Path):
    path = tone(tmp_path / "surround.m4a", seconds=1.0, channels=6, rate=48000, extra=("-c:a", "aac"))
    asset = probe(path)
    assert asset.channels == 6
    [clip] = decode_asset(asset, DecodeConfig(), tmp_path / "work")
    with wave.open(clip.audio_path) as wav:
        assert (wav.getframerate(), wav.getnchannels()) == (16000, 1)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), np.int16)
    assert np.abs(samples).max() > 1000, "downmix lost the signal"
    shard = streams(clip.media_path)["streams"][0]
    assert (shard["codec_name"], shard["channels"]) == ("flac", 2)


def test_image_clip_is_a_jpeg_with_its_size(tmp_path: Path):
    asset = probe(card_image(tmp_path / "card.webp", size=(240, 100)))
    [clip] = decode_asset(asset, DecodeConfig(), tmp_path / "work")
    assert (clip.kind, clip.width, clip.height, clip.start_s, clip.end_s) == ("image", 240, 100, 0.0, 0.0)
    assert Path(clip.media_path).read_bytes()[:3] == b"\xff\xd8\xff"
    assert clip.frame_paths == [clip.media_path]


@pytest.mark.parametrize("name,kind,args", [
    ("v.mkv", "video", ("-c:v", "libx264", "-c:a", "libvorbis")),
    ("v.webm", "video", ("-c:v", "libvpx", "-b:v", "200k", "-c:a", "libopus")),
    ("v.avi", "video", ("-c:v", "mpeg4", "-c:a", "mp3")),
    ("v.mov", "video", ("-c:v", "libx264", "-c:a", "aac")),
    ("v.ogv", "video", ("-c:v", "libtheora", "-c:a", "libvorbis")),
    ("a.mp3", "audio", ()),
    ("a.ogg", "audio", ("-c:a", "libvorbis")),
    ("a.opus", "audio", ("-c:a", "libopus")),
    ("a.wav", "audio", ()),
    ("i.jpg", "image", ()),
])
def test_every_format_decodes_to_shard_codecs(tmp_path: Path, name: str, kind: str, args: tuple):
    path = tmp_path / name
    if kind == "video":
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=128x96:rate=10:duration=1", "-f", "lavfi",
               "-i", "sine=frequency=440:sample_rate=48000:duration=1", *args, "-shortest", str(path))
    elif kind == "audio":
        ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1", *args, str(path))
    else:
        card_image(path)
    asset = probe(path)
    assert asset.kind == kind
    clips = decode_asset(asset, DecodeConfig(frames_per_clip=2), tmp_path / "work")
    assert isinstance(clips, list) and len(clips) == 1, clips
    clip: Clip = clips[0]
    expected = {"video": {"h264", "aac"}, "audio": {"flac"}, "image": {"mjpeg"}}[kind]
    assert {s["codec_name"] for s in streams(clip.media_path)["streams"]} == expected
    if kind != "image":
        assert clip.audio_path and Path(clip.audio_path).stat().st_size > 16000


def test_video_without_audio_has_no_audio_path(tmp_path: Path):
    asset = probe(counter_video(tmp_path / "silent.mp4", seconds=1.0, audio=False))
    assert asset.audio_codec is None
    [clip] = decode_asset(asset, DecodeConfig(frames_per_clip=2), tmp_path / "work")
    assert clip.audio_path is None
    assert [s["codec_type"] for s in streams(clip.media_path)["streams"]] == ["video"]


def test_content_that_fails_to_decode_is_quarantined(tmp_path: Path):
    image = card_image(tmp_path / "card.jpg", size=(400, 300))
    asset = probe(image)
    data = bytearray(image.read_bytes())
    image.write_bytes(bytes(data[: len(data) // 3]))  # cut after probing: the decoder sees a broken jpeg
    record = decode_asset(asset, DecodeConfig(), tmp_path / "work")
    assert isinstance(record, QuarantineRecord)
    assert (record.reason, record.stage) == ("decode_error", "decode")


def test_large_video_is_scaled_down_for_shards(tmp_path: Path):
    from curators.decode import shard_frame_size

    assert shard_frame_size(3840, 2160) == (1280, 720)
    assert shard_frame_size(321, 241) == (320, 240)
    asset = probe(counter_video(tmp_path / "wide.mp4", seconds=0.5, size="1600x400", audio=False))
    [clip] = decode_asset(asset, DecodeConfig(frames_per_clip=1), tmp_path / "work")
    info = streams(clip.media_path)["streams"][0]
    assert (info["width"], info["height"], clip.width, clip.height) == (1280, 320, 1280, 320)


def test_identical_sources_decoding_at_once_do_not_clobber_each_other(tmp_path: Path):
    from concurrent.futures import ThreadPoolExecutor

    asset = probe(counter_video(tmp_path / "v.mp4", seconds=1.0))
    cfg = DecodeConfig(frames_per_clip=2)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: decode_asset(asset, cfg, tmp_path / "work"), range(4)))
    assert all(isinstance(r, list) for r in results), results
    assert len({r[0].media_path for r in results}) == 1
    clip = results[0][0]
    assert streams(clip.media_path)["streams"], "the shared clip is whole"
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == [clip.clip_id], "no partial folders left"
