"""Training stages: which parts of the omni model train, which loss, which labels."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(kw_only=True, slots=True, frozen=True)
class Stage:
    name: str
    description: str
    trainable: tuple[str, ...]
    """Parameter-name prefixes that train; everything else is frozen."""
    loss: str
    """``lm`` (next-token CE on labels), ``speech`` (speech-token CE), ``dpo`` (final-round preference)."""


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage(name="pretrain1", description="vision-text alignment: vision encoder and projector",
          trainable=("vision.",), loss="lm"),
    Stage(name="pretrain2", description="audio-text alignment: audio encoder and projector",
          trainable=("audio.",), loss="lm"),
    Stage(name="pretrain3", description="mixed omni-modal: encoders, projectors and the LLM",
          trainable=("vision.", "audio.", "llm."), loss="lm"),
    Stage(name="sft", description="multi-task SFT: vision, audio and the LLM",
          trainable=("vision.", "audio.", "llm."), loss="lm"),
    Stage(name="speech", description="speech decoder on LLM hidden states and text embeddings",
          trainable=("speech_decoder.",), loss="speech"),
    Stage(name="dpo", description="DPO on the final round of multi-turn dialogues: the LLM",
          trainable=("llm.",), loss="dpo"),
)}


def apply_stage(model: nn.Module, stage: Stage) -> int:
    """Freeze everything but the stage's parts; returns the number of trainable parameters."""
    count = 0
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith(stage.trainable))
        count += param.numel() if param.requires_grad else 0
    if count == 0:
        raise ValueError(f"stage {stage.name} trains nothing: no parameter starts with {stage.trainable}")
    return count
