"""Decode an accepted asset into clips: segment spans, sampled frames, 16 kHz mono audio, shard-ready media."""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import uuid
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from curators.probe import Refusal
from schemas.config import DecodeConfig
from schemas.media import Clip, MediaAsset, QuarantineRecord

STAGE = "decode"
FFMPEG_DETERMINISTIC = ["-threads", "1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
                        "-map_metadata", "-1"]
JPEG_QUALITY = 90
SHARD_MAX_SIDE = 1280
"""Longest side of video written to shards and of sampled frames; larger sources are scaled down."""
FFMPEG_TIMEOUT_S = 300.0


def shard_frame_size(width: int, height: int, max_side: int = SHARD_MAX_SIDE) -> tuple[int, int]:
    """Even frame size no larger than ``max_side`` on the longest side, keeping the aspect ratio."""
    scale = min(1.0, max_side / max(width, height))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def clip_id_for(media_id: str, start_s: float, end_s: float) -> str:
    """Content address of a span of a source: the same media and span always give the same id."""
    return hashlib.sha256(f"{media_id}:{start_s:.3f}:{end_s:.3f}".encode()).hexdigest()[:16]


def fixed_spans(duration_s: float, clip_seconds: float, max_clips: int) -> list[tuple[float, float]]:
    """Equal windows no longer than ``clip_seconds`` covering the media (at most ``max_clips`` of them)."""
    if duration_s <= 0:
        return [(0.0, 0.0)]
    count = max(1, math.ceil(duration_s / clip_seconds - 1e-9))
    step = duration_s / count
    spans = [(round(i * step, 3), round(duration_s if i == count - 1 else (i + 1) * step, 3)) for i in range(count)]
    return spans[:max_clips]


def spans_from_cuts(duration_s: float, cuts_s: list[float], clip_seconds: float, max_clips: int,
                    min_clip_s: float = 1.0) -> list[tuple[float, float]]:
    """Spans that start at the given cut points; pieces under ``min_clip_s`` merge into their neighbour,
    and pieces over ``clip_seconds`` are split into fixed windows."""
    bounds = [0.0] + sorted(c for c in cuts_s if min_clip_s <= c <= duration_s - min_clip_s) + [duration_s]
    merged = [bounds[0]]
    for b in bounds[1:-1]:
        if b - merged[-1] >= min_clip_s:
            merged.append(b)
    merged.append(duration_s)
    spans: list[tuple[float, float]] = []
    for start, end in pairwise(merged):
        for s, e in fixed_spans(end - start, clip_seconds, max_clips):
            spans.append((round(start + s, 3), round(start + e, 3)))
    return spans[:max_clips]


def sample_times(start_s: float, end_s: float, cfg: DecodeConfig,
                 keyframe_times: list[float] | None = None) -> list[float]:
    """Timestamps to sample in a span under the configured policy."""
    duration = end_s - start_s
    if cfg.frame_policy == "uniform":
        n = cfg.frames_per_clip
        return [start_s + (i + 0.5) * duration / n for i in range(n)]
    if cfg.frame_policy == "fps":
        n = max(1, min(256, int(duration * cfg.sample_fps + 1e-9)))
        return [start_s + (i + 0.5) / cfg.sample_fps if duration * cfg.sample_fps >= 1
                else start_s + duration / 2 for i in range(n)]
    inside = [t for t in (keyframe_times or []) if start_s <= t < end_s]
    if not inside:
        return [start_s]
    if len(inside) > cfg.frames_per_clip:
        picks = np.linspace(0, len(inside) - 1, cfg.frames_per_clip).round().astype(int)
        inside = [inside[i] for i in picks]
    return inside


def frame_indices_at(frame_starts: np.ndarray, times: list[float]) -> list[int]:
    """For each time, the index of the frame shown then (the last frame starting at or before it)."""
    idx = np.searchsorted(frame_starts, np.asarray(times) + 1e-6, side="right") - 1
    return [int(i) for i in np.clip(idx, 0, len(frame_starts) - 1)]


def run_ffmpeg(args: list[str], timeout_s: float = FFMPEG_TIMEOUT_S) -> None:
    """Run ffmpeg; a failure becomes a decode_error refusal carrying ffmpeg's last message."""
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-y", *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise Refusal("timeout", f"ffmpeg ran past {timeout_s:g}s") from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise Refusal("decode_error", lines[-1] if lines else f"ffmpeg exit {done.returncode}")


