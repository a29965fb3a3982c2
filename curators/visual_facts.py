"""Visual facts that need no downloaded weights: named dominant colours, brightness, motion, cuts, OCR text."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

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


def load_frames(paths: list[str], size: int = ANALYSIS_SIZE) -> np.ndarray:
    """Frames as float RGB arrays in [0, 1], shape (n, size, size, 3)."""
    frames = []
    for path in paths:
        with Image.open(path) as image:
            frames.append(np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32))
    return np.stack(frames) / 255.0


def name_colors(rgb: np.ndarray) -> np.ndarray:
    """Name every pixel of an (..., 3) array in [0, 1] with one of a dozen basic colour words."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    high = rgb.max(axis=-1)
    low = rgb.min(axis=-1)
    spread = high - low
    saturation = np.where(high > 0, spread / np.maximum(high, 1e-6), 0.0)
    safe = np.maximum(spread, 1e-6)
    hue = np.where(high == r, ((g - b) / safe) % 6, np.where(high == g, (b - r) / safe + 2, (r - g) / safe + 4)) * 60.0
    names = np.empty(rgb.shape[:-1], dtype=object)
    bounds = [bound for bound, _ in HUE_NAMES]
    labels = np.array([name for _, name in HUE_NAMES], dtype=object)
    names[...] = labels[np.clip(np.searchsorted(bounds, hue, side="right"), 0, len(labels) - 1)]
    names[(names == "orange") & (high < 0.6)] = "brown"
    grey = saturation < 0.2
    names[grey] = "gray"
    names[grey & (high > 0.8)] = "white"
    names[high < 0.2] = "black"
    return names


def dominant_colors(frames: np.ndarray, max_colors: int = 3, min_share: float = 0.05) -> list[tuple[str, float]]:
    """(name, share of pixels) of the most frequent named colours, most frequent first."""
    names, counts = np.unique(name_colors(frames), return_counts=True)
    shares = counts / counts.sum()
    ranked = sorted(zip(names.tolist(), shares.tolist()), key=lambda item: (-item[1], item[0]))
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


def read_text(image_path: str, min_confidence: float = 60.0) -> str:
    """On-screen text by tesseract: words it is confident in, in reading order, joined by spaces."""
    with Image.open(image_path) as image:
        # tesseract reads small rendered text far better from a grey image at twice the size
        grey = image.convert("L")
        grey = grey.resize((grey.width * 2, grey.height * 2), Image.BICUBIC)
    with tempfile.TemporaryDirectory(prefix="ocr-") as tmp:
        source = Path(tmp) / "frame.png"
        grey.save(source)
        try:
            done = subprocess.run(["tesseract", str(source), "stdout", "--psm", "3", "tsv"],
                                  capture_output=True, text=True, check=False, timeout=OCR_TIMEOUT_S,
                                  env={**os.environ, **OCR_THREADS})
        except subprocess.TimeoutExpired:
            return ""
    if done.returncode != 0:
        return ""
    words = []
    for line in done.stdout.splitlines()[1:]:
        cols = line.split("\t")
        if len(cols) < 12:
            continue
        text = re.sub(r"[^\w'-]", "", cols[11])
        try:
            confidence = float(cols[10])
        except ValueError:
            continue
        if confidence >= min_confidence and len(text) >= 2 and any(ch.isalnum() for ch in text):
            words.append(text)
    return " ".join(words)


def visual_facts(clip: Clip, cfg: VisualConfig | None = None) -> VisualFacts:
    """Measure a clip's sampled frames (the image itself for stills)."""
    cfg = cfg or VisualConfig()
    if not clip.frame_paths:
        raise ValueError(f"clip {clip.clip_id} has no frames to measure")
    frames = load_frames(clip.frame_paths)
    colours = dominant_colors(frames, cfg.max_colors, cfg.min_color_share)
    differences = frame_differences(frames)
    cuts = [round(clip.frame_times_s[i + 1], 3) for i, d in enumerate(differences) if d > SCENE_CUT_DIFFERENCE]
    ocr = read_text(clip.frame_paths[len(clip.frame_paths) // 2], cfg.ocr_min_confidence) if cfg.ocr else ""
    return VisualFacts(clip_id=clip.clip_id, dominant_colors=[name for name, _ in colours],
                       mean_brightness=mean_brightness(frames),
                       motion=round(float(differences.mean()) if differences.size else 0.0, 4),
                       scene_cuts_s=cuts, ocr_text=ocr)
