"""Records for multi-turn dialogues and the samples that carry them into shards."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from schemas.media import MediaKind
from schemas.validation import require

QuestionType = Literal["no_context", "current_media", "memory_media", "memory_text", "memory_mixed"]
QUESTION_TYPES: tuple[str, ...] = QuestionType.__args__  # type: ignore[attr-defined]
MEMORY_TYPES: tuple[str, ...] = ("memory_media", "memory_text", "memory_mixed")

Role = Literal["user", "assistant"]
PartKind = Literal["text", "image", "video", "audio"]


@dataclass(kw_only=True, slots=True, frozen=True)
class ContentPart:
    """One piece of a message: text, or a reference to a media member of the same sample."""

    kind: PartKind
    text: str | None = None
    member: str | None = None
    """Member suffix inside the sample (``m00.jpg``), never a path."""

    def __post_init__(self) -> None:
        if self.kind == "text":
            require(self.text is not None, "text", "a text part needs text")
            require(self.member is None, "member", "a text part has no member")
        else:
            require(bool(self.member), "member", f"a {self.kind} part needs a member")


@dataclass(kw_only=True, slots=True, frozen=True)
class Message:
    role: Role
    parts: list[ContentPart]
    speech_member: str | None = None
    """Member suffix of this message spoken (``t03.user.flac``), when rendered by TTS."""

    @property
    def text(self) -> str:
        return " ".join(p.text for p in self.parts if p.kind == "text" and p.text)


@dataclass(kw_only=True, slots=True, frozen=True)
class MemoryRef:
    """What a memory question depends on: an earlier turn and the media or text in it."""

    turn: int
    """Index of the earlier turn."""
    distance: int
    """Turns between the question and the referenced turn (>= 1)."""
    member: str | None = None
    """The media member recalled, for media memory."""
    text: str | None = None
    """The span of earlier dialogue text recalled, for text memory."""
    start_s: float | None = None
    end_s: float | None = None
    """Time span inside the recalled media, when the fact has one."""

    def __post_init__(self) -> None:
        require(self.turn >= 0, "turn", "must not be negative")
        require(self.distance >= 1, "distance", "must be at least 1")
        require(self.member is not None or self.text is not None, "member", "a memory ref names a member or a text span")


@dataclass(kw_only=True, slots=True, frozen=True)
class Turn:
    """One round: a user message (question, maybe with new media) and the assistant's answer."""

    index: int
    question_type: QuestionType
    user: Message
    assistant: Message
    fact_ids: list[str] = field(default_factory=list)
    """Facts the question and answer are grounded on."""
    memory_refs: list[MemoryRef] = field(default_factory=list)
    answer_key: str = ""
    """The short grounded answer (a colour, a word) that the assistant text must contain."""

    def __post_init__(self) -> None:
        require(self.index >= 0, "index", "must not be negative")
        require(self.user.role == "user", "user.role", "must be 'user'")
        require(self.assistant.role == "assistant", "assistant.role", "must be 'assistant'")
        if self.question_type in MEMORY_TYPES:
            require(bool(self.memory_refs), "memory_refs", f"a {self.question_type} question needs memory refs")
            for i, ref in enumerate(self.memory_refs):
                require(ref.turn < self.index, f"memory_refs[{i}].turn", "must be an earlier turn")
                require(ref.distance == self.index - ref.turn, f"memory_refs[{i}].distance", "must equal index - turn")

    @property
    def memory_distance(self) -> int | None:
        return max((r.distance for r in self.memory_refs), default=None)


@dataclass(kw_only=True, slots=True, frozen=True)
class MediaItem:
    """A media member of a dialogue and the source span it came from."""

    member: str
    clip_id: str
    kind: MediaKind
    source_uri: str
    start_s: float
    end_s: float
    turn: int
    """The turn that shows it to the model."""
    tiles: int = 1
    """448x448 tiles it takes (images: dynamic tiling plus thumbnail; video: frames)."""


@dataclass(kw_only=True, slots=True, frozen=True)
class Dialogue:
    dialogue_id: str
    turns: list[Turn]
    media: list[MediaItem] = field(default_factory=list)

    def __post_init__(self) -> None:
        require(bool(self.turns), "turns", "a dialogue has at least one turn")
        for i, t in enumerate(self.turns):
            require(t.index == i, f"turns[{i}].index", f"must be {i}")


REASON_CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
"""A reason code is a short snake_case identifier (``answer_restated``), the same for every sample."""


@dataclass(kw_only=True, slots=True, frozen=True)
class Verdict:
    """One filter's decision on a sample (or on one turn of it)."""

    filter: str
    passed: bool
    code: str = ""
    """Why it failed: a code from the filter's closed set (``answer_restated``), so rejections group; empty
    when passed."""
    detail: str = ""
    """The same in words, with the values that made it fail; on a passed verdict, a note (or empty)."""
    score: float | None = None
    turn: int | None = None

    def __post_init__(self) -> None:
        if self.passed:
            require(self.code == "", "code", f"a passed verdict has no reason code, got {self.code!r:.60}")
        else:
            require(bool(REASON_CODE_RE.match(self.code)), "code",
                    f"a failed verdict needs a snake_case reason code, got {self.code!r:.60}")


@dataclass(kw_only=True, slots=True, frozen=True)
class SourceSpan:
    uri: str
    sha256: str
    start_s: float
    end_s: float


@dataclass(kw_only=True, slots=True, frozen=True)
class Lineage:
    """Everything needed to trace a sample back and to re-make it."""

    sources: list[SourceSpan]
    operators: dict[str, str]
    """Operator name -> version."""
    models: dict[str, str] = field(default_factory=dict)
    """Role (asr, writer, tts) -> model id or path name."""
    prompt_hashes: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    config_hash: str = ""


@dataclass(kw_only=True, slots=True, frozen=True)
class TokenEstimate:
    """Token counts by DESIGN.md's token accounting."""

    text: int
    image: int
    video: int
    audio: int

    @property
    def total(self) -> int:
        return self.text + self.image + self.video + self.audio


@dataclass(kw_only=True, slots=True, frozen=True)
class PreferencePair:
    """A DPO pair on the final turn."""

    turn: int
    chosen: str
    rejected: str
    rejected_source: str
    """How the rejected answer was made (``other_item``, ``truncated_history``)."""


@dataclass(kw_only=True, slots=True, frozen=True)
class Sample:
    """One dialogue as stored in a shard (``KEY.json``)."""

    key: str
    schema_version: int
    dialogue: Dialogue
    lineage: Lineage
    tokens: TokenEstimate
    verdicts: list[Verdict] = field(default_factory=list)
    preference: PreferencePair | None = None

    def __post_init__(self) -> None:
        from schemas.dataset_format import check_key

        check_key(self.key, "key")


@dataclass(kw_only=True, slots=True, frozen=True)
class CuratedSample:
    """A sample on its way to the shard writer: the record plus the local files of its members."""

    sample: Sample
    files: dict[str, str]
    """Member suffix (``m00.jpg``, ``t03.user.flac``) -> local path of its bytes."""

    @property
    def kept(self) -> bool:
        """True when every filter passed; rejected samples only reach the catalog's verdicts."""
        return all(v.passed for v in self.sample.verdicts)
