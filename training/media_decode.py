"""Decode shard media bytes into model inputs: 448x448 image tiles, video frame tiles, 128-bin log-mel audio."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SAMPLE_RATE = 16_000


class MediaDecodeError(ValueError):
    """A member's bytes could not be decoded; the sample is skipped and logged, the run goes on."""


@dataclass(kw_only=True, slots=True, frozen=True)
class MediaDecodeConfig:
    """How shard media becomes encoder input."""

    tile_size: int = 448
    """Side of a square vision tile."""
    max_tiles: int = 12
    """Most tiles of an image's dynamic tiling when the sample does not record its tile count."""
    frames_per_clip: int = 8
    """Frames taken from a video when the sample does not record its frame count."""
    audio_chunk_seconds: int = 30
    """Audio encoder window: 30 for Whisper; a tiny encoder may use shorter windows."""
    mel_bins: int = 128


@dataclass(slots=True)
class DecodedAudio:
    mels: torch.Tensor
    """float32 [chunks, mel_bins, frames_per_chunk] log-mel."""
    seconds: float


@dataclass(slots=True)
class DecodedVisual:
    tiles: torch.Tensor
    """uint8 [n, 3, tile, tile]; the model normalises on its device (4x less to copy and ship than float)."""
    audio: DecodedAudio | None = None
    """A video's own sound track, when it has one (the token budget counts it as audio)."""


