"""Audio tower: Whisper encoder, pooling to 25 tokens per second, 2-layer MLP into the LLM width."""

from __future__ import annotations

import torch
from torch import nn

from training.model.config import AudioConfig

WHISPER_FRAMES_PER_SECOND = 50
"""Encoder output rate: 100 mel frames per second, halved by the second convolution."""


def build_audio_encoder(config: AudioConfig) -> nn.Module:
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    if config.pretrained:
        from transformers import WhisperModel

        return WhisperModel.from_pretrained(config.pretrained, local_files_only=True).get_encoder()
    hf = WhisperConfig(
        d_model=config.d_model, encoder_layers=config.layers, encoder_attention_heads=config.heads,
        encoder_ffn_dim=config.ffn_dim, num_mel_bins=config.mel_bins,
        max_source_positions=config.chunk_seconds * WHISPER_FRAMES_PER_SECOND,
        decoder_layers=1, decoder_attention_heads=config.heads, decoder_ffn_dim=config.ffn_dim,
    )
    return WhisperEncoder(hf)


class AudioTower(nn.Module):
    """Mel windows [c, mel, frames] + context tokens per clip -> [sum(tokens), llm_hidden]."""

    def __init__(self, config: AudioConfig, llm_hidden: int):
        super().__init__()
        self.encoder = build_audio_encoder(config)
        self.pool = nn.AvgPool1d(WHISPER_FRAMES_PER_SECOND // config.tokens_per_second)
        d = self.encoder.config.d_model
        self.projector = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, llm_hidden), nn.GELU(),
                                       nn.Linear(llm_hidden, llm_hidden))

    def forward(self, mels: torch.Tensor, windows: list[int], tokens: list[int]) -> torch.Tensor:
        """``windows[i]`` mel windows of ``mels`` belong to clip i, which fills ``tokens[i]`` context positions."""
        hidden = self.encoder(input_features=mels).last_hidden_state  # [c, frames, d]
        pooled = self.pool(hidden.transpose(1, 2)).transpose(1, 2)  # [c, frames/2, d]
        pieces, start = [], 0
        for count, need in zip(windows, tokens):
            clip = pooled[start:start + count].reshape(-1, pooled.shape[-1])
            if clip.shape[0] < need:
                raise ValueError(f"audio clip has {clip.shape[0]} pooled frames, {need} context tokens")
            pieces.append(clip[:need])
            start += count
        return self.projector(torch.cat(pieces))
