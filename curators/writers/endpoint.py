"""Endpoint writer: an OpenAI-compatible chat-completions server rephrases the grounded draft (text only).

The HTTP side (key from OMNICURATE_API_KEY, cache, retries, concurrency, usage) is ``ChatClient``'s.
"""

from __future__ import annotations

from pathlib import Path

from curators.dialogue_plan import DialoguePlan
from curators.dialogue_write import WrittenDialogue
from curators.writers.chat_client import API_KEY_ENV, ChatClient, EndpointError
from curators.writers.rewrite import ChatMessages, rewrite_dialogues, rewrite_prompt_hash
from schemas.config import DialogueConfig
from schemas.media import AnnotatedClip
from schemas.usage import StageUsage

__all__ = ["API_KEY_ENV", "EndpointError", "EndpointWriter"]


class EndpointWriter:
    name = "endpoint"

    def __init__(self, base_url: str, model: str, *, cache_dir: str | Path | None = None, timeout_s: float = 60.0,
                 max_retries: int = 4, concurrency: int = 4, backoff_s: float = 0.5, batch_size: int = 16):
        self.client = ChatClient(base_url, model, stage="writer", cache_dir=cache_dir, timeout_s=timeout_s,
                                 max_retries=max_retries, concurrency=concurrency, backoff_s=backoff_s)
        self.model_id = model
        self.batch_size = batch_size

    @classmethod
    def from_config(cls, cfg: DialogueConfig, cache_dir: str | Path | None = None) -> EndpointWriter:
        return cls(cfg.endpoint_url, cfg.writer_model, cache_dir=cfg.writer_cache_dir or cache_dir,
                   timeout_s=cfg.writer_timeout_s, max_retries=cfg.writer_max_retries,
                   concurrency=cfg.writer_concurrency, batch_size=max(cfg.writer_batch_size, cfg.writer_concurrency))

    @property
    def requests_sent(self) -> int:
        return self.client.requests_sent

    def usage(self) -> StageUsage:
        return self.client.usage()

    def prompt_hash(self) -> str:
        return rewrite_prompt_hash()

    def request(self, messages: ChatMessages, attempt: int = 0) -> str | None:
        return self.client.request(messages, attempt)

    def complete(self, requests: list[ChatMessages], attempt: int) -> list[str | None]:
        return self.client.complete(requests, attempt)

    def write_batch(self, plans: list[DialoguePlan], clips: dict[str, AnnotatedClip]) -> list[WrittenDialogue]:
        written = rewrite_dialogues(plans, clips, self.complete, self.batch_size)
        return [WrittenDialogue(plan=p, dialogue=d, writer=self.name, model_id=self.model_id,
                                prompt_hash=self.prompt_hash(), verdicts=[v]) for p, (d, v) in zip(plans, written)]
