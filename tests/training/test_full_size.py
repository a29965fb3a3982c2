"""The full-size preset is the model DESIGN.md names: built on the meta device (no memory), its parts have the
published sizes of InternViT-300M, Whisper-large-v3's encoder and Qwen3-4B."""

import pytest
import torch

from training.model.config import full_model_config
from training.model.omni import OmniModel
from training.tokenizer import SpecialIds


@pytest.fixture(scope="module")
def full_model(tokenizer):
    special = SpecialIds.of(tokenizer)
    with torch.device("meta"):
        return OmniModel(full_model_config(), special.img_context, special.audio_context)


def params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parts_have_the_published_sizes(full_model):
    assert params(full_model.llm) == pytest.approx(4.02e9, rel=0.005)  # Qwen3-4B, tied embeddings
    assert params(full_model.vision.encoder) == pytest.approx(304e6, rel=0.01)  # InternViT-300M
    assert params(full_model.audio.encoder) == pytest.approx(637e6, rel=0.01)  # Whisper-large-v3 encoder
    whisper = full_model.audio.encoder.config
    assert (whisper.num_mel_bins, whisper.encoder_layers, whisper.d_model) == (128, 32, 1280)
    vit = full_model.vision.encoder.config
    assert (vit.num_hidden_layers, vit.hidden_size) == (24, 1024)
    assert all(p.device.type == "meta" for p in full_model.parameters())