def _channels_first(images: np.ndarray) -> torch.Tensor:
    """uint8 [n, h, w, 3] -> uint8 [n, 3, h, w] (contiguous)."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def normalise_tiles(tiles: torch.Tensor) -> torch.Tensor:
    """uint8 tiles -> ImageNet-normalised float32, on whatever device they are."""
    mean = torch.tensor(IMAGENET_MEAN, device=tiles.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=tiles.device).view(1, 3, 1, 1)
    return (tiles.float() / 255.0 - mean) / std


def tile_grid(width: int, height: int, tiles: int) -> tuple[int, int]:
    """(columns, rows) of a grid of ``tiles - 1`` cells (``tiles`` when 1) whose shape is closest to the image's."""
    cells = tiles - 1 if tiles > 1 else 1
    aspect = width / max(height, 1)
    pairs = [(c, cells // c) for c in range(1, cells + 1) if cells % c == 0]
    return min(pairs, key=lambda cr: (abs(math.log(cr[0] / cr[1]) - math.log(aspect)), -cr[0]))


def dynamic_tile_count(width: int, height: int, max_tiles: int) -> int:
    """InternVL-style tile count: the grid of at most ``max_tiles`` cells closest in shape, plus a thumbnail."""
    aspect = width / max(height, 1)
    grids = [(c, r) for c in range(1, max_tiles + 1) for r in range(1, max_tiles + 1) if c * r <= max_tiles]
    area = width * height
    best = min(grids, key=lambda cr: (abs(math.log(cr[0] / cr[1]) - math.log(aspect)),
                                      -(cr[0] * cr[1]) if area > 0.5 * 448 * 448 * cr[0] * cr[1] else cr[0] * cr[1]))
    cells = best[0] * best[1]
    return cells + 1 if cells > 1 else 1


def decode_image(data: bytes, tiles: int | None, config: MediaDecodeConfig) -> DecodedVisual:
    """An image as ``tiles`` tiles: a grid of ``tiles - 1`` cells plus a whole-image thumbnail (one tile when 1)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img = img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise MediaDecodeError(f"image: {exc}") from None
    size = config.tile_size
    if tiles is None:
        tiles = dynamic_tile_count(img.width, img.height, config.max_tiles)
    if tiles < 1:
        raise MediaDecodeError(f"image: tile count {tiles} < 1")
    if tiles == 1:
        crops = [img.resize((size, size), Image.BICUBIC)]
    else:
        cols, rows = tile_grid(img.width, img.height, tiles)
        grid = img.resize((cols * size, rows * size), Image.BICUBIC)
        crops = [grid.crop((c * size, r * size, (c + 1) * size, (r + 1) * size)) for r in range(rows) for c in range(cols)]
        crops.append(img.resize((size, size), Image.BICUBIC))
    return DecodedVisual(tiles=_channels_first(np.stack([np.asarray(c) for c in crops])))


def decode_video(data: bytes, frames: int | None, config: MediaDecodeConfig, with_audio: bool = False
                 ) -> DecodedVisual:
    """``frames`` frames sampled uniformly (segment centres), each resized to one tile; and its sound track."""
    import decord

    frames = frames or config.frames_per_clip
    try:
        reader = decord.VideoReader(io.BytesIO(data), width=config.tile_size, height=config.tile_size,
                                    num_threads=1)
        count = len(reader)
        if count == 0:
            raise MediaDecodeError("video: no frames")
        indices = [min(count - 1, int((i + 0.5) * count / frames)) for i in range(frames)]
        array = reader.get_batch(indices).asnumpy()
    except (decord.DECORDError, RuntimeError) as exc:
        raise MediaDecodeError(f"video: {exc}") from None
    sound = None
    if with_audio:
        try:
            sound = audio_features(decode_waveform(data), config)
        except MediaDecodeError:
            sound = None  # a silent video
    return DecodedVisual(tiles=_channels_first(array), audio=sound)


def decode_waveform(data: bytes) -> np.ndarray:
    """Any audio container PyAV reads -> float32 mono at 16 kHz."""
    import av

    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.audio:
                raise MediaDecodeError("audio: no audio stream")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            pieces = []
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    pieces.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                pieces.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError as exc:
        raise MediaDecodeError(f"audio: {exc}") from None
    if not pieces:
        raise MediaDecodeError("audio: no samples")
    return np.concatenate(pieces).astype(np.float32, copy=False)


@lru_cache(maxsize=8)
def mel_extractor(mel_bins: int, chunk_seconds: int):
    """Whisper's log-mel front end, built locally (no download)."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=mel_bins, sampling_rate=SAMPLE_RATE, chunk_length=chunk_seconds)


def decode_audio(data: bytes, config: MediaDecodeConfig) -> DecodedAudio:
    """Audio as Whisper log-mel windows of ``audio_chunk_seconds`` (the last one padded)."""
    wave = decode_waveform(data)
    return audio_features(wave, config)


def whisper_log_mel(chunk: np.ndarray, mel_bins: int, chunk_seconds: int) -> torch.Tensor:
    """Whisper's log-mel of one window, equal to WhisperFeatureExtractor's on the zero-padded window.

    Only the frames that see signal are computed: every later frame of the padded window sees zeros, whose
    value after Whisper's clamp to (max - 8) is known, so a 1 s clip costs 1 s of STFT, not 30.
    """
    extractor = mel_extractor(mel_bins, chunk_seconds)
    n_fft, hop = extractor.n_fft, extractor.hop_length
    frames = chunk_seconds * SAMPLE_RATE // hop
    # enough trailing zeros that every frame touching signal, and the reflect padding of the last one, is exact
    padded_len = min(chunk_seconds * SAMPLE_RATE, (len(chunk) // hop + 1) * hop + n_fft)
    wave = np.zeros(padded_len, dtype=np.float32)
    wave[:min(len(chunk), padded_len)] = chunk[:padded_len]
    spec = torch.stft(torch.from_numpy(wave), n_fft, hop, window=torch.hann_window(n_fft), return_complex=True)
    power = (spec[..., :-1].abs() ** 2).contiguous()
    filters = torch.from_numpy(extractor.mel_filters).float()
    log_spec = torch.clamp(filters.T @ power, min=1e-10).log10()
    computed = log_spec.shape[1]
    floor = max(log_spec.max().item(), -10.0) - 8.0
    out = torch.full((mel_bins, frames), max(-10.0, floor), dtype=torch.float32)
    out[:, :computed] = torch.maximum(log_spec, torch.tensor(floor))[:, :frames]
    return (out + 4.0) / 4.0


def audio_features(wave: np.ndarray, config: MediaDecodeConfig) -> DecodedAudio:
    step = config.audio_chunk_seconds * SAMPLE_RATE
    chunks = [wave[i:i + step] for i in range(0, max(len(wave), 1), step)]
    mels = torch.stack([whisper_log_mel(c, config.mel_bins, config.audio_chunk_seconds) for c in chunks])
    return DecodedAudio(mels=mels, seconds=len(wave) / SAMPLE_RATE)
