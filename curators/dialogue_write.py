"""Dialogue writers behind one interface: a plan and its clips in, a grounded Dialogue out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from curators.dialogue_plan import DialoguePlan
from curators.writers.template import TemplateWriter
from schemas.config import DialogueConfig
from schemas.dialogue import Dialogue, Verdict
from schemas.media import AnnotatedClip


@dataclass(kw_only=True, slots=True, frozen=True)
class WrittenDialogue:
    """A written dialogue and what made it (for lineage), plus the writer's own validation verdicts."""

    plan: DialoguePlan
    dialogue: Dialogue
    writer: str
    """Writer name (``template``, ``local_llm``, ``endpoint``, ``vlm_endpoint``, ``local_vlm``)."""
    model_id: str
    prompt_hash: str
    verdicts: list[Verdict] = field(default_factory=list)


class DialogueWriter(Protocol):
    name: str
    model_id: str

    def prompt_hash(self) -> str: ...

    def write_batch(self, plans: list[DialoguePlan], clips: dict[str, AnnotatedClip]) -> list[WrittenDialogue]: ...


class TemplateDialogueWriter:
    """The default writer: the phrase-table template writer, one plan at a time."""

    name = "template"

    def __init__(self) -> None:
        self._writer = TemplateWriter()
        self.model_id = self._writer.model_id

    def prompt_hash(self) -> str:
        return self._writer.prompt_hash()

    def write(self, plan: DialoguePlan, clips: dict[str, AnnotatedClip]) -> WrittenDialogue:
        return WrittenDialogue(plan=plan, dialogue=self._writer.write(plan, clips), writer=self.name,
                               model_id=self.model_id, prompt_hash=self.prompt_hash())

    def write_batch(self, plans: list[DialoguePlan], clips: dict[str, AnnotatedClip]) -> list[WrittenDialogue]:
        return [self.write(p, clips) for p in plans]


def make_writer(cfg: DialogueConfig, cache_dir: str | None = None) -> DialogueWriter:
    """The writer a config names; model-backed writers load their model here (once per worker).

    ``cache_dir`` holds the endpoint writers' request cache when the config names none.
    """
    if cfg.writer == "template":
        return TemplateDialogueWriter()
    if cfg.writer == "local_llm":
        from curators.writers.local_llm import LocalLlmWriter

        return LocalLlmWriter.from_config(cfg)
    if cfg.writer == "endpoint":
        from curators.writers.endpoint import EndpointWriter

        return EndpointWriter.from_config(cfg, cache_dir)
    if cfg.writer == "vlm_endpoint":
        from curators.writers.media_writer import MediaEndpointWriter

        return MediaEndpointWriter(cfg, cache_dir)
    if cfg.writer == "local_vlm":
        from curators.writers.media_writer import LocalVlmWriter

        return LocalVlmWriter(cfg)
    raise ValueError(f"unknown writer {cfg.writer!r}")