class VideoFrames:
    """Frame-accurate sampling from one video file with decord."""

    def __init__(self, path: str):
        import decord

        try:
            self._reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
        except (decord.DECORDError, RuntimeError) as exc:
            raise Refusal("decode_error", f"decord cannot open the video: {str(exc).splitlines()[0][:200]}") from None
        if len(self._reader) == 0:
            raise Refusal("decode_error", "video stream has no frames")
        self.frame_starts = self._reader.get_frame_timestamp(np.arange(len(self._reader)))[:, 0].astype(np.float64)

    def __len__(self) -> int:
        return len(self._reader)

    def keyframe_times(self) -> list[float]:
        return [float(self.frame_starts[i]) for i in self._reader.get_key_indices()]

    def frames(self, indices: list[int]) -> np.ndarray:
        """RGB frames (n, h, w, 3) at the given indices, in that order."""
        import decord

        unique = sorted(set(indices))
        try:
            batch = self._reader.get_batch(unique).asnumpy()
        except (decord.DECORDError, RuntimeError) as exc:
            raise Refusal("decode_error", f"decord failed on frames: {str(exc).splitlines()[0][:200]}") from None
        position = {index: k for k, index in enumerate(unique)}
        return batch[[position[i] for i in indices]]


def _save_frames(frames: np.ndarray, folder: Path) -> list[str]:
    paths = []
    for i, frame in enumerate(frames):
        path = folder / f"frame_{i:03d}.jpg"
        image = Image.fromarray(frame)
        size = shard_frame_size(image.width, image.height)
        if max(image.size) > SHARD_MAX_SIDE:
            image = image.resize(size, Image.BILINEAR)
        image.save(path, quality=JPEG_QUALITY)
        paths.append(str(path))
    return paths


def _audio_outputs(asset: MediaAsset, folder: Path, cfg: DecodeConfig, shard_audio: bool) -> tuple[list[str], str]:
    wav = folder / "audio.wav"
    args = ["-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(cfg.audio_sample_rate), "-c:a", "pcm_s16le",
            *FFMPEG_DETERMINISTIC, str(wav)]
    if shard_audio:
        channels = min(asset.channels or 1, 2)
        args = ["-map", "0:a:0", "-vn", "-ac", str(channels), "-c:a", "flac", *FFMPEG_DETERMINISTIC,
                str(folder / "clip.flac")] + args
    return args, str(wav)


def _decode_video_clip(asset: MediaAsset, path: str, span: tuple[float, float], frames: VideoFrames,
                       cfg: DecodeConfig, folder: Path) -> Clip:
    start, end = span
    times = sample_times(start, end, cfg, frames.keyframe_times() if cfg.frame_policy == "keyframes" else None)
    indices = frame_indices_at(frames.frame_starts, times)
    pixels = frames.frames(indices)
    frame_paths = _save_frames(pixels, folder)
    media = folder / "clip.mp4"
    outputs = ["-map", "0:v:0", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
               "-vf", "scale={}:{}".format(*shard_frame_size(pixels.shape[2], pixels.shape[1])),
               "-movflags", "+faststart"]
    audio_path = None
    if asset.audio_codec:
        outputs += ["-map", "0:a:0", "-c:a", "aac", "-b:a", "96k", "-ac", str(min(asset.channels or 1, 2))]
    outputs += [*FFMPEG_DETERMINISTIC, str(media)]
    if asset.audio_codec:
        extra, audio_path = _audio_outputs(asset, folder, cfg, shard_audio=False)
        outputs += extra
    run_ffmpeg(["-ss", f"{start:.3f}", "-i", path, "-t", f"{end - start:.3f}", *outputs])
    return Clip(clip_id=folder.name, media_id=asset.media_id, source_uri=asset.uri, kind="video",
                start_s=start, end_s=end, media_path=str(media), frame_paths=frame_paths,
                frame_times_s=[round(float(frames.frame_starts[i]), 4) for i in indices], audio_path=audio_path,
                width=shard_frame_size(pixels.shape[2], pixels.shape[1])[0],
                height=shard_frame_size(pixels.shape[2], pixels.shape[1])[1])


def _decode_audio_clip(asset: MediaAsset, path: str, span: tuple[float, float], cfg: DecodeConfig,
                       folder: Path) -> Clip:
    start, end = span
    outputs, wav = _audio_outputs(asset, folder, cfg, shard_audio=True)
    run_ffmpeg(["-ss", f"{start:.3f}", "-i", path, "-t", f"{end - start:.3f}", *outputs])
    return Clip(clip_id=folder.name, media_id=asset.media_id, source_uri=asset.uri, kind="audio",
                start_s=start, end_s=end, media_path=str(folder / "clip.flac"), audio_path=wav)


def _decode_image(asset: MediaAsset, path: str, folder: Path) -> Clip:
    try:
        with Image.open(path) as src:
            image = ImageOps.exif_transpose(src).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise Refusal("decode_error", f"image does not decode: {exc}") from None
    media = folder / "image.jpg"
    image.save(media, quality=95)
    return Clip(clip_id=folder.name, media_id=asset.media_id, source_uri=asset.uri, kind="image",
                start_s=0.0, end_s=0.0, media_path=str(media), frame_paths=[str(media)], frame_times_s=[0.0],
                width=image.width, height=image.height)


