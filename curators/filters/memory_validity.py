"""Memory validity: a memory question must need the referenced turn, not the turns after it.

The rules run always. With an answerer model configured, ``MemoryAnswerCheck`` also puts each memory question
to it twice: with the referenced turn's media and text taken out of the history (the rest kept, pictures as
data URLs for a VLM) it must not get the answer key, and with the full history it must."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from curators.chat_media import clip_parts, text_part
from curators.filters.base import DialogueFilter, FilterContext, TurnFilter
from curators.writers.grounding import answer_parts, mentions
from curators.writers.rewrite import Completer
from schemas.config import MemoryCheckConfig
from schemas.dialogue import MEMORY_TYPES, Dialogue, MemoryRef, Message, Sample, Turn, Verdict


def turn_text(turn: Turn) -> str:
    return f"{turn.user.text} {turn.assistant.text}"


def answer_from_truncated_history(dialogue: Dialogue, turn: Turn, ref: MemoryRef,
                                  parts: list[str]) -> tuple[str, int] | None:
    """Rule-based answerer that sees only the turns after ``ref.turn``: the first answer part said there."""
    for between in dialogue.turns[ref.turn + 1:turn.index]:
        for part in parts:
            if mentions(turn_text(between), part):
                return part, between.index
    return None


def _ref_present(dialogue: Dialogue, ref: MemoryRef) -> bool:
    earlier = dialogue.turns[ref.turn]
    if ref.member is not None:
        return any(p.member == ref.member for p in earlier.user.parts)
    return ref.text is not None and ref.text in earlier.user.text


class MemoryValidityFilter(TurnFilter):
    """The rules: the recalled item is where the question says, and no later turn restates the answer (a model
    answerer, when configured, is ``MemoryAnswerCheck``)."""

    name = "memory_validity"
    codes = frozenset({"no_answer_key", "recalled_item_missing", "answer_restated"})

    def check_turn(self, turn: Turn, sample: Sample, context: FilterContext) -> Verdict | None:
        if turn.question_type not in MEMORY_TYPES:
            return None
        dialogue = sample.dialogue
        parts = answer_parts(turn)
        if not parts:
            return self.reject("no_answer_key", "memory question without an answer key", 0.0, turn.index)
        aligned = len(parts) == len(turn.memory_refs)
        for i, ref in enumerate(turn.memory_refs):
            if not _ref_present(dialogue, ref):
                return self.reject("recalled_item_missing", f"turn {ref.turn} does not hold the recalled item",
                                   float(ref.distance), turn.index)
            wanted = [parts[i]] if aligned else parts
            found = answer_from_truncated_history(dialogue, turn, ref, wanted)
            if found is not None:
                part, at = found
                return self.reject("answer_restated", f"answer {part!r} restated at turn {at}, between turn "
                                                      f"{ref.turn} and turn {turn.index}", float(ref.distance),
                                   turn.index)
        return self.accept(float(turn.memory_distance or 0), turn.index)


ANSWERER_PROMPT = ("Answer the user's last question in a few words, using only this conversation. "
                   "If the conversation does not tell, say you do not know.")
WITHOUT_REF = "memory_without_ref"
"""Verdict of the answerer with the referenced turn taken away; fails ``answerable_without_memory``."""
WITH_HISTORY = "memory_with_history"
"""Verdict of the answerer with the full history; fails ``unanswerable``."""
ANSWER_CHECK_CODES: dict[str, frozenset[str]] = {WITHOUT_REF: frozenset({"answerable_without_memory"}),
                                                 WITH_HISTORY: frozenset({"unanswerable"})}

Answerer = Callable[[list[list[dict]]], list[str | None]]
"""Answers a batch of chat requests (OpenAI messages whose content may hold media parts); None marks a request
that got no reply."""


@dataclass(frozen=True, slots=True)
class MediaRendering:
    """How a turn's media reach the answerer."""

    pictures: bool = True
    """Pictures as data URLs (a VLM); False names them in words and sends plain-text messages (a text model)."""
    frames: int = 4
    """Frames of a video clip, each after its time stamp."""
    audio: str = "transcript"
    """``transcript``, or ``input_audio`` for servers of omni models."""


def _media_parts(member: str, dialogue: Dialogue, context: FilterContext, rendering: MediaRendering) -> list[dict]:
    item = next(m for m in dialogue.media if m.member == member)
    return clip_parts(context.clips[item.clip_id], frames=rendering.frames, audio=rendering.audio,
                      pictures=rendering.pictures)


def _message(role: str, message: Message, dialogue: Dialogue, context: FilterContext,
             rendering: MediaRendering) -> dict:
    parts: list[dict] = []
    for part in message.parts:
        if part.kind == "text":
            parts.append(text_part(part.text or ""))
        else:
            parts.extend(_media_parts(part.member, dialogue, context, rendering))
    if not rendering.pictures:
        return {"role": role, "content": " ".join(p["text"] for p in parts if p["type"] == "text")}
    return {"role": role, "content": parts}


def history_request(dialogue: Dialogue, turn: Turn, context: FilterContext, rendering: MediaRendering,
                    without: int | None = None) -> list[dict]:
    """The history before ``turn`` (less turn ``without``: its media and its text, both sides) and the question."""
    messages = [{"role": "system", "content": ANSWERER_PROMPT}]
    for earlier in dialogue.turns[:turn.index]:
        if earlier.index == without:
            continue
        messages.append(_message("user", earlier.user, dialogue, context, rendering))
        messages.append(_message("assistant", earlier.assistant, dialogue, context, rendering))
    messages.append(_message("user", turn.user, dialogue, context, rendering))
    return messages


