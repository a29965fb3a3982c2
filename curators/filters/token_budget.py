"""Token budget: a sample must fit in one packed sequence by DESIGN.md's token accounting."""

from __future__ import annotations

from curators.filters.base import DialogueFilter, FilterContext
from schemas.dialogue import Sample, Verdict
from schemas.token_accounting import TokenAccounting


class TokenBudgetFilter(DialogueFilter):
    name = "token_budget"
    codes = frozenset({"over_budget"})

    def __init__(self, accounting: TokenAccounting):
        self.accounting = accounting

    def verdicts(self, sample: Sample, context: FilterContext) -> list[Verdict]:
        total, limit = sample.tokens.total, self.accounting.max_sequence
        if total > limit:
            return [self.reject("over_budget", f"{total} tokens exceed the {limit} budget", total / limit)]
        return [self.accept(total / limit)]
