"""Grounding: every answer contains its key, and the key is derived from the turn's facts or recalled text."""

from __future__ import annotations

from curators.filters.base import FilterContext, TurnFilter
from curators.writers.grounding import answer_parts, fact_answer, mentions, normalize
from curators.writers.phrasebook import GENERAL_KNOWLEDGE
from schemas.dialogue import Sample, Turn, Verdict

_GENERAL_KEYS = frozenset(normalize(key) for _, key, _ in GENERAL_KNOWLEDGE)


class GroundingFilter(TurnFilter):
    name = "grounding"
    codes = frozenset({"no_answer_key", "unknown_fact", "answer_lacks_key", "key_not_grounded"})

    def check_turn(self, turn: Turn, sample: Sample, context: FilterContext) -> Verdict | None:
        parts = answer_parts(turn)
        if not parts:
            return self.reject("no_answer_key", "no answer key", 0.0, turn.index)
        unknown = [f for f in turn.fact_ids if f not in context.facts]
        if unknown:
            return self.reject("unknown_fact", f"unknown fact {unknown[0]}", 0.0, turn.index)
        derived = {normalize(fact_answer(context.facts[f])) for f in turn.fact_ids}
        spans = [r.text for r in turn.memory_refs if r.text]
        for grounded, part in enumerate(parts):
            if not mentions(turn.assistant.text, part):
                return self.reject("answer_lacks_key", f"answer lacks its key {part!r}", grounded / len(parts),
                                   turn.index)
            from_fact = normalize(part) in derived
            from_text = any(mentions(span, part) for span in spans)
            from_table = turn.question_type == "no_context" and normalize(part) in _GENERAL_KEYS
            if not (from_fact or from_text or from_table):
                return self.reject("key_not_grounded", f"key {part!r} not derived from the grounding",
                                   grounded / len(parts), turn.index)
        return self.accept(1.0, turn.index)