def key_share(reply: str | None, parts: list[str]) -> float | None:
    """Share of the answer-key parts the reply says; None without a reply."""
    if reply is None:
        return None
    return round(sum(mentions(reply, p) for p in parts) / len(parts), 4)


class MemoryAnswerCheck(DialogueFilter):
    """An answerer model tries every memory question with and without the turn it recalls.

    Two verdicts per memory turn, each scored by the share of the answer key the answerer said:
    ``memory_without_ref`` (one request per recalled turn; fails when a reply still says what that turn holds:
    its part of a key with one part per recalled item, else the whole key) and ``memory_with_history`` (fails
    when the reply lacks part of the key). A request that got no reply passes
    with a note (the rules still hold): an outage is not a verdict on the question.
    """

    name = "memory_answerer"
    codes = frozenset().union(*ANSWER_CHECK_CODES.values())

    def __init__(self, answer: Answerer, rendering: MediaRendering = MediaRendering(), client=None):
        self.answer = answer
        self.rendering = rendering
        self.client = client
        """The endpoint's ``ChatClient`` (its ``usage()`` counts the requests), when answers come from one."""

    @staticmethod
    def _verdict(filter_name: str, failed: bool, detail: str, score: float | None, turn: int) -> Verdict:
        (code,) = ANSWER_CHECK_CODES[filter_name]
        return Verdict(filter=filter_name, passed=not failed, code=code if failed else "", detail=detail,
                       score=score, turn=turn)

    def verdicts(self, sample: Sample, context: FilterContext) -> list[Verdict]:
        dialogue = sample.dialogue
        asked = [t for t in dialogue.turns if t.question_type in MEMORY_TYPES and answer_parts(t)
                 and all(_ref_present(dialogue, r) for r in t.memory_refs)]
        requests, owners = [], []
        for turn in asked:
            requests.append(history_request(dialogue, turn, context, self.rendering))
            owners.append((turn, None))
            for ref in turn.memory_refs:
                requests.append(history_request(dialogue, turn, context, self.rendering, without=ref.turn))
                owners.append((turn, ref))
        replies = self.answer(requests) if requests else []
        out = []
        for turn in asked:
            parts = answer_parts(turn)
            mine = [(ref, reply) for (t, ref), reply in zip(owners, replies) if t is turn]
            full = next(reply for ref, reply in mine if ref is None)
            share = key_share(full, parts)
            out.append(self._verdict(
                WITH_HISTORY, share is not None and share < 1,
                "no reply from the answerer" if full is None else
                f"with the full history the answerer said {' '.join(full.split())[:120]!r}", share, turn.index))
            # a key with one part per recalled item: without item i, the question must not get part i
            aligned = len(parts) == len(turn.memory_refs)
            without = [(ref, reply, key_share(reply, [parts[i]] if aligned else parts))
                       for i, (ref, reply) in enumerate((r, a) for r, a in mine if r is not None)]
            ref, reply, share = max(without, key=lambda w: -1.0 if w[2] is None else w[2])
            out.append(self._verdict(
                WITHOUT_REF, share == 1,
                "no reply from the answerer" if reply is None else
                f"without turn {ref.turn} the answerer said {' '.join(reply.split())[:120]!r}", share, turn.index))
        return out


def text_answerer(complete: Completer) -> Answerer:
    """A model writer's completer as an answerer (greedy; plain-text messages)."""
    return lambda requests: complete(requests, 0)


@functools.cache
def _local_vlm(model_path: str):
    from curators.local_vlm import LocalVlmChat

    return LocalVlmChat(model_path)


ANSWER_MAX_TOKENS = 48
ANSWERER_STAGE = "answerer"


def make_answer_check(cfg: MemoryCheckConfig, writer_complete: Completer | None = None,
                      cache_dir: str | None = None) -> MemoryAnswerCheck | None:
    """The configured answerer's check, or None (rules only) when ``cfg.answerer`` is ``none``.

    ``writer`` answers with the dialogue writer's model (``writer_complete``), in plain text; ``endpoint``
    sends pictures as data URLs to an OpenAI-compatible server through the shared ``ChatClient`` (request
    cache, retries, bounded concurrency, usage counted under the ``answerer`` stage); ``local_vlm`` loads a
    transformers VLM once per process."""
    rendering = MediaRendering(pictures=cfg.pictures and cfg.answerer != "writer", frames=cfg.frames,
                               audio=cfg.audio)
    if cfg.answerer == "none":
        return None
    if cfg.answerer == "writer":
        if writer_complete is None:
            raise ValueError("memory_check.answerer 'writer' needs a model-backed dialogue writer")
        return MemoryAnswerCheck(text_answerer(writer_complete), rendering)
    if cfg.answerer == "endpoint":
        from curators.writers.chat_client import ChatClient

        client = ChatClient(cfg.url, cfg.model, stage=ANSWERER_STAGE, cache_dir=cache_dir, timeout_s=cfg.timeout_s,
                            max_retries=cfg.max_retries, concurrency=cfg.concurrency, max_tokens=ANSWER_MAX_TOKENS)
        return MemoryAnswerCheck(client.complete, rendering, client)
    chat = _local_vlm(cfg.model)
    return MemoryAnswerCheck(lambda requests: [chat.reply(r, ANSWER_MAX_TOKENS) for r in requests], rendering)
