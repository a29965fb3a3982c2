"""Vision tower: InternVL vision encoder, pixel shuffle to 64 tokens per tile, 2-layer MLP into the LLM width."""

from __future__ import annotations

import torch
from torch import nn

from training.model.config import VisionConfig


def pixel_shuffle(features: torch.Tensor, factor: int) -> torch.Tensor:
    """[n, g, g, d] -> [n, g/f, g/f, d*f*f]: merge each f x f block of patches into one token."""
    n, h, w, d = features.shape
    x = features.reshape(n, h // factor, factor, w // factor, factor, d)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(n, h // factor, w // factor, d * factor * factor)


def build_vision_encoder(config: VisionConfig) -> nn.Module:
    from transformers import InternVLVisionConfig, InternVLVisionModel

    if config.pretrained:
        return InternVLVisionModel.from_pretrained(config.pretrained, local_files_only=True)
    hf = InternVLVisionConfig(
        hidden_size=config.hidden_size, num_hidden_layers=config.layers, num_attention_heads=config.heads,
        intermediate_size=config.intermediate_size, image_size=config.tile_size, patch_size=config.patch_size,
        use_mean_pooling=False,
    )
    return InternVLVisionModel(hf)


class VisionTower(nn.Module):
    """Tiles [n, 3, T, T] -> [n * tokens_per_tile, llm_hidden]."""

    def __init__(self, config: VisionConfig, llm_hidden: int):
        super().__init__()
        self.encoder = build_vision_encoder(config)
        hidden = self.encoder.config.hidden_size
        patch = self.encoder.config.patch_size
        patch = patch[0] if isinstance(patch, (list, tuple)) else patch
        self.grid = config.tile_size // patch
        self.factor = self.grid // round(config.tokens_per_tile ** 0.5)
        merged = hidden * self.factor * self.factor
        self.projector = nn.Sequential(
            nn.LayerNorm(merged), nn.Linear(merged, llm_hidden), nn.GELU(), nn.Linear(llm_hidden, llm_hidden))

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        """``tiles``: uint8 from the loader (normalised here, on the device), or already-normalised floats."""
        if tiles.dtype == torch.uint8:
            from training.media_decode import normalise_tiles

            tiles = normalise_tiles(tiles).to(next(self.encoder.parameters()).dtype)
        hidden = self.encoder(pixel_values=tiles).last_hidden_state[:, 1:]  # drop the CLS token
        n = hidden.shape[0]
        merged = pixel_shuffle(hidden.reshape(n, self.grid, self.grid, -1), self.factor)
        return self.projector(merged.reshape(-1, merged.shape[-1]))
