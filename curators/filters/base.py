"""The one base class of dialogue filters: each looks at a sample and returns its verdicts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import ClassVar

from schemas.dialogue import CuratedSample, Sample, Turn, Verdict
from schemas.media import AnnotatedClip, Fact


@dataclass(kw_only=True, slots=True, frozen=True)
class FilterContext:
    """What a filter may consult beyond the sample itself."""

    facts: Mapping[str, Fact] = field(default_factory=dict)
    """Fact id -> fact, for every clip the sample uses."""
    clips: Mapping[str, AnnotatedClip] = field(default_factory=dict)
    """Clip id -> annotated clip (its frames, picture, sound and transcript), for a filter that shows a model
    the sample's media."""


class DialogueFilter:
    """A filter names itself and returns verdicts; a sample is kept only when every verdict passed."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    codes: ClassVar[frozenset[str]]
    """The closed set of reason codes its failed verdicts carry."""

    def verdicts(self, sample: Sample, context: FilterContext) -> list[Verdict]:
        raise NotImplementedError

    def accept(self, score: float | None = None, turn: int | None = None, detail: str = "") -> Verdict:
        return Verdict(filter=self.name, passed=True, detail=detail, score=score, turn=turn)

    def reject(self, code: str, detail: str, score: float | None = None, turn: int | None = None) -> Verdict:
        if code not in self.codes:
            raise ValueError(f"filter {self.name} has no reason code {code!r} (its codes: {sorted(self.codes)})")
        return Verdict(filter=self.name, passed=False, code=code, detail=detail, score=score, turn=turn)


class TurnFilter(DialogueFilter):
    """A filter that judges turns one by one: one verdict per turn it applies to."""

    def check_turn(self, turn: Turn, sample: Sample, context: FilterContext) -> Verdict | None:
        """The turn's verdict, or None when the filter does not apply to it."""
        raise NotImplementedError

    def verdicts(self, sample: Sample, context: FilterContext) -> list[Verdict]:
        out = []
        for turn in sample.dialogue.turns:
            v = self.check_turn(turn, sample, context)
            if v is not None:
                out.append(v)
        return out


def apply_filters(curated: CuratedSample, filters: list[DialogueFilter], context: FilterContext) -> CuratedSample:
    """The sample with every filter's verdicts appended, and the filters' versions in its lineage."""
    sample = curated.sample
    verdicts = list(sample.verdicts)
    for f in filters:
        verdicts.extend(f.verdicts(sample, context))
    operators = dict(sample.lineage.operators)
    operators.update({f"filter.{f.name}": f.version for f in filters})
    sample = replace(sample, verdicts=verdicts, lineage=replace(sample.lineage, operators=operators))
    return CuratedSample(sample=sample, files=curated.files)


def failed(curated: CuratedSample) -> list[Verdict]:
    return [v for v in curated.sample.verdicts if not v.passed]
