"""Dialogue filters, one per module, sharing the small base class in ``base``."""

from __future__ import annotations

from curators.filters.base import DialogueFilter, FilterContext, apply_filters, failed
from curators.filters.grounding import GroundingFilter
from curators.filters.language import LanguageFilter
from curators.filters.leakage import LeakageFilter
from curators.filters.memory_validity import ANSWER_CHECK_CODES, MemoryAnswerCheck, MemoryValidityFilter
from curators.filters.near_duplicate import NEAR_DUPLICATE_FILTER, NearDuplicateIndex
from curators.filters.token_budget import TokenBudgetFilter
from curators.speech import SPEECH_CODES, SPEECH_FILTER
from curators.writers.rewrite import WRITER_VALIDATION, WRITER_VALIDATION_CODES
from schemas.token_accounting import TokenAccounting

REASON_CODES: dict[str, frozenset[str]] = {
    **{f.name: f.codes for f in (GroundingFilter, MemoryValidityFilter, LeakageFilter, LanguageFilter,
                                 TokenBudgetFilter)},
    NEAR_DUPLICATE_FILTER: NearDuplicateIndex.codes,
    SPEECH_FILTER: SPEECH_CODES,
    WRITER_VALIDATION: WRITER_VALIDATION_CODES,
    **ANSWER_CHECK_CODES,
}
"""Every verdict's filter -> the closed set of reason codes its failed verdicts carry (README lists them)."""


def default_filters(accounting: TokenAccounting, language: str = "en",
                    answer_check: MemoryAnswerCheck | None = None) -> list[DialogueFilter]:
    """The per-sample filters every run applies (near-duplicates are found across samples, in the stage).

    ``answer_check`` (an answerer model's) puts memory questions to a model with and without their turn.
    """
    return [GroundingFilter(), MemoryValidityFilter(), *([answer_check] if answer_check else []), LeakageFilter(),
            LanguageFilter(language), TokenBudgetFilter(accounting)]


__all__ = ["REASON_CODES", "DialogueFilter", "FilterContext", "GroundingFilter", "LanguageFilter", "LeakageFilter",
           "MemoryAnswerCheck", "MemoryValidityFilter", "NearDuplicateIndex", "TokenBudgetFilter", "apply_filters",
           "default_filters", "failed"]
