"""Clips with real files (a picture, time-stamped frames, a wav) for the tests of the models that look at media."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path

from dialogue_fixtures import COLOURS, annotated_clip
from media_fixtures import speech_like_wav
from PIL import Image

FRAMES_PER_VIDEO = 3


def media_pool(folder: Path, n: int = 9):
    """The dialogue fixtures' clips, each with real files: a picture, frames with their times, a wav."""
    kinds = ("video", "image", "audio")
    out = []
    for i in range(n):
        annotated = annotated_clip(i, kinds[i % 3])
        clip = annotated.clip
        where = folder / clip.clip_id
        where.mkdir(parents=True)
        colour = COLOURS[i % len(COLOURS)]
        if clip.kind == "image":
            Image.new("RGB", (48, 36), colour).save(where / "image.jpg")
            clip = replace(clip, media_path=str(where / "image.jpg"), frame_paths=[str(where / "image.jpg")],
                           frame_times_s=[0.0])
        elif clip.kind == "video":
            frames = []
            for f in range(FRAMES_PER_VIDEO):
                Image.new("RGB", (48, 36), (40 * f, 200 - 60 * f, 30 * i % 256)).save(where / f"frame_{f:03d}.jpg")
                frames.append(str(where / f"frame_{f:03d}.jpg"))
            clip = replace(clip, frame_paths=frames, frame_times_s=[0.5 + f for f in range(FRAMES_PER_VIDEO)])
        if clip.kind != "image":
            clip = replace(clip, audio_path=str(speech_like_wav(where / "audio.wav", seconds=0.3)))
        out.append(replace(annotated, clip=clip))
    return out


def b64(path: str) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()
