"""Records of the eval sets' JSONL files: what a model is asked, and the grounded key it is scored against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from schemas.validation import require

EvalSetName = Literal["memory", "speech"]


@dataclass(kw_only=True, slots=True, frozen=True)
class EvalMessage:
    """One message of an eval dialogue's history, as the model under test sees it."""

    role: Literal["user", "assistant"]
    text: str
    media: list[str] = field(default_factory=list)
    """Members of the sample shown with this message (``m00.jpg``), read from the eval set's shards."""
    speech_member: str | None = None
    """The message spoken (``t03.user.flac``), when rendered."""


@dataclass(kw_only=True, slots=True, frozen=True)
class EvalQuestion:
    """``questions.jsonl``: a dialogue up to and including its final user question; only the final turn is
    scored."""

    id: str
    set: EvalSetName
    sample_key: str
    """The sample in the eval set's shards that holds the media and speech members."""
    messages: list[EvalMessage]


@dataclass(kw_only=True, slots=True, frozen=True)
class EvalAnswerKey:
    """``answer_key.jsonl``: what a correct final answer says, and the cell of the grid it is reported in."""

    id: str
    set: EvalSetName
    sample_key: str
    question_type: str
    memory_type: str | None
    """text, media or mixed for a memory question; None otherwise."""
    distance: int | None
    """Turns back to the furthest item the final question recalls."""
    distance_bin: str | None
    """The configured bin the distance falls in (``2-3``)."""
    items: int
    """Earlier items (media or statements) the final question recalls."""
    turns: int
    reference: str
    """The grounded final answer."""
    answer_parts: list[str]
    """What a correct answer must state, every part of it."""
    final_spoken: bool = False
    """The final question and the reference answer are both spoken."""
    sources: list[str] = field(default_factory=list)
    """Source identities (content hash, else URI) of the media the dialogue shows."""

    def __post_init__(self) -> None:
        require(bool(self.answer_parts), "answer_parts", "an answer key needs at least one part")
        require(self.items >= 0, "items", "must not be negative")
