"""Model-backed writers rephrase the template writer's grounded draft; every rewrite is validated against it."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from curators.dialogue_plan import DialoguePlan
from curators.writers.grounding import LANGUAGE_NAMES, NUMBER_WORDS, answer_parts, mentions, normalize
from curators.writers.phrasebook import ORDINALS
from curators.writers.template import TemplateWriter
from schemas.dialogue import ContentPart, Dialogue, Message, Turn, Verdict
from schemas.media import AnnotatedClip

REWRITE_PROMPT_VERSION = "2"
WRITER_VALIDATION = "writer_validation"
"""Name of the verdict a model writer adds: it always passes (a refused rewrite keeps the template turn), its
detail names the turns kept and why."""
WRITER_VALIDATION_CODES: frozenset[str] = frozenset()
SYSTEM_PROMPT = (
    "You rewrite one turn of a conversation between a user and an assistant so that it sounds natural. "
    "Keep the meaning and every fact. Never add facts. Reply with exactly two lines:\n"
    "Question: <the user's question>\nAnswer: <the assistant's answer>")

FACT_WORDS = frozenset([
    "red", "orange", "yellow", "green", "cyan", "blue", "purple", "violet", "pink", "magenta", "brown", "black",
    "white", "grey", "gray", "gold", "silver", "beige", "navy", "teal", "maroon", "dark", "dim", "medium", "bright",
    "static", "moving", "slow", "fast"]) | {n.lower() for n in LANGUAGE_NAMES.values()}
"""Words that state a fact; a rewrite may only use those its draft already used."""
REFERENCE_WORDS = frozenset(NUMBER_WORDS) | frozenset(ORDINALS)
"""Words that say which earlier turn a memory question means; a rewrite must keep them."""
_NUMBER_RE = re.compile(r"\d+(?:\.\d+)?")
_QUESTION_RE = re.compile(r"^[\s*_#]*question[\s*_]*:[\s*_]*(.+)$", re.IGNORECASE | re.MULTILINE)
_ANSWER_RE = re.compile(r"^[\s*_#]*answer[\s*_]*:[\s*_]*(.+)$", re.IGNORECASE | re.MULTILINE)

ChatMessages = list[dict]
"""A chat request's messages; ``content`` is a string or a list of OpenAI content parts."""
Completer = Callable[[list[ChatMessages], int], list[str | None]]
"""Completes a batch of chat requests (``attempt`` 0 is greedy, later ones sample); None marks a failed request."""


@dataclass(frozen=True, slots=True)
class TurnDraft:
    """The part of a turn a model may rephrase: the question (without a planted statement) and the answer."""

    dialogue_index: int
    turn: Turn
    prefix: str
    """A planted personal statement that must stay verbatim ahead of the question."""
    question: str
    answer: str


def kept_words(question: str) -> list[str]:
    """What a rewrite of ``question`` must keep: the words saying which earlier turn it means, and the numbers
    saying which part of a clip (the seconds a caption event or a sentence spans)."""
    words = [w for w in normalize(question).split() if w in REFERENCE_WORDS] + _NUMBER_RE.findall(question)
    return list(dict.fromkeys(words))


def rewrite_prompt_hash() -> str:
    return hashlib.sha256(f"{REWRITE_PROMPT_VERSION}\x1f{SYSTEM_PROMPT}".encode()).hexdigest()[:16]


def _statements(dialogue: Dialogue) -> set[str]:
    return {r.text for t in dialogue.turns for r in t.memory_refs if r.text}


def drafts_of(dialogue_index: int, dialogue: Dialogue) -> list[TurnDraft]:
    statements = _statements(dialogue)
    out = []
    for turn in dialogue.turns:
        text = turn.user.text
        prefix = next((s for s in statements if text.startswith(s)), "")
        out.append(TurnDraft(dialogue_index, turn, prefix, text[len(prefix):].strip(), turn.assistant.text))
    return out


def chat_request(draft: TurnDraft) -> ChatMessages:
    keys = answer_parts(draft.turn)
    rules = [f"The answer must contain: {', '.join(repr(k) for k in keys)}.",
             f"The question must not contain: {', '.join(repr(k) for k in keys)}."]
    kept = kept_words(draft.question)
    if kept:
        rules.append(f"The question must keep the words: {', '.join(kept)}.")
    body = f"Question: {draft.question}\nAnswer: {draft.answer}\n" + " ".join(rules)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": body}]


class TurnPrompt(Protocol):
    """How a model writer asks for one turn and reads the reply."""

    def request(self, draft: TurnDraft, dialogue: Dialogue) -> ChatMessages: ...

    def parse(self, draft: TurnDraft, reply: str) -> tuple[str, str] | str:
        """(question, answer) from the reply to ``draft``'s request, or why the reply is refused."""


