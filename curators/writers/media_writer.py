"""Media writers: a vision-language model sees what each turn is about and writes it as JSON under a schema.

Per planned turn the model gets the current clip (a picture, or several frames each after its time stamp, with
the transcript; the sound itself as ``input_audio`` where the endpoint hears), for memory questions the
referenced earlier media and the recalled statement, the measured facts, the question type, and the grounded
template turn as a draft. It replies ``{"question", "answer", "answer_key"}``; a reply that breaks the schema,
changes the answer key or fails the draft's grounding rules (``rewrite.validate_rewrite``) keeps the template
turn, and the ``writer_validation`` verdict says which turns and why.

``MediaEndpointWriter`` sends through ``ChatClient`` (any OpenAI-compatible server: vLLM, SGLang,
``transformers serve``); ``LocalVlmWriter`` sends the same requests to a local transformers VLM.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import jsonschema

from curators.chat_media import clip_parts, text_part
from curators.dialogue_plan import DialoguePlan
from curators.dialogue_write import WrittenDialogue
from curators.writers.chat_client import ChatClient, UsageCounter, json_schema_format
from curators.writers.grounding import answer_parts, mentions
from curators.writers.rewrite import ChatMessages, TurnDraft, kept_words, rewrite_dialogues
from schemas.config import DialogueConfig
from schemas.dialogue import Dialogue
from schemas.media import AnnotatedClip
from schemas.usage import StageUsage

MEDIA_PROMPT_VERSION = "media/1"
MAX_QUESTION_CHARS = 400
MAX_ANSWER_CHARS = 600
MAX_KEY_CHARS = 120
QUESTION_TYPE_WORDS = {
    "no_context": "a general question that needs neither the media nor the conversation",
    "current_media": "a question about the media shown in this turn",
    "memory_media": "a question about media the user shared in an earlier turn, which must be remembered",
    "memory_text": "a question about something the user said in an earlier turn, which must be remembered",
    "memory_mixed": "a question about earlier media and something the user said, which must be remembered",
}
SYSTEM_PROMPT = (
    "You write one turn of a conversation in which a user shows an assistant media (pictures, video frames "
    "after their time stamps, transcripts of the sound) and asks about it. You get the media the turn is "
    "about, facts measured from it, the type of question to ask, and a draft of the turn. Write a natural "
    "question of that type that the media answers, and the assistant's answer. The answer must contain the "
    "answer key; the question must not. A question about earlier media or words must point at them the way "
    "the draft does. Reply with JSON only: {\"question\": ..., \"answer\": ..., \"answer_key\": ...}.")
TURN_SCHEMA = {
    "type": "object",
    "properties": {"question": {"type": "string", "minLength": 1, "maxLength": MAX_QUESTION_CHARS},
                   "answer": {"type": "string", "minLength": 1, "maxLength": MAX_ANSWER_CHARS},
                   "answer_key": {"type": "string", "maxLength": MAX_KEY_CHARS}},
    "required": ["question", "answer", "answer_key"],
    "additionalProperties": False,
}
"""The reply's JSON schema: sent as ``response_format`` and checked here whatever the server did with it."""
_FENCE_RE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)
_VALIDATOR = jsonschema.Draft202012Validator(TURN_SCHEMA)


def media_prompt_hash(cfg_view: str) -> str:
    return hashlib.sha256(f"{MEDIA_PROMPT_VERSION}\x1f{SYSTEM_PROMPT}\x1f{json.dumps(TURN_SCHEMA, sort_keys=True)}"
                          f"\x1f{cfg_view}".encode()).hexdigest()[:16]


def parse_turn_reply(reply: str, keys: list[str]) -> tuple[str, str] | str:
    """(question, answer) from a JSON reply under ``TURN_SCHEMA`` whose answer key names every part of
    ``keys`` (the grounded key); else why not."""
    fenced = _FENCE_RE.match(reply)
    try:
        data = json.loads(fenced.group(1) if fenced else reply)
    except json.JSONDecodeError:
        return "reply is not JSON"
    error = next(iter(_VALIDATOR.iter_errors(data)), None)
    if error is not None:
        where = "/".join(map(str, error.absolute_path)) or "reply"
        return f"reply breaks the schema at {where}: {error.message[:80]}"
    question, answer = data["question"].strip(), data["answer"].strip()
    if not question or not answer:
        return "empty question or answer"
    missing = [k for k in keys if not mentions(data["answer_key"], k)]
    if missing:
        return f"answer key lacks {missing[0]!r}"
    return question, answer


