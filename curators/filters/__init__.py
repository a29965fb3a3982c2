"""Dialogue filters, one per module, sharing the small base class in ``base``."""

from __future__ import annotations

from curators.filters.base import DialogueFilter, FilterContext, apply_filters, failed
from curators.filters.grounding import GroundingFilter
from curators.filters.language import LanguageFilter
from curators.filters.leakage import LeakageFilter
from curators.filters.memory_validity import MemoryValidityFilter
from curators.filters.near_duplicate import NearDuplicateIndex
from curators.filters.token_budget import TokenBudgetFilter
from curators.writers.rewrite import Completer
from schemas.token_accounting import TokenAccounting


def default_filters(accounting: TokenAccounting, language: str = "en",
                    answerer: Completer | None = None) -> list[DialogueFilter]:
    """The per-sample filters every run applies (near-duplicates are found across samples, in the stage).

    ``answerer`` (a model writer's ``complete``) makes memory validity also ask a model.
    """
    return [GroundingFilter(), MemoryValidityFilter(answerer), LeakageFilter(), LanguageFilter(language),
            TokenBudgetFilter(accounting)]


__all__ = ["DialogueFilter", "FilterContext", "GroundingFilter", "LanguageFilter", "LeakageFilter",
           "MemoryValidityFilter", "NearDuplicateIndex", "TokenBudgetFilter", "apply_filters", "default_filters",
           "failed"]
