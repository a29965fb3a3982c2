"""Decode shard media bytes into model inputs: 448x448 image tiles, video frame tiles, 128-bin log-mel audio."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from schemas.tiling import grid_of_tile_count, tile_count

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SAMPLE_RATE = 16_000

Allocate = Callable[[tuple[int, ...], torch.dtype], torch.Tensor]
"""(shape, dtype) -> an uninitialised contiguous tensor for decoded media (the loader's batch arena); the decoders
write every element of what they are given."""


def new_tensor(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """The default ``Allocate``: a tensor of its own."""
    return torch.empty(shape, dtype=dtype)


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


def _channels_first(images: torch.Tensor, alloc: Allocate) -> torch.Tensor:
    """uint8 [n, h, w, 3] -> uint8 [n, 3, h, w] (contiguous); numpy's strided copy is twice torch's here."""
    n, h, w, _ = images.shape
    out = alloc((n, 3, h, w), torch.uint8)
    out.numpy()[...] = images.numpy().transpose(0, 3, 1, 2)
    return out


def _planes(img) -> list[np.ndarray]:
    """A PIL RGB image's R, G, B planes as uint8 [h, w] arrays (PIL separates them in C)."""
    return [np.frombuffer(img.tobytes("raw", band), np.uint8).reshape(img.height, img.width) for band in "RGB"]


def normalise_tiles(tiles: torch.Tensor) -> torch.Tensor:
    """uint8 tiles -> ImageNet-normalised float32, on whatever device they are."""
    mean = torch.tensor(IMAGENET_MEAN, device=tiles.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=tiles.device).view(1, 3, 1, 1)
    return (tiles.float() / 255.0 - mean) / std


def decode_image(data: bytes, tiles: int | None, config: MediaDecodeConfig, alloc: Allocate = new_tensor
                 ) -> DecodedVisual:
    """An image as ``tiles`` tiles: a grid of ``tiles - 1`` cells plus a whole-image thumbnail (one tile when 1)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            img = opened if opened.mode == "RGB" else opened.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise MediaDecodeError(f"image: {exc}") from None
    size = config.tile_size
    if tiles is None:
        tiles = tile_count(img.width, img.height, size, config.max_tiles)
    if tiles < 1:
        raise MediaDecodeError(f"image: tile count {tiles} < 1")
    tensor = alloc((tiles, 3, size, size), torch.uint8)
    out = tensor.numpy()
    if tiles > 1:
        cols, rows = grid_of_tile_count(img.width, img.height, tiles, size)
        grid = img.resize((cols * size, rows * size), Image.BICUBIC)
        for c, plane in enumerate(_planes(grid)):
            # [rows*size, cols*size] -> [rows*cols, size, size], cells in row-major order
            out[:-1, c] = plane.reshape(rows, size, cols, size).transpose(0, 2, 1, 3).reshape(-1, size, size)
    for c, plane in enumerate(_planes(img.resize((size, size), Image.BICUBIC))):
        out[-1, c] = plane  # the whole image (the only tile when 1)
    return DecodedVisual(tiles=tensor)


def decode_video(data: bytes, frames: int | None, config: MediaDecodeConfig, with_audio: bool = False,
                 alloc: Allocate = new_tensor) -> DecodedVisual:
    """``frames`` frames sampled uniformly (segment centres), each resized to one tile; and its sound track."""
    import decord
    from torch.utils.dlpack import from_dlpack

    frames = frames or config.frames_per_clip
    try:
        reader = decord.VideoReader(io.BytesIO(data), width=config.tile_size, height=config.tile_size,
                                    num_threads=1)
        count = len(reader)
        if count == 0:
            raise MediaDecodeError("video: no frames")
        frames_hwc = from_dlpack(reader.get_batch(frame_indices(count, frames)).to_dlpack())  # no copy
    except (decord.DECORDError, RuntimeError) as exc:
        raise MediaDecodeError(f"video: {exc}") from None
    tiles = _channels_first(frames_hwc, alloc)
    sound = None
    if with_audio:
        try:
            sound = audio_features(decode_waveform(data), config, alloc)
        except MediaDecodeError:
            sound = None  # a silent video
    return DecodedVisual(tiles=tiles, audio=sound)


def frame_indices(count: int, frames: int) -> list[int]:
    """``frames`` indices sampled uniformly from ``count`` frames (segment centres)."""
    return [min(count - 1, int((i + 0.5) * count / frames)) for i in range(frames)]


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


def decode_audio(data: bytes, config: MediaDecodeConfig, alloc: Allocate = new_tensor) -> DecodedAudio:
    """Audio as Whisper log-mel windows of ``audio_chunk_seconds`` (the last one padded)."""
    wave = decode_waveform(data)
    return audio_features(wave, config, alloc)


def whisper_log_mel(chunk: np.ndarray, mel_bins: int, chunk_seconds: int, out: torch.Tensor | None = None
                    ) -> torch.Tensor:
    """Whisper's log-mel of one window, equal to WhisperFeatureExtractor's on the zero-padded window.

    Only the frames that see signal are computed: every later frame of the padded window sees zeros, whose
    value after Whisper's clamp to (max - 8) is known, so a 1 s clip costs 1 s of STFT, not 30.
    Written into ``out`` (float32 [mel_bins, frames]) when given.
    """
    n_fft, hop, window, filters = _mel_constants(mel_bins, chunk_seconds)
    frames = chunk_seconds * SAMPLE_RATE // hop
    # enough trailing zeros that every frame touching signal, and the reflect padding of the last one, is exact
    padded_len = min(chunk_seconds * SAMPLE_RATE, (len(chunk) // hop + 1) * hop + n_fft)
    wave = np.zeros(padded_len, dtype=np.float32)
    wave[:min(len(chunk), padded_len)] = chunk[:padded_len]
    spec = torch.stft(torch.from_numpy(wave), n_fft, hop, window=window, return_complex=True)
    power = (spec[..., :-1].abs() ** 2).contiguous()
    log_spec = torch.clamp(filters.T @ power, min=1e-10).log10()
    computed = min(log_spec.shape[1], frames)
    floor = max(log_spec.max().item(), -10.0) - 8.0
    # Whisper's (x + 4) / 4 in float32, on the constant tail once and on the computed frames
    tail = ((torch.tensor(max(-10.0, floor), dtype=torch.float32) + 4.0) / 4.0).item()
    if out is None:
        out = torch.empty((mel_bins, frames), dtype=torch.float32)
    out[:, computed:].fill_(tail)
    torch.div(torch.maximum(log_spec[:, :computed], torch.tensor(floor)) + 4.0, 4.0, out=out[:, :computed])
    return out


@lru_cache(maxsize=8)
def _mel_constants(mel_bins: int, chunk_seconds: int) -> tuple[int, int, torch.Tensor, torch.Tensor]:
    """(n_fft, hop, Hann window, float32 mel filters [freq, mel]) of Whisper's front end."""
    extractor = mel_extractor(mel_bins, chunk_seconds)
    filters = torch.from_numpy(extractor.mel_filters).float()
    return extractor.n_fft, extractor.hop_length, torch.hann_window(extractor.n_fft), filters


def audio_features(wave: np.ndarray, config: MediaDecodeConfig, alloc: Allocate = new_tensor) -> DecodedAudio:
    step = config.audio_chunk_seconds * SAMPLE_RATE
    starts = range(0, max(len(wave), 1), step)
    frames = config.audio_chunk_seconds * SAMPLE_RATE // _mel_constants(config.mel_bins, config.audio_chunk_seconds)[1]
    mels = alloc((len(starts), config.mel_bins, frames), torch.float32)
    for i, start in enumerate(starts):
        whisper_log_mel(wave[start:start + step], config.mel_bins, config.audio_chunk_seconds, out=mels[i])
    return DecodedAudio(mels=mels, seconds=len(wave) / SAMPLE_RATE)
