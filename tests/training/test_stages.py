"""Every stage trains its parts (and only those) with the loss falling on a fixed batch; checkpoints resume."""

import pytest
import torch

from schemas.validation import from_dict
from training.config import TrainConfig
from training.loader import ShardDataset
from training.losses import stage_loss
from training.stages import STAGES, apply_stage
from training.trainer import build_model, train


def config_for(stage, url, **kw):
    return from_dict(TrainConfig, {"stage": stage, "seed": 0, "data": {
        "sources": [{"url": str(url)}], "max_tokens": 4096, "shuffle_buffer": 0, "batch_rows": 1}} | kw)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory, media_bytes):
    from conftest import make_sample, write_dataset

    return write_dataset(tmp_path_factory.mktemp("stages"), [make_sample(i, turns=3) for i in range(1)],
                         media_bytes, per_shard=2)


@pytest.fixture(scope="module")
def text_dataset(tmp_path_factory, media_bytes):
    """One dialogue without media (its first answer spoken, a preference pair on its final turn)."""
    from conftest import make_sample, write_dataset

    return write_dataset(tmp_path_factory.mktemp("stages-text"), [make_sample(0, turns=3, with_media=False)],
                         media_bytes, per_shard=1)


@pytest.mark.parametrize("stage", list(STAGES))
def test_stage_loss_falls_on_a_fixed_batch(stage, tokenizer, small_dataset, text_dataset):
    # the LLM-only stages need no media: keep them cheap
    config = config_for(stage, text_dataset if stage in ("speech", "dpo") else small_dataset)
    model, model_config = build_model(config, tokenizer, torch.device("cpu"))
    trainable = apply_stage(model, STAGES[stage])
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    reference = None
    if STAGES[stage].loss == "dpo":
        from training.checkpoint import frozen_copy

        reference = frozen_copy(model)
    batch = next(iter(ShardDataset(config.loader_config(model_config), tokenizer)))
    if stage == "dpo":
        assert batch.input_ids.shape[0] == 2  # chosen and rejected rows of one dialogue
    if stage == "speech":
        assert batch.speech_units and len(batch.speech_units[0]) > 5
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(5):
        loss, tokens = stage_loss(STAGES[stage].loss, model, batch, reference=reference, beta=0.5)
        assert tokens > 0 and torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
    assert trainable > 0
    assert all(torch.equal(p, frozen_before[n]) for n, p in model.named_parameters() if n in frozen_before)


def test_checkpoint_resume_continues_exactly(tokenizer, media_bytes, tmp_path):
    """3 steps straight == 1 step, save, then resume to 3: same losses (model, optimizer and data restored)."""
    from conftest import make_sample, write_dataset

    data = write_dataset(tmp_path / "ds", [make_sample(i, 2, with_media=False) for i in range(6)], media_bytes, 2)

    def run(steps, ckpt):
        return train(config_for("sft", data, steps=steps, checkpoint_dir=str(tmp_path / ckpt),
                                data={"sources": [{"url": str(data)}], "max_tokens": 160, "shuffle_buffer": 3}))

    straight = run(3, "a")
    half = run(1, "b")
    assert half.checkpoint.endswith("step-00000001")
    rest = run(3, "b")
    assert [s.step for s in rest.steps] == [2, 3]
    assert [s.loss for s in half.steps + rest.steps] == pytest.approx([s.loss for s in straight.steps], rel=1e-5)
    from training.metrics import METRICS_FILE, read_metrics

    logged = read_metrics(tmp_path / "b" / METRICS_FILE)  # the resumed run's log: every step once, in order
    assert [(r["step"], r["loss"]) for r in logged] == [(s.step, s.loss) for s in half.steps + rest.steps]