class TextRewritePrompt:
    """Rephrase the draft as text: two lines, ``Question:`` and ``Answer:``."""

    def request(self, draft: TurnDraft, dialogue: Dialogue) -> ChatMessages:
        return chat_request(draft)

    def parse(self, draft: TurnDraft, reply: str) -> tuple[str, str] | str:
        return parse_rewrite(reply) or "unparseable reply"


def parse_rewrite(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    q, a = _QUESTION_RE.search(text), _ANSWER_RE.search(text)
    if not q or not a:
        return None
    question, answer = q.group(1).strip(), a.group(1).strip()
    return (question, answer) if question and answer else None


def validate_rewrite(draft: TurnDraft, question: str, answer: str) -> str:
    """Empty when the rewrite keeps the grounding; else why it is refused."""
    keys = answer_parts(draft.turn)
    missing = [k for k in keys if not mentions(answer, k)]
    if missing:
        return f"answer lacks {missing[0]!r}"
    leaked = [k for k in keys if mentions(question, k)]
    if leaked:
        return f"question contains the answer {leaked[0]!r}"
    original = set(normalize(f"{draft.question} {draft.answer}").split())
    lost = [w for w in kept_words(draft.question) if w not in kept_words(question)]
    if lost:
        return f"question lost the reference {lost[0]!r}"
    new_words = set(normalize(f"{question} {answer}").split()) - original
    foreign = sorted(w for w in new_words if w in FACT_WORDS or w.isdigit())
    if foreign:
        return f"adds facts not in the grounding: {', '.join(foreign[:3])}"
    if len(question) > 3 * len(draft.question) + 60 or len(answer) > 3 * len(draft.answer) + 60:
        return "rewrite too long"
    return ""


def _apply(draft: TurnDraft, question: str, answer: str) -> Turn:
    user_text = f"{draft.prefix} {question}".strip()
    media = [p for p in draft.turn.user.parts if p.kind != "text"]
    return replace(draft.turn,
                   user=Message(role="user", parts=[*media, ContentPart(kind="text", text=user_text)],
                                speech_member=draft.turn.user.speech_member),
                   assistant=Message(role="assistant", parts=[ContentPart(kind="text", text=answer)],
                                     speech_member=draft.turn.assistant.speech_member))


def rewrite_dialogues(plans: list[DialoguePlan], clips: dict[str, AnnotatedClip], complete: Completer,
                      batch_size: int, attempts: int = 2,
                      prompt: TurnPrompt | None = None) -> list[tuple[Dialogue, Verdict]]:
    """Draft every plan with the template writer, have ``complete`` write each turn again (``prompt`` says how;
    a text rephrasing by default), keep the replies that pass the draft's grounding rules.

    A refused rewrite is retried (sampling) up to ``attempts`` times, then the template turn stays; the
    ``writer_validation`` verdict records how many turns the model wrote and why others were replaced.
    """
    prompt = prompt or TextRewritePrompt()
    template = TemplateWriter()
    dialogues = [template.write(p, clips) for p in plans]
    pending = [d for i, dialogue in enumerate(dialogues) for d in drafts_of(i, dialogue)]
    accepted: dict[tuple[int, int], Turn] = {}
    refusals: dict[tuple[int, int], str] = {}
    for attempt in range(attempts):
        still = []
        for start in range(0, len(pending), batch_size):
            chunk = pending[start:start + batch_size]
            replies = complete([prompt.request(d, dialogues[d.dialogue_index]) for d in chunk], attempt)
            for draft, reply in zip(chunk, replies):
                where = (draft.dialogue_index, draft.turn.index)
                parsed = "request failed" if reply is None else prompt.parse(draft, reply)
                reason = parsed if isinstance(parsed, str) else validate_rewrite(draft, *parsed)
                if reason:
                    refusals[where] = reason
                    still.append(draft)
                else:
                    accepted[where] = _apply(draft, *parsed)
                    refusals.pop(where, None)
        pending = still
        if not pending:
            break
    out = []
    for i, dialogue in enumerate(dialogues):
        turns = [accepted.get((i, t.index), t) for t in dialogue.turns]
        replaced = [f"{t.index} ({refusals[(i, t.index)]})" for t in dialogue.turns if (i, t.index) in refusals]
        score = (len(turns) - len(replaced)) / len(turns)
        detail = f"template kept for turns {'; '.join(replaced)}" if replaced else ""
        out.append((replace(dialogue, turns=turns),
                    Verdict(filter=WRITER_VALIDATION, passed=True, detail=detail[:500], score=round(score, 4))))
    return out


def cache_key(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
