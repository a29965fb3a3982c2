"""Memory validity: a memory question must need the referenced turn, not the turns after it."""

from __future__ import annotations

from curators.filters.base import FilterContext, TurnFilter
from curators.writers.grounding import answer_parts, mentions
from curators.writers.rewrite import Completer
from schemas.dialogue import MEMORY_TYPES, Dialogue, MemoryRef, Sample, Turn, Verdict


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


ANSWERER_PROMPT = ("Answer the user's last question in a few words, using only this conversation. "
                   "If the conversation does not tell, say you do not know.")


def truncated_history_request(dialogue: Dialogue, turn: Turn, ref: MemoryRef) -> list[dict[str, str]]:
    """Chat messages holding only the turns after ``ref.turn``, then the memory question itself."""
    messages = [{"role": "system", "content": ANSWERER_PROMPT}]
    for between in dialogue.turns[ref.turn + 1:turn.index]:
        messages.append({"role": "user", "content": between.user.text})
        messages.append({"role": "assistant", "content": between.assistant.text})
    messages.append({"role": "user", "content": turn.user.text})
    return messages


class MemoryValidityFilter(TurnFilter):
    """Rule-based by default; with ``complete`` (a model writer's completer) a model also tries to answer."""

    name = "memory_validity"
    codes = frozenset({"no_answer_key", "recalled_item_missing", "answer_restated", "model_answered"})

    def __init__(self, complete: Completer | None = None):
        self.complete = complete

    def _model_answers(self, dialogue: Dialogue, turn: Turn, ref: MemoryRef, parts: list[str]) -> str | None:
        (reply,) = self.complete([truncated_history_request(dialogue, turn, ref)], 0)
        if reply and any(mentions(reply, p) for p in parts):
            return reply
        return None

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
            if self.complete is not None:
                reply = self._model_answers(dialogue, turn, ref, wanted)
                if reply is not None:
                    return self.reject("model_answered", f"a model answered without turn {ref.turn}: "
                                                         f"{reply[:120]!r}", float(ref.distance), turn.index)
        return self.accept(float(turn.memory_distance or 0), turn.index)
