"""Eval sets from held-out media: the train/eval split of sources, the memory-set planner over its grid, the
eval items, and the scorer (accuracy by memory type, turn distance and items recalled; a 1-5 content score)."""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from curators.dialogue_plan import DialoguePlan, PlannedMedia, PlannedTurn, derive_seed, is_askable
from curators.media_dedup import Duplicate, MediaSignature, duplicates_among, merge_duplicates, signature_bands
from curators.writers.grounding import answer_parts, mentions
from curators.writers.phrasebook import KIND_PHRASES
from schemas.config import MemorySetConfig
from schemas.dataset_format import media_suffix
from schemas.dialogue import CuratedSample, Sample
from schemas.evalset import EvalAnswerKey, EvalMessage, EvalQuestion, EvalSetName
from schemas.media import AnnotatedClip

EVAL_PLANNER_VERSION = "1"
MEMORY_TYPE_OF = {"memory_text": "text", "memory_media": "media", "memory_mixed": "mixed"}
QUESTION_TYPE_OF = {v: k for k, v in MEMORY_TYPE_OF.items()}
SPLIT_SALT = "omnicurate-eval-split"
"""Salt of the split hash: unrelated to the partition hash, so a source's side never follows its partition."""
DISTRACTOR_STATEMENTS = 2
"""Most personal statements a memory dialogue plants besides the ones its final question recalls."""

Cell = tuple[str, tuple[int, int], int]
"""(memory type, distance bin, items recalled)."""


# --- the split ------------------------------------------------------------------------------------------

def source_identity(clip: AnnotatedClip) -> str:
    """What the split hashes: the source's content hash (identical bytes under two URIs fall on one side), else
    its URI. The same identity as a sample's lineage records (``sha256 or uri``)."""
    return clip.source_sha256 or clip.clip.source_uri


