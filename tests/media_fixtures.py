"""Small media made with ffmpeg/PIL for the media-stage tests (each file takes well under a second)."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", *args], check=True, capture_output=True, timeout=60)


def counter_video(path: Path, seconds: float = 2.0, fps: int = 10, size: str = "160x120", audio: bool = True,
                  vcodec: str | None = None, acodec: str | None = None, gop: int | None = None,
                  extra: tuple[str, ...] = ()) -> Path:
    """A video whose every frame differs (testsrc2 draws a moving pattern and a counter), with a tone."""
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}"]
    args += ["-pix_fmt", "yuv420p"]
    if vcodec:
        args += ["-c:v", vcodec]
    if gop:
        args += ["-g", str(gop)]
    if audio and acodec:
        args += ["-c:a", acodec]
    args += [*extra, "-shortest", str(path)]
    ffmpeg(*args)
    return path


def tone(path: Path, seconds: float = 1.5, channels: int = 1, rate: int = 44100, extra: tuple[str, ...] = ()) -> Path:
    layout = {1: "mono", 2: "stereo", 6: "5.1"}[channels]
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={rate}:duration={seconds}",
           "-af", f"aformat=channel_layouts={layout}", *extra, str(path))
    return path


def card_image(path: Path, size: tuple[int, int] = (200, 150), background=(30, 60, 210), shape=(220, 30, 30)) -> Path:
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.ellipse([w * 0.3, h * 0.3, w * 0.7, h * 0.7], fill=shape)
    image.save(path)
    return path


def speech_like_wav(path: Path, seconds: float = 1.0, rate: int = 16000, loud: bool = True) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    signal = 0.3 * np.sin(2 * np.pi * 220 * t) if loud else np.zeros_like(t)
    import wave

    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((signal * 32767).astype(np.int16).tobytes())
    return path


def unknown_codec_wav(path: Path) -> Path:
    """A RIFF/WAVE file whose format tag (0x7777) no decoder knows."""
    data = b"\x00" * 16000
    fmt = struct.pack("<HHIIHH", 0x7777, 1, 16000, 32000, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def subtitles_only_mkv(path: Path) -> Path:
    srt = path.with_suffix(".srt")
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    ffmpeg("-i", str(srt), str(path))
    srt.unlink()
    return path


def truncated_copy(src: Path, dst: Path, keep: float = 0.5) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst
