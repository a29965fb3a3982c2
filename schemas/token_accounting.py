"""DESIGN.md's token accounting, shared by the budget filter and by packing in training."""

from __future__ import annotations

import math
from dataclasses import dataclass

from schemas.validation import require


@dataclass(kw_only=True, slots=True, frozen=True)
class TokenAccounting:
    tokens_per_tile: int = 64
    """Vision tokens per 448x448 tile after pixel shuffle."""
    audio_tokens_per_second: int = 25
    """Audio tokens per second after pooling."""
    wrap_tokens: int = 2
    """Start and end markers around each media item (``<img>``/``</img>``, ``<audio>``/``</audio>``)."""
    max_sequence: int = 32768
    """Longest packed sequence, and the budget a sample must fit in."""

    def __post_init__(self) -> None:
        require(self.tokens_per_tile > 0, "tokens_per_tile", "must be positive")
        require(self.audio_tokens_per_second > 0, "audio_tokens_per_second", "must be positive")
        require(self.wrap_tokens >= 0, "wrap_tokens", "must not be negative")
        require(self.max_sequence > 0, "max_sequence", "must be positive")

    def image_context(self, tiles: int) -> int:
        """Context tokens (between the markers) of an image split into ``tiles`` tiles."""
        return tiles * self.tokens_per_tile

    def video_context(self, frames: int) -> int:
        return frames * self.tokens_per_tile

    def audio_context(self, seconds: float) -> int:
        return max(1, math.ceil(seconds * self.audio_tokens_per_second - 1e-9))

    def image_tokens(self, tiles: int) -> int:
        return self.image_context(tiles) + self.wrap_tokens

    def video_tokens(self, frames: int) -> int:
        return self.video_context(frames) + self.wrap_tokens

    def audio_tokens(self, seconds: float) -> int:
        return self.audio_context(seconds) + self.wrap_tokens