def clip_spans(asset: MediaAsset, cfg: DecodeConfig, path: str | None = None) -> list[tuple[float, float]]:
    """Source spans of the clips cut from an asset under the configured segmentation."""
    if asset.kind == "image":
        return [(0.0, 0.0)]
    if cfg.segmentation == "scene" and asset.kind == "video" and path and asset.duration_s > cfg.clip_seconds:
        from curators.segment import scene_cut_times

        return spans_from_cuts(asset.duration_s, scene_cut_times(path), cfg.clip_seconds, cfg.max_clips_per_media)
    if cfg.segmentation == "speech" and asset.audio_codec and path and asset.duration_s > cfg.clip_seconds:
        from curators.segment import speech_spans

        return speech_spans(path, asset.duration_s, cfg.clip_seconds, cfg.max_clips_per_media)
    return fixed_spans(asset.duration_s, cfg.clip_seconds, cfg.max_clips_per_media)


def open_video(path: str, scratch: Path) -> VideoFrames:
    """decord on the file itself, or, for containers decord cannot index (Ogg/Theora, some AVI), on an
    intermediate H.264 copy that keeps every frame and its timestamp."""
    try:
        return VideoFrames(path)
    except Refusal as first:
        scratch.mkdir(parents=True, exist_ok=True)
        intermediate = scratch / "intermediate.mp4"
        try:
            run_ffmpeg(["-i", path, "-map", "0:v:0", "-an", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0",
                        "-pix_fmt", "yuv420p", "-fps_mode", "passthrough", "-threads", "1", str(intermediate)])
        except Refusal:
            raise first from None
        return VideoFrames(str(intermediate))


def decode_local(asset: MediaAsset, path: str, cfg: DecodeConfig, work_dir: str | Path) -> list[Clip]:
    """Decode a local file into clips under ``work_dir/<clip_id>/``; raises Refusal for bad content."""
    root = Path(work_dir)
    spans = clip_spans(asset, cfg, path)
    scratch = root / f".intermediate-{asset.media_id}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        frames = open_video(path, scratch) if asset.kind == "video" else None
        return _decode_spans(asset, path, spans, frames, cfg, root)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _relocate(clip: Clip, partial: Path, final: Path) -> Clip:
    def move(path: str | None) -> str | None:
        return None if path is None else str(final / Path(path).relative_to(partial))

    return replace(clip, clip_id=final.name, media_path=move(clip.media_path),
                   frame_paths=[move(p) for p in clip.frame_paths], audio_path=move(clip.audio_path))


def _decode_spans(asset: MediaAsset, path: str, spans: list[tuple[float, float]], frames: VideoFrames | None,
                  cfg: DecodeConfig, root: Path) -> list[Clip]:
    """Each clip is written in a private folder renamed into place whole, so a reader never sees a
    half-written clip, and two sources with the same bytes decoding at once cannot clobber each other."""
    clips = []
    for span in spans:
        clip_id = clip_id_for(asset.media_id, *span)
        final = root / clip_id
        partial = root / f"{clip_id}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        partial.mkdir(parents=True)
        try:
            if asset.kind == "image":
                clip = _decode_image(asset, path, partial)
            elif asset.kind == "video":
                clip = _decode_video_clip(asset, path, span, frames, cfg, partial)
            else:
                clip = _decode_audio_clip(asset, path, span, cfg, partial)
            try:
                partial.rename(final)
            except OSError:
                if not final.is_dir():
                    raise
                # an identical clip landed first (same bytes, same span, same settings): keep that one
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        clips.append(_relocate(clip, partial, final))
    return clips


def decode_asset(asset: MediaAsset, cfg: DecodeConfig, work_dir: str | Path,
                 cache_dir: str | Path | None = None) -> list[Clip] | QuarantineRecord:
    """Decode one asset (fetching a remote one into ``cache_dir``); bad content becomes a quarantine row."""
    from curators.sources import local_copy

    try:
        path = str(local_copy(asset.uri, cache_dir))
        return decode_local(asset, path, cfg, work_dir)
    except Refusal as refusal:
        return QuarantineRecord(uri=asset.uri, reason=refusal.reason, detail=refusal.detail, stage=STAGE,
                                size_bytes=asset.size_bytes, sha256=asset.sha256)
    except OSError as exc:
        return QuarantineRecord(uri=asset.uri, reason="unreadable", detail=str(exc), stage=STAGE,
                                size_bytes=asset.size_bytes, sha256=asset.sha256)
