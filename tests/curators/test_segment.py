"""Segmentation by scene cut and by pauses between speech."""

from pathlib import Path

import numpy as np
import pytest
from media_fixtures import ffmpeg

from curators.decode import decode_asset
from curators.probe import probe_source
from curators.segment import pause_cut_points, scene_cut_times, speech_spans
from schemas.config import DecodeConfig, ProbePolicy


def three_shots(path: Path) -> Path:
    """Three 2-second shots of different solid colours."""
    ffmpeg("-f", "lavfi", "-i", "color=c=red:size=128x96:rate=10:duration=2",
           "-f", "lavfi", "-i", "color=c=blue:size=128x96:rate=10:duration=2",
           "-f", "lavfi", "-i", "color=c=green:size=128x96:rate=10:duration=2",
           "-filter_complex", "[0:v][1:v][2:v]concat=n=3:v=1[v]", "-map", "[v]", "-pix_fmt", "yuv420p", str(path))
    return path


def test_scene_cuts_are_found_at_shot_changes(tmp_path: Path):
    path = three_shots(tmp_path / "shots.mp4")
    assert scene_cut_times(str(path)) == pytest.approx([2.0, 4.0], abs=0.11)
    asset = probe_source(str(path), ProbePolicy())
    clips = decode_asset(asset, DecodeConfig(segmentation="scene", clip_seconds=3.0, frames_per_clip=2), tmp_path / "w")
    assert [v for c in clips for v in (c.start_s, c.end_s)] == pytest.approx([0, 2, 2, 4, 4, 6], abs=0.11)


def test_pause_cut_points_sit_between_regions():
    assert pause_cut_points([(0.0, 1.0), (2.0, 3.0), (3.4, 5.0)]) == [1.5, 3.2]


def test_speech_spans_cut_in_pauses(tmp_path: Path):
    # three 1.5 s "utterances" (a modulated tone the VAD hears as voice) separated by 1 s of silence
    rate = 16000
    t = np.arange(int(1.5 * rate)) / rate
    voice = (0.5 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)
    silence = np.zeros(rate, np.float32)
    audio = np.concatenate([voice, silence, voice, silence, voice])
    raw = tmp_path / "talk.raw"
    raw.write_bytes((audio * 32767).astype(np.int16).tobytes())
    wav = tmp_path / "talk.wav"
    ffmpeg("-f", "s16le", "-ar", "16000", "-ac", "1", "-i", str(raw), str(wav))
    spans = speech_spans(str(wav), 6.5, clip_seconds=3.0, max_clips=12)
    assert len(spans) >= 2
    pauses = [(1.5, 2.5), (4.0, 5.0)]
    for _, end in spans[:-1]:
        assert any(a - 0.3 <= end <= b + 0.3 for a, b in pauses), f"cut at {end} is not in a pause"
    assert spans[-1][1] == pytest.approx(6.5)
