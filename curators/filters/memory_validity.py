"""Memory validity: a memory question must need the referenced turn, not the turns after it."""

from __future__ import annotations

from curators.filters.base import FilterContext, TurnFilter
from curators.writers.grounding import answer_parts, mentions
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


class MemoryValidityFilter(TurnFilter):
    name = "memory_validity"

    def check_turn(self, turn: Turn, sample: Sample, context: FilterContext) -> Verdict | None:
        if turn.question_type not in MEMORY_TYPES:
            return None
        dialogue = sample.dialogue
        parts = answer_parts(turn)
        if not parts:
            return self.verdict(False, "memory question without an answer key", 0.0, turn.index)
        aligned = len(parts) == len(turn.memory_refs)
        for i, ref in enumerate(turn.memory_refs):
            if not _ref_present(dialogue, ref):
                return self.verdict(False, f"turn {ref.turn} does not hold the recalled item", float(ref.distance),
                                    turn.index)
            found = answer_from_truncated_history(dialogue, turn, ref, [parts[i]] if aligned else parts)
            if found is not None:
                part, at = found
                return self.verdict(False, f"answer {part!r} restated at turn {at}, between turn {ref.turn} and "
                                           f"turn {turn.index}", float(ref.distance), turn.index)
        return self.verdict(True, "", float(turn.memory_distance or 0), turn.index)
