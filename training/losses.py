"""Stage losses: next-token LM, speech-token LM, and DPO on the final round."""

from __future__ import annotations

import torch

from training.chat_template import IGNORE


def stage_loss(kind: str, wrapped, batch, reference=None, beta: float = 0.1) -> tuple[torch.Tensor, int]:
    """(loss, tokens it averages over). ``wrapped`` runs the forward (the model or its DDP/FSDP wrapper)."""
    if kind in ("lm", "speech"):
        out = wrapped(batch, mode=kind)
        return out.loss, out.tokens
    if kind == "dpo":
        return dpo_loss(wrapped, reference, batch, beta)
    raise ValueError(f"unknown loss {kind!r}")


def dpo_loss(wrapped, reference, batch, beta: float) -> tuple[torch.Tensor, int]:
    """Rows come in (chosen, rejected) pairs that differ only in the final answer; labels mask everything else."""
    logp = wrapped(batch, mode="logprobs")
    with torch.no_grad():
        ref = reference(batch, mode="logprobs")
    chosen, rejected = logp[0::2] - ref[0::2], logp[1::2] - ref[1::2]
    loss = -torch.nn.functional.logsigmoid(beta * (chosen - rejected)).mean()
    return loss, int((batch.labels != IGNORE).sum())
