"""Leakage: a question must not contain its own answer."""

from __future__ import annotations

from curators.filters.base import FilterContext, TurnFilter
from curators.writers.grounding import answer_parts, mentions
from schemas.dialogue import Sample, Turn, Verdict


class LeakageFilter(TurnFilter):
    name = "leakage"
    codes = frozenset({"answer_in_question"})

    def check_turn(self, turn: Turn, sample: Sample, context: FilterContext) -> Verdict | None:
        parts = answer_parts(turn)
        if not parts:
            return None
        leaked = [p for p in parts if mentions(turn.user.text, p)]
        if leaked:
            return self.reject("answer_in_question", f"question contains its answer {leaked[0]!r}",
                               len(leaked) / len(parts), turn.index)
        return self.accept(0.0, turn.index)
