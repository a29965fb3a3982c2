"""Frames sampled per second: our decord sampler vs. the ffmpeg CLI's select filter on the same files; ratio last.

Both take the same N uniform frames per clip from the same videos and deliver them as RGB arrays,
one decoding thread each (the stage gets its parallelism from many files at once).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curators.decode import VideoFrames, fixed_spans, frame_indices_at, sample_times
from schemas.config import DecodeConfig


def make_videos(folder: Path, count: int, seconds: float) -> list[Path]:
    paths = []
    for i in range(count):
        path = folder / f"bench_{i}.mp4"
        # x264 defaults (keyframe every 250 frames at most, B-frames): what most real files look like
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                        f"testsrc2=size=640x360:rate=25:duration={seconds}", "-vf", f"hue=h={i * 40}",
                        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(path)], check=True)
        paths.append(path)
    return paths


def plan(path: Path, cfg: DecodeConfig, duration: float) -> list[int]:
    """Frame indices our sampler takes: N uniform frames per clip window."""
    frames = VideoFrames(str(path))
    indices = []
    for start, end in fixed_spans(duration, cfg.clip_seconds, cfg.max_clips_per_media):
        indices += frame_indices_at(frames.frame_starts, sample_times(start, end, cfg))
    return indices


def ours(path: Path, cfg: DecodeConfig, duration: float) -> np.ndarray:
    frames = VideoFrames(str(path))
    indices = []
    for start, end in fixed_spans(duration, cfg.clip_seconds, cfg.max_clips_per_media):
        indices += frame_indices_at(frames.frame_starts, sample_times(start, end, cfg))
    return frames.frames(indices)


def ffmpeg_select(path: Path, indices: list[int], width: int = 640, height: int = 360) -> np.ndarray:
    expr = "+".join(f"eq(n\\,{i})" for i in sorted(set(indices)))
    raw = subprocess.run(["ffmpeg", "-v", "error", "-threads", "1", "-i", str(path), "-vf", f"select='{expr}'",
                          "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-threads", "1",
                          "pipe:1"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def best_of(repeats: int, fn) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--frames-per-clip", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cfg = DecodeConfig(frames_per_clip=args.frames_per_clip, clip_seconds=10.0)
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp:
        videos = make_videos(Path(tmp), args.videos, args.seconds)
        plans = [plan(v, cfg, args.seconds) for v in videos]
        total = sum(len(set(p)) for p in plans)
        ours_s, ours_frames = best_of(args.repeats, lambda: [ours(v, cfg, args.seconds) for v in videos])
        ffmpeg_s, ffmpeg_frames = best_of(args.repeats, lambda: [ffmpeg_select(v, p) for v, p in zip(videos, plans)])
        for mine, theirs, p in zip(ours_frames, ffmpeg_frames, plans):
            assert len(theirs) == len(set(p)), "ffmpeg returned a different number of frames"
            # same frames up to colour conversion rounding
            assert float(np.abs(mine.astype(np.int16) - theirs.astype(np.int16)).mean()) < 3.0
    ours_rate, ffmpeg_rate = total / ours_s, total / ffmpeg_s
    print(f"videos: {args.videos} x {args.seconds:g}s 640x360@25, {args.frames_per_clip} frames per 10s clip, "
          f"{total} frames in all")
    print(f"ours (decord, frame-accurate): {ours_rate:.1f} frames/s ({ours_s:.3f}s)")
    print(f"ffmpeg CLI select filter:      {ffmpeg_rate:.1f} frames/s ({ffmpeg_s:.3f}s)")
    print(f"ratio ours/ffmpeg frames per second: {ours_rate / ffmpeg_rate:.2f}x")


if __name__ == "__main__":
    main()
