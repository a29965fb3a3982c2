"""Evaluation splits (MMMB-style memory, MSIB-style spoken) disjoint in source media, and their scorer."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from curators.writers.grounding import ANSWER_SEPARATOR, mentions
from schemas.dialogue import MEMORY_TYPES, Sample

EvalSplit = Literal["mmmb", "msib"]
MEMORY_KIND = {"memory_text": "text", "memory_media": "media", "memory_mixed": "mixed"}
MSIB_TURNS = (2, 10)
"""Spoken dialogues of this many turns make the MSIB-style split."""
DISTANCE_BUCKETS = ((1, 1), (2, 3), (4, 7), (8, 20))


@dataclass(kw_only=True, slots=True, frozen=True)
class EvalMessage:
    role: str
    text: str
    media: list[str] = field(default_factory=list)
    """Members of the sample shown with this message (``m00.jpg``)."""
    speech_member: str | None = None


@dataclass(kw_only=True, slots=True, frozen=True)
class EvalItem:
    """One scored dialogue: the history up to the final question, and what the final answer must say."""

    eval_id: str
    split: EvalSplit
    sample_key: str
    question_type: str
    memory_kind: str | None
    """text, media or mixed for memory questions."""
    distance: int | None
    """Turns back to the furthest item the final question recalls."""
    items_to_recall: int
    turns: int
    messages: list[EvalMessage]
    """Every message up to and including the final user question."""
    reference: str
    """The grounded final answer."""
    answer_key: str
    """Parts (joined by ``; ``) a correct answer must contain."""
    sources: list[str]


def sample_sources(sample: Sample) -> set[str]:
    """Source media identities: the content hash when known, else the URI."""
    return {s.sha256 or s.uri for s in sample.lineage.sources}


def held_out_sources(sources: Iterable[str], fraction: float, seed: int) -> set[str]:
    """A seeded, order-free share of the sources set aside for evaluation."""
    limit = int(fraction * 2**32)
    return {s for s in sources
            if int.from_bytes(hashlib.sha256(f"{seed}:{s}".encode()).digest()[:4], "big") < limit}


def _messages(sample: Sample) -> list[EvalMessage]:
    turns = sample.dialogue.turns
    out = []
    for turn in turns:
        media = [p.member for p in turn.user.parts if p.member]
        out.append(EvalMessage(role="user", text=turn.user.text, media=media, speech_member=turn.user.speech_member))
        if turn.index < len(turns) - 1:
            out.append(EvalMessage(role="assistant", text=turn.assistant.text,
                                   speech_member=turn.assistant.speech_member))
    return out


def eval_item(sample: Sample, split: EvalSplit) -> EvalItem:
    final = sample.dialogue.turns[-1]
    return EvalItem(eval_id=f"{split}-{sample.key}", split=split, sample_key=sample.key,
                    question_type=final.question_type, memory_kind=MEMORY_KIND.get(final.question_type),
                    distance=final.memory_distance, items_to_recall=len(final.memory_refs),
                    turns=len(sample.dialogue.turns), messages=_messages(sample), reference=final.assistant.text,
                    answer_key=final.answer_key, sources=sorted(sample_sources(sample)))


@dataclass(kw_only=True, slots=True, frozen=True)
class EvalSplits:
    mmmb: list[EvalItem]
    msib: list[EvalItem]
    train_keys: list[str]
    """Samples that share no source media with either split: the training split."""
    eval_sources: list[str]
    dropped: int
    """Samples that fit neither side (they mix held-out and training sources)."""


def split_for_eval(samples: list[Sample], *, fraction: float = 0.2, seed: int = 0,
                   train_sources: set[str] | None = None) -> EvalSplits:
    """MMMB- and MSIB-style items from samples whose media never reach the training split.

    With ``train_sources`` (the media of a separate training dataset) every sample free of them is an
    evaluation candidate; otherwise a seeded ``fraction`` of this dataset's sources is held out.
    """
    all_sources = set().union(*(sample_sources(s) for s in samples)) if samples else set()
    if train_sources is None:
        eval_sources = held_out_sources(all_sources, fraction, seed)
        excluded = all_sources - eval_sources
    else:
        eval_sources, excluded = all_sources - train_sources, train_sources

    def is_eval(src: set[str]) -> bool:
        return bool(src) and not (src & excluded)

    def is_train(src: set[str]) -> bool:  # with a separate training dataset, that dataset is the training split
        return train_sources is None and not (src & eval_sources)

    mmmb, msib, train, dropped = [], [], [], 0
    for sample in sorted(samples, key=lambda s: s.key):
        src = sample_sources(sample)
        if is_eval(src):
            final = sample.dialogue.turns[-1]
            if final.question_type in MEMORY_TYPES:
                mmmb.append(eval_item(sample, "mmmb"))
            spoken = final.user.speech_member is not None
            if spoken and MSIB_TURNS[0] <= len(sample.dialogue.turns) <= MSIB_TURNS[1]:
                msib.append(eval_item(sample, "msib"))
        elif is_train(src):
            train.append(sample.key)
        else:
            dropped += 1
    used = set().union(*(set(i.sources) for i in mmmb + msib)) if mmmb or msib else set()
    return EvalSplits(mmmb=mmmb, msib=msib, train_keys=train, eval_sources=sorted(used), dropped=dropped)


def _key_parts(item: EvalItem) -> list[str]:
    return [p for p in item.answer_key.split(ANSWER_SEPARATOR) if p.strip()]


def is_correct(item: EvalItem, answer: str) -> bool:
    """Correct when the answer states every part of the grounded answer key."""
    parts = _key_parts(item)
    return bool(parts) and all(mentions(answer, p) for p in parts)


def content_score(item: EvalItem, answer: str) -> int:
    """MSIB-style 1-5 content score of a final answer against the grounded one.

    5: every key part, about as concise as the reference; 4: every part but rambling (over three times the
    reference's words); 3: some parts; 2: none but an attempt; 1: empty.
    """
    parts = _key_parts(item)
    if not answer.strip():
        return 1
    found = sum(mentions(answer, p) for p in parts)
    if parts and found == len(parts):
        return 5 if len(answer.split()) <= 3 * max(1, len(item.reference.split())) else 4
    return 3 if found else 2


def distance_bucket(distance: int | None) -> str:
    if distance is None:
        return "none"
    for low, high in DISTANCE_BUCKETS:
        if low <= distance <= high:
            return str(low) if low == high else f"{low}-{high}"
    return f">{DISTANCE_BUCKETS[-1][1]}"


@dataclass(kw_only=True, slots=True, frozen=True)
class ScoreRow:
    group: str
    """``all``, ``type=...``, ``distance=...`` or ``items=...``, per split."""
    correct: int
    total: int
    content_points: int = 0
    """Sum of the 1-5 content scores."""

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def mean_content(self) -> float:
        return self.content_points / self.total if self.total else 0.0


def score_answers(items: list[EvalItem], answers: Mapping[str, str]) -> list[ScoreRow]:
    """Accuracy overall, by question type, by turn distance and by items recalled; a missing answer is wrong."""
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for item in items:
        answer = answers.get(item.eval_id, "")
        ok, points = int(is_correct(item, answer)), content_score(item, answer)
        kind = item.memory_kind or item.question_type
        for group in ("all", f"type={kind}", f"distance={distance_bucket(item.distance)}",
                      f"items={item.items_to_recall}"):
            row = tally[f"{item.split} {group}"]
            row[0] += ok
            row[1] += 1
            row[2] += points
    order = {"all": 0, "type": 1, "distance": 2, "items": 3}
    keys = sorted(tally, key=lambda g: (g.split()[0], order[g.split()[1].split("=")[0]], g))
    return [ScoreRow(group=k, correct=tally[k][0], total=tally[k][1], content_points=tally[k][2]) for k in keys]