def is_held_out(identity: str, share: float) -> bool:
    """A stable ``share`` of all identities goes to evaluation, independent of partitions, seed and order."""
    digest = hashlib.blake2b(f"{SPLIT_SALT}\x1f{identity}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < share * 2**64


def split_pool(clips: Iterable[AnnotatedClip], share: float) -> tuple[list[AnnotatedClip], list[AnnotatedClip]]:
    """(train clips, eval clips) by their source's side of the split; order kept."""
    train, held = [], []
    for c in clips:
        (held if share > 0 and is_held_out(source_identity(c), share) else train).append(c)
    return train, held


def straddling_duplicates(train: Iterable[MediaSignature], held: Iterable[MediaSignature]) -> list[Duplicate]:
    """Near-duplicate clips on both sides of the split within one partition (the cross-partition pass leaves
    pairs inside a partition alone): the later copy of each pair, by the order that pass keeps copies in."""
    groups: dict[str, list[MediaSignature]] = defaultdict(list)
    for side, sigs in ((0, train), (1, held)):
        for sig in sigs:
            sig = replace(sig, partition=side)
            for band in signature_bands(sig):
                groups[band].append(sig)
    return merge_duplicates(d for band in sorted(groups) for d in duplicates_among(groups[band]))


def sample_sources(sample: Sample) -> set[str]:
    """Source identities a sample's media come from."""
    return {s.sha256 or s.uri for s in sample.lineage.sources}


def shared_sources(train: Iterable[Sample], held: Iterable[Sample]) -> set[str]:
    """Sources both sides use (the split's guard: it must be empty)."""
    train_sources = set().union(*(sample_sources(s) for s in train))
    return train_sources & set().union(*(sample_sources(s) for s in held))


# --- the memory grid --------------------------------------------------------------------------------------

def bin_name(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}-{high}"


def cell_name(cell: Cell) -> str:
    kind, (low, high), items = cell
    return f"{kind}/d{bin_name(low, high)}/x{items}"


def cell_targets(spec: MemorySetConfig, total: int | None = None) -> dict[str, int]:
    """``total`` (default: the spec's) dialogues spread evenly over the grid: every cell gets the same, and the
    remainder goes one each to the cells whose memory type, distance bin and item count have the fewest so far
    (so a small set still spans every axis evenly)."""
    cells = spec.cells()
    total = spec.dialogues if total is None else total
    if not cells or total <= 0:
        return {}
    base, extra = divmod(total, len(cells))
    plus: set[int] = set()
    axes: Counter = Counter()
    for _ in range(extra):
        i = min((i for i in range(len(cells)) if i not in plus),
                key=lambda i: (sum(axes[(axis, v)] for axis, v in enumerate(cells[i])), i))
        plus.add(i)
        axes.update((axis, v) for axis, v in enumerate(cells[i]))
    return {cell_name(c): base + (i in plus) for i, c in enumerate(cells)}


def distance_bin(distance: int | None, spec: MemorySetConfig) -> str | None:
    if distance is None:
        return None
    return next((bin_name(lo, hi) for lo, hi in spec.distance_bins if lo <= distance <= hi), None)


def final_cell(sample: Sample, spec: MemorySetConfig) -> str | None:
    """The grid cell a written dialogue's final question is in (None when it is in none)."""
    final = sample.dialogue.turns[-1]
    kind = MEMORY_TYPE_OF.get(final.question_type)
    distance = final.memory_distance
    for cell in spec.cells():
        if cell[0] == kind and cell[1][0] <= (distance or 0) <= cell[1][1] and cell[2] == len(final.memory_refs):
            return cell_name(cell)
    return None


def is_recallable(clip: AnnotatedClip) -> bool:
    """The clip has a fact a memory question can ask about later."""
    return any(f.kind in KIND_PHRASES and KIND_PHRASES[f.kind].recallable for f in clip.facts)


def media_needed(cell: Cell) -> int:
    """Distinct recallable clips a dialogue of ``cell`` shows at least."""
    kind, _, items = cell
    return {"media": items, "mixed": 1, "text": 0}[kind]


def plan_memory_dialogue(cell: Cell, attempt: int, pool: list[AnnotatedClip], spec: MemorySetConfig,
                         seed: int) -> DialoguePlan | None:
    """One dialogue whose final question recalls ``cell``'s items, the furthest exactly a distance of its bin
    back; the other turns show other media or plant other statements (distractors). None when the pool
    holds too few recallable clips for it."""
    kind, (low, high), items = cell
    ids = [c.clip.clip_id for c in pool]
    rng = random.Random(derive_seed("eval-memory", EVAL_PLANNER_VERSION, seed, cell_name(cell), attempt, *ids))
    distance = rng.randint(max(low, items), high)
    length = rng.randint(distance + 1, spec.max_turns)
    final = length - 1
    first = final - distance
    recalled = sorted([first, *rng.sample(range(first + 1, final), items - 1)])
    n_media = {"media": items, "text": 0, "mixed": rng.randint(1, items - 1) if items > 1 else 0}[kind]
    media_recalls = sorted(rng.sample(recalled, n_media))
    statement_recalls = [t for t in recalled if t not in media_recalls]
    recallable = [c for c in pool if is_recallable(c)]
    if len(recallable) < len(media_recalls):
        return None
    chosen = rng.sample(recallable, len(media_recalls))
    rest = [c for c in pool if c not in chosen]
    rng.shuffle(rest)
    others = [t for t in range(final) if t not in recalled]
    distractor_media = [t for t in others if rng.random() < 0.5][:len(rest)]
    spare = [t for t in others if t not in distractor_media]
    statements = {*statement_recalls, *rng.sample(spare, min(len(spare), rng.randint(0, DISTRACTOR_STATEMENTS)))}
    shown = {**dict(zip(media_recalls, chosen)), **dict(zip(distractor_media, rest))}
    turns, media = [], []
    for t in range(final):
        clip = shown.get(t)
        if clip is not None:
            member = media_suffix(len(media), clip.clip.kind)
            media.append(PlannedMedia(clip_id=clip.clip.clip_id, turn=t, member=member))
        turns.append(PlannedTurn(index=t, question_type="current_media" if clip else "no_context",
                                 media_clip_id=clip.clip.clip_id if clip else None, plants_statement=t in statements))
    turns.append(PlannedTurn(index=final, question_type=QUESTION_TYPE_OF[kind], recall_media_turns=media_recalls,
                             recall_statement_turns=statement_recalls))
    # the pool is in the id: a text cell's dialogue may show no media, and two partitions planning the same cell
    # and attempt must not write the same dialogue (the same sample key in two shards)
    digest = hashlib.sha256(f"eval-memory:{seed}:{cell_name(cell)}:{attempt}:{','.join(m.clip_id for m in media)}:"
                            f"{length}:{','.join(ids)}".encode()).hexdigest()[:16]
    return DialoguePlan(dialogue_id=digest, seed=derive_seed("write", seed, digest), turns=turns, media=media,
                        max_distance=high)


def plan_memory_set(clips: list[AnnotatedClip], spec: MemorySetConfig, wanted: Mapping[str, int],
                    seed: int) -> list[tuple[str, DialoguePlan]]:
    """Candidates for each cell of ``wanted`` (``spec.candidates`` per wanted dialogue), cell by cell."""
    pool = sorted((c for c in clips if is_askable(c)), key=lambda c: c.clip.clip_id)
    out = []
    for cell in spec.cells():
        name = cell_name(cell)
        for attempt in range(wanted.get(name, 0) * spec.candidates if pool else 0):
            plan = plan_memory_dialogue(cell, attempt, pool, spec, seed)
            if plan is not None:
                out.append((name, plan))
    return out


def fill_cells(samples: Iterable[CuratedSample], spec: MemorySetConfig, wanted: Mapping[str, int]) -> list[str]:
    """Keys of the kept samples that fill the grid, first come first served, each in the cell its written final
    question is in (a writer may recall a closer clip than planned)."""
    need = dict(wanted)
    keys = []
    for s in samples:
        cell = final_cell(s.sample, spec) if s.kept else None
        if cell is not None and need.get(cell, 0) > 0:
            need[cell] -= 1
            keys.append(s.sample.key)
    return keys


def fully_spoken(sample: Sample) -> bool:
    """Every user turn spoken, and the final answer too (what the speech set is for)."""
    turns = sample.dialogue.turns
    return all(t.user.speech_member for t in turns) and bool(turns[-1].assistant.speech_member)


# --- eval items -------------------------------------------------------------------------------------------

def _messages(sample: Sample) -> list[EvalMessage]:
    turns = sample.dialogue.turns
    out = []
    for turn in turns:
        out.append(EvalMessage(role="user", text=turn.user.text, media=[p.member for p in turn.user.parts if p.member],
                               speech_member=turn.user.speech_member))
        if turn.index < len(turns) - 1:
            out.append(EvalMessage(role="assistant", text=turn.assistant.text,
                                   speech_member=turn.assistant.speech_member))
    return out


def eval_item(sample: Sample, set_name: EvalSetName, spec: MemorySetConfig) -> tuple[EvalQuestion, EvalAnswerKey]:
    """The question a model is asked (the history up to the final question) and its grounded answer key."""
    final = sample.dialogue.turns[-1]
    item_id = f"{set_name}-{sample.key}"
    question = EvalQuestion(id=item_id, set=set_name, sample_key=sample.key, messages=_messages(sample))
    key = EvalAnswerKey(id=item_id, set=set_name, sample_key=sample.key, question_type=final.question_type,
                        memory_type=MEMORY_TYPE_OF.get(final.question_type), distance=final.memory_distance,
                        distance_bin=distance_bin(final.memory_distance, spec), items=len(final.memory_refs),
                        turns=len(sample.dialogue.turns), reference=final.assistant.text,
                        answer_parts=answer_parts(final) or [final.assistant.text],
                        final_spoken=bool(final.user.speech_member and final.assistant.speech_member),
                        sources=sorted(sample_sources(sample)))
    return question, key


# --- scoring ----------------------------------------------------------------------------------------------

def is_correct(key: EvalAnswerKey, answer: str) -> bool:
    """Correct when the answer states every part of the grounded answer key."""
    return all(mentions(answer, p) for p in key.answer_parts)


def content_score(key: EvalAnswerKey, answer: str) -> int:
    """The 1-5 content score of a final answer against the grounded one: 5 every part, about as concise as the
    reference; 4 every part but rambling (over three times the reference's words); 3 some parts; 2 none but
    an attempt; 1 empty."""
    if not answer.strip():
        return 1
    found = sum(mentions(answer, p) for p in key.answer_parts)
    if found == len(key.answer_parts):
        return 5 if len(answer.split()) <= 3 * max(1, len(key.reference.split())) else 4
    return 3 if found else 2


Judge = Callable[[EvalQuestion, EvalAnswerKey, str], int | None]
"""A judge model: the 1-5 content score it gives an answer (5 correct), or None when it could not say."""


@dataclass(kw_only=True, slots=True, frozen=True)
class Judged:
    id: str
    correct: bool
    content: int
    judged_by: str
    """``rules`` or ``model``."""


def judge_answers(keys: list[EvalAnswerKey], answers: Mapping[str, str], questions: Mapping[str, EvalQuestion],
                  judge: Judge | None = None) -> list[Judged]:
    """Each item judged against its key by the rules, or by ``judge`` where one is given and it answers (the
    rules stand in when it cannot). A missing answer is wrong."""
    out = []
    for key in keys:
        answer = answers.get(key.id, "")
        verdict = judge(questions[key.id], key, answer) if judge is not None and answer.strip() else None
        if verdict is None:
            out.append(Judged(id=key.id, correct=is_correct(key, answer), content=content_score(key, answer),
                              judged_by="rules"))
        else:
            out.append(Judged(id=key.id, correct=verdict >= 4, content=verdict, judged_by="model"))
    return out


@dataclass(kw_only=True, slots=True, frozen=True)
class ScoreRow:
    set: str
    axis: str
    """``all``, ``memory_type``, ``distance``, ``items`` or ``cell``."""
    value: str
    correct: int
    total: int
    content_points: int
    """Sum of the 1-5 content scores."""

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def mean_content(self) -> float:
        return self.content_points / self.total if self.total else 0.0


SCORE_AXES = ("all", "memory_type", "distance", "items", "cell")


def _distance_order(value: str) -> tuple[int, str]:
    m = re.match(r"\d+", value)
    return (int(m.group()) if m else 10**6, value)


def score_table(keys: list[EvalAnswerKey], judged: list[Judged]) -> list[ScoreRow]:
    """Accuracy and mean content score per set: overall, by memory type, by turn distance bin, by items recalled,
    and (memory set) by cell of the grid."""
    by_id = {j.id: j for j in judged}
    tally: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for key in keys:
        j = by_id[key.id]
        groups = [("all", "all")]
        if key.memory_type is not None:
            distance = key.distance_bin or str(key.distance)
            groups += [("memory_type", key.memory_type), ("distance", distance), ("items", str(key.items))]
            if key.set == "memory":
                groups.append(("cell", f"{key.memory_type}/d{distance}/x{key.items}"))
        for axis, value in groups:
            row = tally[(key.set, axis, value)]
            row[0] += j.correct
            row[1] += 1
            row[2] += j.content
    order = sorted(tally, key=lambda g: (g[0], SCORE_AXES.index(g[1]),
                                         _distance_order(g[2]) if g[1] in ("distance", "items") else (0, g[2])))
    return [ScoreRow(set=s, axis=a, value=v, correct=tally[(s, a, v)][0], total=tally[(s, a, v)][1],
                     content_points=tally[(s, a, v)][2]) for s, a, v in order]


JUDGE_PROMPT = ("You grade a model's final answer in a multi-turn dialogue against the reference answer. "
                "Reply with one line 'score: N', N from 1 (wrong or empty) to 5 (states everything the reference "
                "states, concisely).")


def endpoint_judge(client) -> Judge:
    """A judge over an OpenAI-compatible chat endpoint (``client.request(messages)`` returns the reply text, as
    ``curators.writers.endpoint.EndpointWriter`` does)."""

    def judge(question: EvalQuestion, key: EvalAnswerKey, answer: str) -> int | None:
        history = "\n".join(f"{m.role}: {m.text}" for m in question.messages[-6:])
        reply = client.request([{"role": "system", "content": JUDGE_PROMPT},
                                {"role": "user", "content": f"Dialogue (last messages):\n{history}\n\n"
                                                            f"Reference answer: {key.reference}\n"
                                                            f"Must state: {'; '.join(key.answer_parts)}\n"
                                                            f"Model's answer: {answer}"}])
        m = re.search(r"score\s*[:=]\s*([1-5])", reply or "", re.IGNORECASE)
        return int(m.group(1)) if m else None

    return judge
