"""Visual facts that need no downloaded weights: named dominant colours, brightness, motion, cuts, OCR text."""

from __future__ import annotations

import io
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from schemas.config import VisualConfig
from schemas.media import Clip, VisualFacts

ANALYSIS_SIZE = 96
"""Frames are measured at this size: colours and motion need no more pixels."""
SCENE_CUT_DIFFERENCE = 0.25
"""Mean absolute difference (0-1) between neighbouring sampled frames that counts as a cut."""
OCR_TIMEOUT_S = 30.0
OCR_THREADS = {"OMP_THREAD_LIMIT": "1"}
"""tesseract on one OpenMP thread: the pipeline reads many frames at once, and tesseract's own threads cost more
CPU than they save (measured: 132 vs 170 CPU-ms per synth still, the same words). ``OMP_NUM_THREADS`` does not
limit it."""
# Hue ranges in degrees (upper bounds) and their colour names; red wraps around 0.
HUE_NAMES = ((15, "red"), (40, "orange"), (70, "yellow"), (165, "green"), (195, "cyan"), (255, "blue"),
             (290, "purple"), (345, "pink"), (360, "red"))


Frame = str | BinaryIO
"""An image to read: a path, or its bytes as an open binary file."""


def load_frames(paths: Sequence[Frame], size: int = ANALYSIS_SIZE) -> np.ndarray:
    """Frames as float RGB arrays in [0, 1], shape (n, size, size, 3)."""
    frames = []
    for path in paths:
        with Image.open(path) as image:
            frames.append(np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32))
    return np.stack(frames) / 255.0


COLOR_NAMES = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink", "brown", "gray", "white", "black")
_HUE_BOUNDS = [bound for bound, _ in HUE_NAMES]
_HUE_CODES = np.array([COLOR_NAMES.index(name) for _, name in HUE_NAMES])
_ORANGE, _BROWN, _GRAY, _WHITE, _BLACK = (COLOR_NAMES.index(n) for n in ("orange", "brown", "gray", "white", "black"))


