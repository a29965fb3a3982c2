"""DPO pairs on a dialogue's final turn: the grounded answer against a plausible wrong one."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from curators.filters.memory_validity import turn_text
from curators.writers.grounding import answer_parts, fact_answer, mentions, normalize
from curators.writers.phrasebook import GENERAL_KNOWLEDGE, STATEMENT_SLOTS
from schemas.dialogue import Dialogue, PreferencePair, Turn
from schemas.media import Fact

PREFERENCE_VERSION = "1"


def answer_pool(facts: Mapping[str, Fact]) -> dict[str, list[str]]:
    """Fact kind -> the distinct answers that kind takes across the pool, for wrong-but-plausible answers."""
    pool: dict[str, set[str]] = {}
    for fact in facts.values():
        pool.setdefault(fact.kind, set()).add(fact_answer(fact))
    return {kind: sorted(values) for kind, values in pool.items()}


def _turn_kinds(turn: Turn, facts: Mapping[str, Fact]) -> list[str]:
    return [facts[f].kind for f in turn.fact_ids if f in facts]


def _truncated_history_guess(dialogue: Dialogue, turn: Turn, target: str, kind: str,
                             facts: Mapping[str, Fact]) -> str | None:
    """What an answerer that forgot the referenced turn would say: the latest same-kind answer said after it."""
    if not turn.memory_refs:
        return None
    after = min(r.turn for r in turn.memory_refs)
    for earlier in reversed(dialogue.turns[after + 1:turn.index]):
        for fid in earlier.fact_ids:
            fact = facts.get(fid)
            if fact is not None and fact.kind == kind:
                guess = fact_answer(fact)
                if normalize(guess) != normalize(target) and mentions(turn_text(earlier), guess):
                    return guess
    return None


def _alternatives(turn: Turn, target: str, kind: str | None, pool: Mapping[str, list[str]]) -> list[str]:
    if kind is not None:
        candidates = pool.get(kind, [])
    elif turn.question_type == "no_context":
        candidates = [key for _, key, _ in GENERAL_KNOWLEDGE]
    else:
        candidates = next((list(s.values) for s in STATEMENT_SLOTS.values() if target in s.values), [])
    return [c for c in candidates if normalize(c) != normalize(target)]


def _substitute(text: str, target: str, wrong: str) -> str:
    pattern = re.compile(r"(?<![0-9A-Za-z])" + re.escape(target) + r"(?![0-9A-Za-z])", re.IGNORECASE)
    return pattern.sub(lambda _: wrong, text)


def preference_pair(dialogue: Dialogue, facts: Mapping[str, Fact], pool: Mapping[str, list[str]],
                    seed: int) -> PreferencePair | None:
    """A pair for the final turn, or None when no plausible wrong answer exists.

    The rejected answer is the chosen text with its key swapped for what an answerer that saw only the
    truncated history would say, else for the same kind of answer taken from another item.
    """
    final = dialogue.turns[-1]
    parts = answer_parts(final)
    if not parts:
        return None
    target = parts[0]
    kinds = _turn_kinds(final, facts)
    kind = kinds[0] if kinds else None
    chosen = final.assistant.text
    wrong, source = None, "other_item"
    if kind is not None:
        wrong = _truncated_history_guess(dialogue, final, target, kind, facts)
        source = "truncated_history" if wrong else source
    if wrong is None:
        options = _alternatives(final, target, kind, pool)
        if not options:
            return None
        pick = int(hashlib.sha256(f"{seed}:{dialogue.dialogue_id}".encode()).hexdigest(), 16) % len(options)
        wrong = options[pick]
    rejected = _substitute(chosen, target, wrong)
    if rejected == chosen:
        return None
    return PreferencePair(turn=final.index, chosen=chosen, rejected=rejected, rejected_source=source)
