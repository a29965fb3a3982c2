"""A clip as OpenAI chat content parts: pictures as data URLs with their time stamps, sound as its transcript or
as ``input_audio``; and the way back from such parts to pictures a local VLM takes."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from schemas.media import AnnotatedClip

ContentParts = list[dict]
"""OpenAI chat ``content`` parts: ``text``, ``image_url`` (a data URL) or ``input_audio``."""

IMAGE_MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
AUDIO_FORMATS = {".wav": "wav", ".mp3": "mp3", ".flac": "flac"}
DATA_URL_PREFIX = "data:"


def text_part(text: str) -> dict:
    return {"type": "text", "text": text}


def image_part(path: str | Path) -> dict:
    """The picture at ``path`` as a data URL part."""
    mime = IMAGE_MIME.get(Path(path).suffix.lower())
    if mime is None:
        raise ValueError(f"{path}: not a picture a chat server takes (jpg, png, webp)")
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return {"type": "image_url", "image_url": {"url": f"{DATA_URL_PREFIX}{mime};base64,{data}"}}


def audio_part(path: str | Path) -> dict:
    """The sound at ``path`` as an ``input_audio`` part (servers of omni models take wav and mp3)."""
    fmt = AUDIO_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: not a sound file a chat server takes (wav, mp3, flac)")
    return {"type": "input_audio", "input_audio": {"data": base64.b64encode(Path(path).read_bytes()).decode(),
                                                   "format": fmt}}


def spread(count: int, wanted: int) -> list[int]:
    """``wanted`` indices spread evenly over ``range(count)`` (all of them when there are fewer)."""
    if count <= wanted:
        return list(range(count))
    return [round(i * (count - 1) / (wanted - 1)) for i in range(wanted)] if wanted > 1 else [count // 2]


def transcript_lines(annotated: AnnotatedClip) -> str:
    """The clip's transcript, one ``[start-end s] words`` line per segment; empty without speech."""
    transcript = annotated.transcript
    if transcript is None or not transcript.segments:
        return ""
    return "\n".join(f"[{s.start_s:.1f}-{s.end_s:.1f} s] {s.text.strip()}" for s in transcript.segments)


def clip_parts(annotated: AnnotatedClip, *, frames: int, audio: str = "transcript",
               pictures: bool = True) -> ContentParts:
    """What a model sees and hears of a clip: its picture or ``frames`` frames (time stamps from the clip start),
    its transcript, and with ``audio="input_audio"`` its sound. ``pictures=False`` names the pictures in words
    instead (for a text-only model)."""
    clip = annotated.clip
    parts: ContentParts = []
    if clip.kind == "image":
        picture = clip.frame_paths[0] if clip.frame_paths else clip.media_path
        parts.append(image_part(picture) if pictures else text_part("[a picture]"))
    elif clip.kind == "video" and clip.frame_paths:
        chosen = spread(len(clip.frame_paths), frames)
        parts.append(text_part(f"A video clip of {clip.duration_s:.1f} s; frames follow, each after its time."))
        for i in chosen:
            parts.append(text_part(f"Frame at {clip.frame_times_s[i] - clip.start_s:.1f} s:"))
            parts.append(image_part(clip.frame_paths[i]) if pictures else text_part("[a frame]"))
    elif clip.kind == "audio":
        parts.append(text_part(f"An audio clip of {clip.duration_s:.1f} s."))
    lines = transcript_lines(annotated)
    if lines:
        parts.append(text_part(f"Transcript of what is said:\n{lines}"))
    elif clip.audio_path:
        parts.append(text_part("No speech was recognised in its sound."))
    if audio == "input_audio" and clip.audio_path:
        parts.append(audio_part(clip.audio_path))
    return parts


def decode_image_url(url: str):
    """The PIL picture of a data URL part (a local VLM gets pictures, not URLs)."""
    from PIL import Image

    if not url.startswith(DATA_URL_PREFIX) or ";base64," not in url:
        raise ValueError("only data URLs are read locally")
    with Image.open(io.BytesIO(base64.b64decode(url.split(";base64,", 1)[1]))) as image:
        return image.convert("RGB")