def color_codes(rgb: np.ndarray) -> np.ndarray:
    """Every pixel of an (..., 3) array in [0, 1] as the index of its colour word in ``COLOR_NAMES``."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    high = rgb.max(axis=-1)
    low = rgb.min(axis=-1)
    spread = high - low
    saturation = np.where(high > 0, spread / np.maximum(high, 1e-6), 0.0)
    safe = np.maximum(spread, 1e-6)
    hue = np.where(high == r, ((g - b) / safe) % 6, np.where(high == g, (b - r) / safe + 2, (r - g) / safe + 4)) * 60.0
    codes = _HUE_CODES[np.clip(np.searchsorted(_HUE_BOUNDS, hue, side="right"), 0, len(_HUE_CODES) - 1)]
    codes[(codes == _ORANGE) & (high < 0.6)] = _BROWN
    grey = saturation < 0.2
    codes[grey] = _GRAY
    codes[grey & (high > 0.8)] = _WHITE
    codes[high < 0.2] = _BLACK
    return codes


def name_colors(rgb: np.ndarray) -> np.ndarray:
    """Name every pixel of an (..., 3) array in [0, 1] with one of a dozen basic colour words."""
    return np.array(COLOR_NAMES, dtype=object)[color_codes(rgb)]


def dominant_colors(frames: np.ndarray, max_colors: int = 3, min_share: float = 0.05) -> list[tuple[str, float]]:
    """(name, share of pixels) of the most frequent named colours, most frequent first (ties by name)."""
    counts = np.bincount(color_codes(frames).ravel(), minlength=len(COLOR_NAMES))
    shares = counts / counts.sum()
    ranked = sorted(((COLOR_NAMES[i], float(shares[i])) for i in np.flatnonzero(counts)),
                    key=lambda item: (-item[1], item[0]))
    return [(name, round(share, 4)) for name, share in ranked if share >= min_share][:max_colors]


def mean_brightness(frames: np.ndarray) -> float:
    """Mean luma (Rec. 601) in [0, 1]."""
    luma = frames[..., 0] * 0.299 + frames[..., 1] * 0.587 + frames[..., 2] * 0.114
    return round(float(luma.mean()), 4)


def frame_differences(frames: np.ndarray) -> np.ndarray:
    """Mean absolute difference between each pair of neighbouring frames."""
    if len(frames) < 2:
        return np.zeros(0)
    return np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))


def _ocr_input(image_path: Frame, path: Path) -> Path:
    with Image.open(image_path) as image:
        # tesseract reads small rendered text far better from a grey image at twice the size
        grey = image.convert("L")
        grey = grey.resize((grey.width * 2, grey.height * 2), Image.BICUBIC)
    grey.save(path)
    return path


def _tesseract_tsv(source: Path, timeout_s: float) -> str | None:
    """tesseract's TSV for one image, or for every image a list file names (``page_num`` counts them from 1);
    None when it fails or runs out of time."""
    try:
        done = subprocess.run(["tesseract", str(source), "stdout", "--psm", "3", "tsv"], capture_output=True,
                              text=True, check=False, timeout=timeout_s, env={**os.environ, **OCR_THREADS})
    except subprocess.TimeoutExpired:
        return None
    return done.stdout if done.returncode == 0 else None


def _confident_words(tsv: str | None, min_confidence: float) -> dict[int, list[str]]:
    """Page number -> the words of that page tesseract is confident in, in reading order."""
    pages: dict[int, list[str]] = {}
    for line in (tsv or "").splitlines()[1:]:
        cols = line.split("\t")
        if len(cols) < 12:
            continue
        text = re.sub(r"[^\w'-]", "", cols[11])
        try:
            page, confidence = int(cols[1]), float(cols[10])
        except ValueError:
            continue
        if confidence >= min_confidence and len(text) >= 2 and any(ch.isalnum() for ch in text):
            pages.setdefault(page, []).append(text)
    return pages


def read_texts(image_paths: Sequence[Frame], min_confidence: float = 60.0) -> list[str]:
    """On-screen text of each image by tesseract: the words it is confident in, in reading order, joined by
    spaces ("" for none). One tesseract process reads them all: loading its model is most of what a small still
    costs (measured on synth stills: about 140 CPU-ms for one alone, 390 for eight together). Each image's words
    are the same as when it is read alone; if the shared run fails or times out, each is read alone, so one
    frame cannot cost the others their text."""
    if not image_paths:
        return []
    with tempfile.TemporaryDirectory(prefix="ocr-") as tmp:
        # PGM: no compression to write, none for tesseract to undo (a PNG cost about 6 ms a still to write)
        inputs = [_ocr_input(path, Path(tmp) / f"frame_{i:04d}.pgm") for i, path in enumerate(image_paths)]
        source = inputs[0]
        if len(inputs) > 1:
            source = Path(tmp) / "frames.txt"
            source.write_text("".join(f"{path}\n" for path in inputs))
        tsv = _tesseract_tsv(source, OCR_TIMEOUT_S * len(inputs))
        if tsv is None and len(inputs) > 1:
            alone = [_confident_words(_tesseract_tsv(path, OCR_TIMEOUT_S), min_confidence).get(1, [])
                     for path in inputs]
            return [" ".join(words) for words in alone]
    pages = _confident_words(tsv, min_confidence)
    return [" ".join(pages.get(page, [])) for page in range(1, len(inputs) + 1)]


def frame_groups(frame_counts: list[int], frames_per_group: int) -> list[list[int]]:
    """Indices of clips (given by their frame counts, in order) cut into runs of at most ``frames_per_group``
    frames: the clips one ``visual_facts_many`` call measures; a clip with more frames is a group of its own."""
    groups: list[list[int]] = []
    frames = 0
    for index, count in enumerate(frame_counts):
        count = max(1, count)
        if not groups or frames + count > frames_per_group:
            groups.append([])
            frames = 0
        groups[-1].append(index)
        frames += count
    return groups


def _measured(clip: Clip, frames: list[Frame], cfg: VisualConfig) -> VisualFacts:
    if not frames:
        raise ValueError(f"clip {clip.clip_id} has no frames to measure")
    pixels = load_frames(frames)
    colours = dominant_colors(pixels, cfg.max_colors, cfg.min_color_share)
    differences = frame_differences(pixels)
    cuts = [round(clip.frame_times_s[i + 1], 3) for i, d in enumerate(differences) if d > SCENE_CUT_DIFFERENCE]
    return VisualFacts(clip_id=clip.clip_id, dominant_colors=[name for name, _ in colours],
                       mean_brightness=mean_brightness(pixels),
                       motion=round(float(differences.mean()) if differences.size else 0.0, 4), scene_cuts_s=cuts)


def _frame_reader(files: Mapping[str, bytes] | None) -> Callable[[str], Frame]:
    # a fresh file object each time: a frame may be read twice (measured, then OCR)
    return (lambda path: path) if files is None else (lambda name: io.BytesIO(files[name]))


def visual_facts_many(clips: list[Clip], cfg: VisualConfig | None = None,
                      files: Sequence[Mapping[str, bytes]] | None = None) -> list[VisualFacts]:
    """Measure each clip's sampled frames (the image itself for stills); OCR reads every clip's middle frame in
    one tesseract run. Each clip's facts are what ``visual_facts`` gives it alone. With ``files`` (a clip bundle's
    bytes by file name, one mapping per clip), frames are read from memory under the names the clips' records
    give, not from the disk."""
    cfg = cfg or VisualConfig()
    readers = [_frame_reader(None if files is None else files[i]) for i in range(len(clips))]
    measured = [_measured(clip, [read(p) for p in clip.frame_paths], cfg) for clip, read in zip(clips, readers)]
    if not cfg.ocr:
        return measured
    texts = read_texts([read(clip.frame_paths[len(clip.frame_paths) // 2]) for clip, read in zip(clips, readers)],
                       cfg.ocr_min_confidence)
    return [replace(facts, ocr_text=text) for facts, text in zip(measured, texts)]


def visual_facts(clip: Clip, cfg: VisualConfig | None = None) -> VisualFacts:
    """Measure one clip's sampled frames."""
    return visual_facts_many([clip], cfg)[0]
