"""Cut points for segmentation: scene cuts (ffmpeg's scene score) and pauses between speech (Silero VAD)."""

from __future__ import annotations

import re
import subprocess
from itertools import pairwise

import numpy as np

from curators.probe import Refusal

SCENE_THRESHOLD = 0.3
"""ffmpeg scene score (0-1) above which a frame starts a new shot."""
SEGMENT_TIMEOUT_S = 300.0


def scene_cut_times(path: str, threshold: float = SCENE_THRESHOLD) -> list[float]:
    """Timestamps (seconds) of frames that start a new shot."""
    cmd = ["ffmpeg", "-v", "info", "-nostdin", "-i", path, "-map", "0:v:0", "-an",
           "-vf", f"select='gt(scene,{threshold})',showinfo", "-f", "null", "-"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=SEGMENT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise Refusal("timeout", f"scene detection ran past {SEGMENT_TIMEOUT_S:g}s") from None
    if done.returncode != 0:
        raise Refusal("decode_error", "scene detection failed: " + (done.stderr.strip().splitlines() or ["?"])[-1])
    return [round(float(t), 3) for t in re.findall(r"pts_time:([0-9.]+)", done.stderr)]


def load_audio_16k(path: str, timeout_s: float = SEGMENT_TIMEOUT_S) -> np.ndarray:
    """The first audio stream as 16 kHz mono float32."""
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-i", path, "-map", "0:a:0", "-ac", "1", "-ar", "16000",
           "-f", "s16le", "pipe:1"]
    try:
        done = subprocess.run(cmd, capture_output=True, check=False, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise Refusal("timeout", f"audio extraction ran past {timeout_s:g}s") from None
    if done.returncode != 0:
        raise Refusal("decode_error", "audio extraction failed: " + done.stderr.decode(errors="replace")[-200:])
    return np.frombuffer(done.stdout, np.int16).astype(np.float32) / 32768.0


def speech_regions(audio: np.ndarray, min_silence_ms: int = 500) -> list[tuple[float, float]]:
    """(start, end) seconds of speech found by the Silero VAD that ships inside faster-whisper."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    chunks = get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=min_silence_ms))
    return [(c["start"] / 16000.0, c["end"] / 16000.0) for c in chunks]


def pause_cut_points(regions: list[tuple[float, float]]) -> list[float]:
    """The middle of each pause between speech regions: cutting there never splits a sentence."""
    return [round((a_end + b_start) / 2, 3) for (_, a_end), (b_start, _) in pairwise(regions)]


def speech_spans(path: str, duration_s: float, clip_seconds: float, max_clips: int) -> list[tuple[float, float]]:
    """Clip spans whose boundaries fall in pauses between speech (fixed windows where a speech run is long)."""
    from curators.decode import spans_from_cuts

    regions = speech_regions(load_audio_16k(path))
    cuts = pause_cut_points(regions)
    # keep only the pauses needed to stay under clip_seconds, so clips are as long as allowed
    chosen: list[float] = []
    last = 0.0
    for i, cut in enumerate(cuts):
        following = cuts[i + 1] if i + 1 < len(cuts) else duration_s
        if following - last > clip_seconds:
            chosen.append(cut)
            last = cut
    return spans_from_cuts(duration_s, chosen, clip_seconds, max_clips)
