"""The omni model: media features replace the embeddings at their context placeholders, then the Qwen3 LM runs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from training.model.audio import AudioTower
from training.model.config import ModelConfig
from training.model.llm import build_llm
from training.model.vision import VisionTower

IGNORE = -100


@dataclass(slots=True)
class OmniOutput:
    loss: torch.Tensor
    """Mean cross-entropy over the labelled tokens."""
    tokens: int
    """How many labels the loss averages over."""


def chunked_cross_entropy(hidden: torch.Tensor, head: nn.Module, labels: torch.Tensor,
                          chunk: int = 4096, reduction: str = "sum") -> torch.Tensor:
    """Cross-entropy of next-token prediction without materialising [L, vocab] logits for long sequences.

    ``hidden`` [N, H] and ``labels`` [N] are already aligned (label i is the token after position i).
    """
    keep = labels != IGNORE
    hidden, labels = hidden[keep], labels[keep]
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, hidden.shape[0], chunk):
        logits = head(hidden[start:start + chunk]).float()
        total = total + nn.functional.cross_entropy(logits, labels[start:start + chunk], reduction="sum")
    return total


class OmniModel(nn.Module):
    def __init__(self, config: ModelConfig, img_context_id: int, audio_context_id: int,
                 attn_implementation: str = "sdpa"):
        super().__init__()
        self.config = config
        self.img_context_id = img_context_id
        self.audio_context_id = audio_context_id
        self.llm = build_llm(config.llm, attn_implementation)
        hidden = self.llm.config.hidden_size
        self.vision = VisionTower(config.vision, hidden)
        self.audio = AudioTower(config.audio, hidden)
        self.speech_decoder = None
        if config.speech is not None:
            from training.model.speech_decoder import SpeechDecoder

            self.speech_decoder = SpeechDecoder(config.speech, llm_hidden=hidden)

    def embed(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None, audio_mels: torch.Tensor | None,
              audio_windows: list[int], audio_tokens: list[int]) -> torch.Tensor:
        embeds = self.llm.get_input_embeddings()(input_ids)
        embeds = self._place(embeds, input_ids == self.img_context_id, pixel_values,
                             lambda: self.vision(pixel_values), "image")
        embeds = self._place(embeds, input_ids == self.audio_context_id, audio_mels,
                             lambda: self.audio(audio_mels, audio_windows, audio_tokens), "audio")
        return embeds

    @staticmethod
    def _place(embeds, mask, inputs, features_fn, what: str):
        slots = int(mask.sum())
        if inputs is None or inputs.numel() == 0:
            if slots:
                raise ValueError(f"{slots} {what} context tokens but no {what} inputs")
            return embeds
        features = features_fn()
        if features.shape[0] != slots:
            raise ValueError(f"{what}: {features.shape[0]} features for {slots} context tokens")
        return embeds.masked_scatter(mask.unsqueeze(-1), features.to(embeds.dtype))

    def hidden_states(self, batch) -> torch.Tensor:
        embeds = self.embed(batch.input_ids, batch.pixel_values, batch.audio_mels,
                            batch.audio_windows, batch.audio_tokens)
        out = self.llm.model(inputs_embeds=embeds, position_ids=batch.position_ids, use_cache=False)
        return out.last_hidden_state

    def forward(self, batch, mode: str = "lm"):
        """``lm``: OmniOutput with the next-token loss; ``logprobs``: [B] summed label log-probs (DPO);
        ``speech``: OmniOutput with the speech decoder's loss on the LLM's hidden states.

        One entry point, so DDP/FSDP wrappers see every forward."""
        if mode == "lm":
            return self.lm_loss(batch)
        if mode == "logprobs":
            return self.sequence_logprobs(batch)
        if mode == "speech":
            if self.speech_decoder is None:
                raise ValueError("this model has no speech decoder (model.speech is None)")
            with torch.no_grad():
                hidden = self.hidden_states(batch)
            return self.speech_decoder.loss(batch, hidden, self.llm.get_input_embeddings())
        raise ValueError(f"unknown mode {mode!r}")

    def lm_loss(self, batch) -> OmniOutput:
        hidden = self.hidden_states(batch)
        labels = batch.labels[:, 1:].reshape(-1)
        flat = hidden[:, :-1].reshape(-1, hidden.shape[-1])
        total = chunked_cross_entropy(flat, self.llm.lm_head, labels)
        count = int((labels != IGNORE).sum())
        return OmniOutput(loss=total / max(count, 1), tokens=count)

    def sequence_logprobs(self, batch) -> torch.Tensor:
        """Sum of the log-probabilities of each row's labelled tokens: [B] (DPO scores whole answers)."""
        hidden = self.hidden_states(batch)[:, :-1]
        labels = batch.labels[:, 1:]
        rows, cols = (labels != IGNORE).nonzero(as_tuple=True)
        logits = self.llm.lm_head(hidden[rows, cols]).float()  # only the scored positions: no [B, L, vocab]
        logp = torch.log_softmax(logits, dim=-1).gather(-1, labels[rows, cols].unsqueeze(-1)).squeeze(-1)
        return torch.zeros(labels.shape[0], dtype=logp.dtype, device=logp.device).index_add(0, rows, logp)