def test_merge_checkpoints_averages_weights(tokenizer, small_dataset, tmp_path):
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    from training.checkpoint import load_model_weights, merge_checkpoints

    a = train(config_for("sft", small_dataset, steps=1, checkpoint_dir=str(tmp_path / "a")))
    b = train(config_for("pretrain1", small_dataset, steps=1, checkpoint_dir=str(tmp_path / "b"), seed=5))
    assert a.checkpoint and b.checkpoint
    config = config_for("sft", small_dataset)
    states = []
    for path in (a.checkpoint, b.checkpoint):
        m, _ = build_model(config, tokenizer, torch.device("cpu"))
        load_model_weights(m, path)
        states.append(get_model_state_dict(m))
    container, _ = build_model(config, tokenizer, torch.device("cpu"))
    out = merge_checkpoints([a.checkpoint, b.checkpoint], [3.0, 1.0], tmp_path / "merged", container)
    merged, _ = build_model(config, tokenizer, torch.device("cpu"))
    load_model_weights(merged, out)
    name = "vision.projector.1.weight"
    expected = 0.75 * states[0][name] + 0.25 * states[1][name]
    assert not torch.equal(states[0][name], states[1][name])
    assert torch.allclose(get_model_state_dict(merged)[name], expected, atol=1e-6)


def test_shipped_stage_configs_parse():
    from pathlib import Path

    from training.config import load_train_config

    folder = Path(__file__).resolve().parents[2] / "training" / "configs"
    stages = {load_train_config(p).stage for p in folder.glob("*.yaml")}
    assert stages == set(STAGES)


def test_parts_load_from_local_checkpoints(tmp_path):
    """Each part starts from a local HF-format directory (or safetensors for the speech decoder) when configured."""
    from dataclasses import replace

    from training.model.config import tiny_model_config
    from training.model.omni import OmniModel

    torch.manual_seed(0)
    base = tiny_model_config(151680, speech=True)
    source = OmniModel(base, 151671, 151674)
    source.llm.save_pretrained(tmp_path / "llm")
    source.vision.encoder.save_pretrained(tmp_path / "vision")
    from transformers import WhisperConfig, WhisperModel

    whisper = WhisperModel(WhisperConfig(**{**source.audio.encoder.config.to_dict(), "decoder_layers": 1}))
    whisper.encoder.load_state_dict(source.audio.encoder.state_dict())
    whisper.save_pretrained(tmp_path / "whisper")
    source.speech_decoder.save(tmp_path / "speech")
    config = replace(base, llm=replace(base.llm, pretrained=str(tmp_path / "llm")),
                     vision=replace(base.vision, pretrained=str(tmp_path / "vision")),
                     audio=replace(base.audio, pretrained=str(tmp_path / "whisper")),
                     speech=replace(base.speech, pretrained=str(tmp_path / "speech")))
    torch.manual_seed(1)
    loaded = OmniModel(config, 151671, 151674)
    for part in ("llm", "vision.encoder", "audio.encoder", "speech_decoder"):
        a, b = source.get_submodule(part).state_dict(), loaded.get_submodule(part).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_initialised_adamw_takes_a_fresh_first_step(weight_decay):
    """State given ahead of training changes nothing: the first real step equals a fresh AdamW's first step."""
    from training.checkpoint import initialise_optimizer_state

    torch.manual_seed(0)
    prepared, fresh = torch.nn.Linear(8, 4), torch.nn.Linear(8, 4)
    fresh.load_state_dict(prepared.state_dict())
    grads = [torch.randn_like(p) for p in prepared.parameters()]
    optimizers = [torch.optim.AdamW(m.parameters(), lr=0.1, betas=(0.9, 0.95), weight_decay=weight_decay)
                  for m in (prepared, fresh)]
    initialise_optimizer_state(optimizers[0])
    assert all(torch.equal(a, b) for a, b in zip(prepared.parameters(), fresh.parameters()))  # lr 0: untouched
    for model, optimizer in zip((prepared, fresh), optimizers):
        for p, g in zip(model.parameters(), grads):
            p.grad = g.clone()
        optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(prepared.parameters(), fresh.parameters()))
    steps = [optimizer.state[next(iter(m.parameters()))]["step"] for optimizer, m in zip(optimizers, (prepared, fresh))]
    assert steps[0].dtype == steps[1].dtype and steps[0].device == steps[1].device and int(steps[0]) == 1
