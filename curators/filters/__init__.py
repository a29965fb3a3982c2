"""Dialogue filters, one per module, sharing the small base class in ``base``."""

from __future__ import annotations

from curators.filters.base import DialogueFilter, FilterContext, apply_filters, failed
from curators.filters.grounding import GroundingFilter
from curators.filters.language import LanguageFilter
from curators.filters.leakage import LeakageFilter
from curators.filters.memory_validity import MemoryValidityFilter
from curators.filters.near_duplicate import NEAR_DUPLICATE_FILTER, NearDuplicateIndex
from curators.filters.token_budget import TokenBudgetFilter
from curators.speech import SPEECH_CODES, SPEECH_FILTER
from curators.writers.rewrite import WRITER_VALIDATION, WRITER_VALIDATION_CODES, Completer
from schemas.token_accounting import TokenAccounting

REASON_CODES: dict[str, frozenset[str]] = {
    **{f.name: f.codes for f in (GroundingFilter, MemoryValidityFilter, LeakageFilter, LanguageFilter,
                                 TokenBudgetFilter)},
    NEAR_DUPLICATE_FILTER: NearDuplicateIndex.codes,
    SPEECH_FILTER: SPEECH_CODES,
    WRITER_VALIDATION: WRITER_VALIDATION_CODES,
}
"""Every verdict's filter -> the closed set of reason codes its failed verdicts carry (README lists them)."""


def default_filters(accounting: TokenAccounting, language: str = "en",
                    answerer: Completer | None = None) -> list[DialogueFilter]:
    """The per-sample filters every run applies (near-duplicates are found across samples, in the stage).

    ``answerer`` (a model writer's ``complete``) makes memory validity also ask a model.
    """
    return [GroundingFilter(), MemoryValidityFilter(answerer), LeakageFilter(), LanguageFilter(language),
            TokenBudgetFilter(accounting)]


__all__ = ["REASON_CODES", "DialogueFilter", "FilterContext", "GroundingFilter", "LanguageFilter", "LeakageFilter",
           "MemoryValidityFilter", "NearDuplicateIndex", "TokenBudgetFilter", "apply_filters", "default_filters",
           "failed"]
