"""Seeded dialogue planning: lengths, which media enter at which turns, question types and memory distances."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from schemas.config import DialogueConfig
from schemas.dataset_format import media_suffix
from schemas.media import AnnotatedClip

PLANNER_VERSION = "2"

ASKABLE_FACT_KINDS = frozenset({
    "spoken_text", "spoken_keyword", "spoken_language", "dominant_color", "brightness", "motion",
    "on_screen_text", "duration", "media_kind", "metadata", "caption"})
"""Fact kinds the writers know how to turn into a question and a grounded answer."""

MAX_STATEMENTS = 10
"""Personal statements one dialogue can plant for text memory (the writers' table holds this many slots)."""

RECALL_WEIGHTS = {1: 0.7, 2: 0.2, 3: 0.1}
"""How many earlier media items a memory_media question asks about."""

FAR_DISTANCE = 8
"""A dialogue longer than this ends on a memory question reaching at least this far back."""


@dataclass(kw_only=True, slots=True, frozen=True)
class PlannedMedia:
    clip_id: str
    turn: int
    """The turn whose user message shows it."""
    member: str
    """Member suffix inside the sample (``m00.jpg``)."""


@dataclass(kw_only=True, slots=True, frozen=True)
class PlannedTurn:
    index: int
    question_type: str
    media_clip_id: str | None = None
    """Clip shown in this turn's user message."""
    recall_media_turns: list[int] = field(default_factory=list)
    """Earlier turns whose media the question recalls."""
    recall_statement_turns: list[int] = field(default_factory=list)
    """Earlier turns whose planted statement the question recalls."""
    plants_statement: bool = False
    """The user also states a personal detail here, recalled by a later text-memory question."""

    @property
    def distances(self) -> list[int]:
        return [self.index - t for t in (*self.recall_media_turns, *self.recall_statement_turns)]


@dataclass(kw_only=True, slots=True, frozen=True)
class DialoguePlan:
    dialogue_id: str
    seed: int
    """Seed of this dialogue's writer, derived from the run seed and the plan."""
    turns: list[PlannedTurn]
    media: list[PlannedMedia]
    max_distance: int = 12
    """Furthest turn back a memory question may reach (the writer keeps substitutes within it)."""

    @property
    def clip_ids(self) -> list[str]:
        return [m.clip_id for m in self.media]


def derive_seed(*parts: object) -> int:
    """A stable 63-bit seed from any parts (Python's hash() is salted per process)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def dialogue_count(n_clips: int, cfg: DialogueConfig) -> int:
    return cfg.dialogues if cfg.dialogues > 0 else max(1, round(n_clips / 3))


def _length_weights(cfg: DialogueConfig) -> tuple[list[int], list[float]]:
    lengths = list(range(cfg.min_turns, cfg.max_turns + 1))
    if cfg.length_distribution == "short":
        weights = [1.0 / n for n in lengths]
    elif cfg.length_distribution == "long":
        weights = [float(n) for n in lengths]
    else:
        weights = [1.0] * len(lengths)
    return lengths, weights


def plan_lengths(count: int, cfg: DialogueConfig, rng: random.Random) -> list[int]:
    """Stratified draws from the length distribution, so a handful of dialogues still spans min to max."""
    lengths, weights = _length_weights(cfg)
    total = sum(weights)
    cumulative, acc = [], 0.0
    for w in weights:
        acc += w / total
        cumulative.append(acc)
    out = []
    for i in range(count):
        u = (i + rng.random()) / count
        out.append(next((n for n, c in zip(lengths, cumulative) if u <= c), lengths[-1]))
    if count >= 2:
        out[0], out[-1] = cfg.max_turns, cfg.min_turns
    rng.shuffle(out)
    return out


def is_askable(clip: AnnotatedClip) -> bool:
    return any(f.kind in ASKABLE_FACT_KINDS for f in clip.facts)


def _media_pools(clips: list[AnnotatedClip], count: int, size: int, rng: random.Random) -> list[list[str]]:
    """Per dialogue, up to ``size`` candidate clips in order: a seed clip, the rest of its source, then others.

    Seeds walk a shuffled pool round-robin so every clip is used about equally; grouping by source keeps
    a dialogue about one video where it can be. Others are sampled, so planning stays linear in the pool.
    """
    by_source: dict[str, list[str]] = {}
    for c in clips:
        by_source.setdefault(c.clip.media_id, []).append(c.clip.clip_id)
    source_of = {c.clip.clip_id: c.clip.media_id for c in clips}
    order = [c.clip.clip_id for c in clips]
    rng.shuffle(order)
    pools = []
    for i in range(count):
        seed_clip = order[i % len(order)]
        same = [c for c in by_source[source_of[seed_clip]] if c != seed_clip][:size - 1]
        taken = {seed_clip, *same}
        extra = rng.sample(order, min(len(order), size + len(taken)))
        others = [c for c in extra if c not in taken][:size - len(taken)]
        pools.append([seed_clip, *same, *others])
    return pools


def _weighted_choice(rng: random.Random, weights: dict, allowed) -> object:
    options = [(k, w) for k, w in weights.items() if k in allowed and w > 0]
    if not options:
        return None
    keys, ws = zip(*options)
    return rng.choices(keys, weights=ws, k=1)[0]


def _plan_turns(length: int, pool: list[str], cfg: DialogueConfig, rng: random.Random) -> list[PlannedTurn]:
    k = cfg.max_memory_distance
    mix = dict(cfg.question_mix)
    media_turns: list[int] = []
    statement_turns: list[int] = []
    next_media = 0
    drafts: list[dict] = []
    # a long dialogue keeps one early turn free for the statement its final turn may need to recall
    reserved = max(0, length - 1 - k) if length > FAR_DISTANCE and k >= FAR_DISTANCE else None
    for t in range(length):
        in_reach = [m for m in media_turns if t - m <= k]
        free_for_statement = [s for s in range(max(0, t - k), t)
                              if s not in statement_turns and (s != reserved or t == length - 1)
                              and len(statement_turns) < MAX_STATEMENTS - (reserved is not None and t < length - 1)]
        feasible = {"no_context"}
        if next_media < len(pool):
            feasible.add("current_media")
        if in_reach:
            feasible.add("memory_media")
        if free_for_statement:
            feasible.add("memory_text")
            if in_reach:
                feasible.add("memory_mixed")
        qtype = _weighted_choice(rng, mix, feasible) or "no_context"
        draft = {"index": t, "question_type": qtype, "media_clip_id": None,
                 "recall_media_turns": [], "recall_statement_turns": []}
        far = _far_recall(t, length, drafts, media_turns, free_for_statement, mix, k, rng)
        if far is not None:
            draft["question_type"], far_media, far_statement = far
            draft["recall_media_turns"] = [far_media] if far_media is not None else []
            draft["recall_statement_turns"] = [far_statement] if far_statement is not None else []
            if far_statement is not None:
                statement_turns.append(far_statement)
        elif qtype == "current_media":
            draft["media_clip_id"] = pool[next_media]
            next_media += 1
            media_turns.append(t)
        elif qtype == "memory_media":
            n = min(_weighted_choice(rng, RECALL_WEIGHTS, RECALL_WEIGHTS), len(in_reach))
            draft["recall_media_turns"] = sorted(rng.sample(in_reach, n))
        elif qtype in ("memory_text", "memory_mixed"):
            s = rng.choice(free_for_statement)
            statement_turns.append(s)
            draft["recall_statement_turns"] = [s]
            if qtype == "memory_mixed":
                draft["recall_media_turns"] = [rng.choice(in_reach)]
        drafts.append(draft)
    return [PlannedTurn(plants_statement=d["index"] in statement_turns, **d) for d in drafts]


def _far_recall(t: int, length: int, drafts: list[dict], media_turns: list[int], free_for_statement: list[int],
                mix: dict[str, float], k: int, rng: random.Random) -> tuple[str, int | None, int | None] | None:
    """For a long dialogue's final turn, a recall at least FAR_DISTANCE back when none surely reached that far.

    MMMB-style evaluation scores the final turn, and accuracy is reported by distance, so long dialogues
    must end on a far memory question. Only statement recalls count as sure: a media recall may be moved
    closer by the writer when its clip has nothing left to ask. Returns (question type, media turn,
    statement turn); the far statement makes the question text or mixed, so its distance holds.
    """
    if t != length - 1 or length <= FAR_DISTANCE or k < FAR_DISTANCE:
        return None
    reached = max((d["index"] - r for d in drafts for r in d["recall_statement_turns"]), default=0)
    far_statement = next((s for s in free_for_statement if t - s >= FAR_DISTANCE), None)
    if reached >= FAR_DISTANCE or far_statement is None:
        return None
    far_media = next((m for m in media_turns if FAR_DISTANCE <= t - m <= k), None)
    options = {"memory_text": mix.get("memory_text", 0.0)}
    if far_media is not None:
        options["memory_mixed"] = mix.get("memory_mixed", 0.0)
    qtype = _weighted_choice(rng, options, options)
    if qtype is None:
        return None
    return qtype, far_media if qtype == "memory_mixed" else None, far_statement


def plan_dialogues(clips: list[AnnotatedClip], cfg: DialogueConfig, seed: int) -> list[DialoguePlan]:
    """Plan dialogues over the annotated pool; the same clips, config and seed give the same plans."""
    usable = sorted((c for c in clips if is_askable(c)), key=lambda c: c.clip.clip_id)
    if not usable:
        return []
    rng = random.Random(derive_seed("plan", seed, *(c.clip.clip_id for c in usable)))
    count = dialogue_count(len(usable), cfg)
    lengths = plan_lengths(count, cfg, rng)
    pools = _media_pools(usable, count, cfg.max_turns, rng)
    kinds = {c.clip.clip_id: c.clip.kind for c in usable}
    plans = []
    for i, (length, pool) in enumerate(zip(lengths, pools)):
        turns = _plan_turns(length, pool, cfg, rng)
        media = []
        for t in turns:
            if t.media_clip_id is not None:
                media.append(PlannedMedia(clip_id=t.media_clip_id, turn=t.index,
                                          member=media_suffix(len(media), kinds[t.media_clip_id])))
        dialogue_id = hashlib.sha256(f"{seed}:{i}:{length}:{','.join(m.clip_id for m in media)}".encode()).hexdigest()[:16]
        plans.append(DialoguePlan(dialogue_id=dialogue_id, seed=derive_seed("write", seed, dialogue_id),
                                  turns=turns, media=media, max_distance=cfg.max_memory_distance))
    return plans
