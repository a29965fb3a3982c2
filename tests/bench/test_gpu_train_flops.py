"""The GPU benchmark's FLOP count (what its MFU divides) against torch's own count of the same forward pass on the
tiny model, times three (a weight's backward is two of its forward). Weight matmuls and convolutions are
compared; attention is not (torch does not count the CPU attention kernel), nor the backward pass itself
(torch's per-module split of backward FLOPs is not reliable)."""

import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_gpu_train  # noqa: E402


@pytest.fixture(scope="module")
def counted():
    """(the bench's FLOPs by part, torch's forward FLOPs by module, the batch) for one packed row."""
    from training.model.omni import OmniModel
    from training.tokenizer import SpecialIds, load_tokenizer

    special = SpecialIds.of(load_tokenizer())
    config = bench_gpu_train.model_config("4b", tiny=True)
    torch.manual_seed(0)
    model = OmniModel(config, special.img_context, special.audio_context, attn_implementation="sdpa")
    batch = bench_gpu_train.synthetic_batch(special, 1024, 2, 2, 2, config.audio.chunk_seconds,
                                            config.vision.tile_size, torch.device("cpu"))
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(batch)
    forward = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    return bench_gpu_train.train_flops(model, batch, 2, 512), forward, batch


def test_the_lm_head_is_counted_on_the_labelled_positions_only(counted):
    parts, forward, batch = counted
    assert (batch.labels != -100).sum() < batch.labels.numel()  # the row has unlabelled positions
    assert parts["lm head"] == 3 * forward["OmniModel.llm.lm_head"]


@pytest.mark.parametrize(("part", "module"), [("llm", "llm.model"), ("vision", "vision"), ("audio", "audio")])
def test_each_towers_weights_are_six_flops_per_weight_and_token_it_sees(counted, part, module):
    parts, forward, _ = counted
    assert parts[part] == pytest.approx(3 * forward[f"OmniModel.{module}"], rel=0.01)