class MediaTurnPrompt:
    """The request for one turn: the media it is about, the facts, the question type and the draft."""

    def __init__(self, clips: dict[str, AnnotatedClip], *, frames: int, audio: str, vision: bool):
        self.clips = clips
        self.frames = frames
        self.audio = audio
        self.vision = vision

    def _media(self, annotated: AnnotatedClip) -> list[dict]:
        return clip_parts(annotated, frames=self.frames, audio=self.audio, pictures=self.vision)

    def _clip_of(self, dialogue: Dialogue, member: str) -> AnnotatedClip | None:
        clip_id = next((m.clip_id for m in dialogue.media if m.member == member), None)
        return self.clips.get(clip_id) if clip_id else None

    def request(self, draft: TurnDraft, dialogue: Dialogue) -> ChatMessages:
        turn = draft.turn
        parts = [text_part(f"Turn {turn.index + 1} of the conversation. Ask {QUESTION_TYPE_WORDS[turn.question_type]}.")]
        shown = [p.member for p in turn.user.parts if p.kind != "text" and p.member]
        for member in shown:
            if (annotated := self._clip_of(dialogue, member)) is not None:
                parts += [text_part(f"The user shows this {annotated.clip.kind} in this turn:"), *self._media(annotated)]
        for ref in turn.memory_refs:
            if ref.member and (annotated := self._clip_of(dialogue, ref.member)) is not None:
                span = f" (the part from {ref.start_s:.1f} to {ref.end_s:.1f} s)" if ref.start_s is not None else ""
                parts += [text_part(f"The {annotated.clip.kind} the user shared in turn {ref.turn + 1}, {ref.distance} "
                                    f"turns before this one{span}, which the question is about:"),
                          *self._media(annotated)]
            if ref.text:
                parts.append(text_part(f"What the user said in turn {ref.turn + 1}, {ref.distance} turns before "
                                       f"this one: {ref.text!r}"))
        facts = [f for c in self.clips.values() for f in c.facts if f.fact_id in set(turn.fact_ids)]
        if facts:
            lines = [f"- {f.kind}: {f.value}" + (f" ({f.start_s:.1f}-{f.end_s:.1f} s)" if f.start_s is not None
                                                 and f.end_s is not None else "") for f in facts]
            parts.append(text_part("Facts measured from the media:\n" + "\n".join(lines)))
        keys = answer_parts(turn)
        rules = []
        if keys:
            rules.append(f"The answer and the answer key must contain: {', '.join(repr(k) for k in keys)}; the "
                         f"question must not.")
        kept = kept_words(draft.question)
        if kept:
            rules.append(f"The question must keep the words: {', '.join(kept)}.")
        parts.append(text_part(f"Draft question: {draft.question}\nDraft answer: {draft.answer}\n"
                               f"Answer key: {turn.answer_key}\n" + " ".join(rules)))
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": parts}]

    def parse(self, draft: TurnDraft, reply: str) -> tuple[str, str] | str:
        return parse_turn_reply(reply, answer_parts(draft.turn))


def _config_view(cfg: DialogueConfig) -> str:
    return f"frames={cfg.writer_frames} audio={cfg.writer_audio} vision={cfg.writer_vision}"


class MediaEndpointWriter:
    """The media writer over an OpenAI-compatible server (``writer: vlm_endpoint``)."""

    name = "vlm_endpoint"

    def __init__(self, cfg: DialogueConfig, cache_dir: str | Path | None = None, *, backoff_s: float = 0.5):
        self.cfg = cfg
        self.client = ChatClient(cfg.endpoint_url, cfg.writer_model, stage="writer",
                                 cache_dir=cfg.writer_cache_dir or cache_dir, timeout_s=cfg.writer_timeout_s,
                                 max_retries=cfg.writer_max_retries, concurrency=cfg.writer_concurrency,
                                 backoff_s=backoff_s, max_tokens=cfg.writer_max_tokens)
        self.model_id = cfg.writer_model
        self.batch_size = max(cfg.writer_batch_size, cfg.writer_concurrency)
        self.response_format = json_schema_format("dialogue_turn", TURN_SCHEMA) if cfg.writer_json_schema else None

    def prompt_hash(self) -> str:
        return media_prompt_hash(_config_view(self.cfg))

    def usage(self) -> StageUsage:
        return self.client.usage()

    def complete(self, requests: list[ChatMessages], attempt: int) -> list[str | None]:
        """Plain replies (what a ``writer`` answerer of the memory check asks through)."""
        return self.client.complete(requests, attempt)

    def complete_turns(self, requests: list[ChatMessages], attempt: int) -> list[str | None]:
        """Turn replies, under the turn schema when ``writer_json_schema`` is on."""
        return self.client.complete(requests, attempt, response_format=self.response_format)

    def write_batch(self, plans: list[DialoguePlan], clips: dict[str, AnnotatedClip]) -> list[WrittenDialogue]:
        return write_from_media(self, plans, clips)


class LocalVlmWriter:
    """The media writer over a local transformers VLM (``writer: local_vlm``): the same requests, greedy replies
    (so one attempt: a retry would repeat the reply)."""

    name = "local_vlm"

    def __init__(self, cfg: DialogueConfig, device: str | None = None):
        from curators.local_vlm import LocalVlmChat

        self.cfg = cfg
        self.chat = LocalVlmChat(cfg.writer_model, device)
        self.model_id = Path(cfg.writer_model.rstrip("/")).name
        self.batch_size = cfg.writer_batch_size
        self.counter = UsageCounter()

    def prompt_hash(self) -> str:
        return media_prompt_hash(_config_view(self.cfg))

    def usage(self) -> StageUsage:
        return self.counter.snapshot("writer", self.model_id)

    def complete(self, requests: list[ChatMessages], attempt: int) -> list[str | None]:
        replies = [self.chat.reply(r, self.cfg.writer_max_tokens) for r in requests]
        self.counter.add(requests=len(requests))
        return replies

    complete_turns = complete

    def write_batch(self, plans: list[DialoguePlan], clips: dict[str, AnnotatedClip]) -> list[WrittenDialogue]:
        return write_from_media(self, plans, clips, attempts=1)


def write_from_media(writer, plans: list[DialoguePlan], clips: dict[str, AnnotatedClip],
                     attempts: int = 2) -> list[WrittenDialogue]:
    """Draft with the template writer, have ``writer.complete_turns`` write every turn from its media, keep the
    valid replies."""
    cfg = writer.cfg
    prompt = MediaTurnPrompt(clips, frames=cfg.writer_frames, audio=cfg.writer_audio, vision=cfg.writer_vision)
    written = rewrite_dialogues(plans, clips, writer.complete_turns, writer.batch_size, attempts,
                                prompt=prompt)
    return [WrittenDialogue(plan=p, dialogue=d, writer=writer.name, model_id=writer.model_id,
                            prompt_hash=writer.prompt_hash(), verdicts=[v]) for p, (d, v) in zip(plans, written)]
