"""The default writer: grounded questions and answers from phrase tables, varied and seeded."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from curators.dialogue_plan import DialoguePlan, PlannedTurn
from curators.writers.grounding import ANSWER_SEPARATOR, fact_answer, mentions, number_word
from curators.writers.phrasebook import (
    GENERAL_KNOWLEDGE,
    KIND_PHRASES,
    MEDIA_NOUNS,
    MULTI_OPENERS,
    NEUTRAL_NOUN,
    ORDINALS,
    PHRASEBOOK_VERSION,
    REFERENCES,
    STATEMENT_LEADS,
    STATEMENT_SLOTS,
    TENSES,
    phrasebook_hash,
)
from schemas.dialogue import ContentPart, Dialogue, MediaItem, MemoryRef, Message, Turn
from schemas.media import AnnotatedClip, Fact

TEMPLATE_WRITER_ID = f"template-v{PHRASEBOOK_VERSION}"
MIN_TRANSCRIPT_CONFIDENCE = 0.4
"""Transcript facts less certain than this (exp of the mean log-probability) are not asked about."""


@dataclass(slots=True)
class _Piece:
    """One grounded question/answer pair before it is merged into a turn."""

    question: str
    answer: str
    key: str
    fact_ids: list[str]
    ref: MemoryRef | None = None
    kind: str = ""
    """Fact kind it asks about (``statement`` and ``general`` for text)."""


@dataclass(slots=True)
class _Said:
    """What a written turn said, for avoiding restated answers and repeated phrasings."""

    text: str
    templates: set[str] = field(default_factory=set)
    kinds: set[str] = field(default_factory=set)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _ago(distance: int) -> str:
    return "one turn ago" if distance == 1 else f"{number_word(distance)} turns ago"


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


class TemplateWriter:
    """Writes a plan into a Dialogue; every answer is derived from its fact by ``fact_answer``."""

    name = "template"
    model_id = TEMPLATE_WRITER_ID

    def prompt_hash(self) -> str:
        return phrasebook_hash()

    def write(self, plan: DialoguePlan, clips: dict[str, AnnotatedClip]) -> Dialogue:
        return _TemplateRun(plan, clips).run()


class _TemplateRun:
    def __init__(self, plan: DialoguePlan, clips: dict[str, AnnotatedClip]):
        self.plan = plan
        self.clips = clips
        self.rng = random.Random(plan.seed)
        self.said: list[_Said] = []
        self.member_at = {m.turn: m for m in plan.media}
        self.statements: dict[int, tuple[str, str, str]] = {}
        self.asked_facts: set[str] = set()
        self.general = list(GENERAL_KNOWLEDGE)
        self.rng.shuffle(self.general)
        self._used: set[str] = set()
        self._last_kinds: set[str] = set()

    def run(self) -> Dialogue:
        self._assign_statements()
        turns = [self._write_turn(pt) for pt in self.plan.turns]
        media = []
        for m in self.plan.media:
            clip = self.clips[m.clip_id].clip
            media.append(MediaItem(member=m.member, clip_id=clip.clip_id, kind=clip.kind, source_uri=clip.source_uri,
                                   start_s=clip.start_s, end_s=clip.end_s, turn=m.turn))
        return Dialogue(dialogue_id=self.plan.dialogue_id, turns=turns, media=media)

    # --- choices -------------------------------------------------------------------------------------

    def _pick(self, options: tuple[str, ...] | list[str], turn: int) -> str:
        """A phrasing the previous turn did not use, so no two adjacent turns read alike."""
        last = self.said[turn - 1].templates if 1 <= turn <= len(self.said) else set()
        fresh = [o for o in options if o not in last] or list(options)
        choice = self.rng.choice(fresh)
        self._used.add(choice)
        return choice

    def _assign_statements(self) -> None:
        slots = sorted(STATEMENT_SLOTS)
        self.rng.shuffle(slots)
        for pt in self.plan.turns:
            if pt.plants_statement:
                slot = slots[len(self.statements) % len(slots)]
                value = self.rng.choice(STATEMENT_SLOTS[slot].values)
                self.statements[pt.index] = (slot, value, "")

    def _restated_between(self, answer: str, after: int, before: int) -> bool:
        return any(mentions(s.text, answer) for s in self.said[after + 1:before])

    def _facts_of(self, clip_id: str, *, recallable_only: bool) -> list[Fact]:
        """Facts a question may be grounded on: the top colour only, transcript facts only when ASR was sure."""
        facts = [f for f in self.clips[clip_id].facts if f.kind in KIND_PHRASES
                 and (f.source != "transcript" or f.confidence >= MIN_TRANSCRIPT_CONFIDENCE)]
        colours = sorted((f for f in facts if f.kind == "dominant_color"), key=lambda f: (-f.confidence, f.fact_id))
        facts = [f for f in facts if f.kind != "dominant_color" or f is colours[0]]
        if recallable_only:
            facts = [f for f in facts if KIND_PHRASES[f.kind].recallable]
        return sorted(facts, key=lambda f: f.fact_id)

    def _choose_fact(self, candidates: list[Fact], turn: int, recalled_from: int | None) -> Fact | None:
        """Prefer facts not yet asked; for memory, never one whose answer was restated since it was shown."""
        if recalled_from is not None:
            candidates = [f for f in candidates if not self._restated_between(fact_answer(f), recalled_from, turn)]
        if not candidates:
            return None
        fresh = [f for f in candidates if f.fact_id not in self.asked_facts]
        last_kinds = self._last_kinds
        varied = [f for f in (fresh or candidates) if f.kind not in last_kinds] or fresh or candidates
        fact = self.rng.choice(varied)
        self.asked_facts.add(fact.fact_id)
        return fact

    # --- pieces --------------------------------------------------------------------------------------

    def _media_words(self, clip_id: str, kind_of_fact: str) -> tuple[str, str]:
        clip = self.clips[clip_id].clip
        if kind_of_fact == "media_kind":
            return NEUTRAL_NOUN, NEUTRAL_NOUN
        noun = self.rng.choice(MEDIA_NOUNS[clip.kind])
        return noun, clip.kind

    def _times(self, fact: Fact) -> dict[str, str]:
        """``{span}`` for sentences, ``{at}`` for words, ``{start}``/``{end}`` for a part of the clip (a caption
        event), so a question names which one it means."""
        span = at = ""
        if fact.kind == "spoken_text" and fact.start_s is not None and fact.end_s is not None:
            span = f" between {fact.start_s:.1f} and {fact.end_s:.1f} seconds"
        if fact.kind == "spoken_keyword" and fact.start_s is not None:
            at = f" at about {fact.start_s:.1f} seconds"
        start, end = (f"{round(t, 1):g}" for t in (fact.start_s or 0.0, fact.end_s or 0.0))
        return {"span": span, "at": at, "start": start, "end": end}

    def _over_part(self, fact: Fact) -> bool:
        """Whether the fact holds over part of its clip only (a still image's or a whole-clip caption does not)."""
        if fact.start_s is None or fact.end_s is None or fact.end_s <= fact.start_s:
            return False
        clip = self.clips[fact.clip_id].clip
        return fact.start_s > 0.05 or fact.end_s < clip.end_s - clip.start_s - 0.05

    def _question(self, fact: Fact, turn: int, *, memory: bool, **slots: str) -> str:
        asks = KIND_PHRASES[fact.kind].asks(memory=memory, span=self._over_part(fact))
        return self._pick(asks, turn).format(**slots, **self._times(fact))

    def _answer(self, fact: Fact, turn: int, subj: str, tense: str) -> tuple[str, str]:
        key = fact_answer(fact)
        template = self._pick(KIND_PHRASES[fact.kind].answers, turn)
        slots = dict(TENSES[tense], a=key, Subj=_cap(subj), subj=subj, article=_article(key))
        return _cap(template.format(**slots)), key

    def _current_piece(self, pt: PlannedTurn) -> _Piece | None:
        fact = self._choose_fact(self._facts_of(pt.media_clip_id, recallable_only=False), pt.index, None)
        if fact is None:
            return None
        noun, _ = self._media_words(pt.media_clip_id, fact.kind)
        question = self._question(fact, pt.index, memory=False, noun=noun)
        answer, key = self._answer(fact, pt.index, "it", "present")
        return _Piece(question, answer, key, [fact.fact_id], kind=fact.kind)

    def _media_reference(self, media_turn: int, turn: int, noun: str, same_kind_rank: int) -> tuple[str, str]:
        options = list(REFERENCES) if same_kind_rank < len(ORDINALS) else list(REFERENCES[:-1])
        user_form, assistant_form = self.rng.choice(options)
        slots = {"noun": noun, "ago": _ago(turn - media_turn),
                 "ordinal": ORDINALS[same_kind_rank] if same_kind_rank < len(ORDINALS) else ""}
        return user_form.format(**slots), assistant_form.format(**slots)

    def _memory_media_piece(self, media_turn: int, turn: int) -> _Piece | None:
        planned = self.member_at[media_turn]
        fact = self._choose_fact(self._facts_of(planned.clip_id, recallable_only=True), turn, media_turn)
        if fact is None:
            return None
        clip = self.clips[planned.clip_id].clip
        noun, _ = self._media_words(planned.clip_id, fact.kind)
        rank = sum(1 for m in self.plan.media if m.turn < media_turn and self.clips[m.clip_id].clip.kind == clip.kind)
        ref_user, ref_assistant = self._media_reference(media_turn, turn, noun, rank)
        question = self._question(fact, turn, memory=True, ref=ref_user)
        answer, key = self._answer(fact, turn, ref_assistant, "past")
        ref = MemoryRef(turn=media_turn, distance=turn - media_turn, member=planned.member,
                        start_s=fact.start_s, end_s=fact.end_s)
        return _Piece(question, answer, key, [fact.fact_id], ref, kind=fact.kind)

    def _memory_media_pieces(self, pt: PlannedTurn) -> list[_Piece]:
        """One piece per planned media recall; a clip with nothing left to ask is swapped for another earlier
        clip in reach, the one whose distance is closest to the planned one."""
        others = [m.turn for m in self.plan.media if m.turn < pt.index and pt.index - m.turn <= self.plan.max_distance
                  and m.turn not in pt.recall_media_turns]
        taken: set[int] = set()
        pieces = []
        for planned in pt.recall_media_turns:
            for media_turn in [planned, *sorted(others, key=lambda m: (abs(m - planned), m))]:
                if media_turn in taken:
                    continue
                piece = self._memory_media_piece(media_turn, pt.index)
                if piece is not None:
                    pieces.append(piece)
                    taken.add(media_turn)
                    break
        return pieces

    def _memory_text_piece(self, statement_turn: int, turn: int) -> _Piece | None:
        slot_name, value, sentence = self.statements[statement_turn]
        if self._restated_between(value, statement_turn, turn):
            return None
        slot = STATEMENT_SLOTS[slot_name]
        question = self._pick(slot.questions, turn)
        answer = self._pick(slot.answers, turn).format(v=value)
        ref = MemoryRef(turn=statement_turn, distance=turn - statement_turn, text=sentence)
        return _Piece(question, answer, value, [], ref, kind="statement")

    def _general_piece(self, turn: int) -> _Piece:
        question, key, answer = self.general[turn % len(self.general)]
        return _Piece(question, answer, key, [], kind="general")

    # --- turns ---------------------------------------------------------------------------------------

    def _write_turn(self, pt: PlannedTurn) -> Turn:
        self._used: set[str] = set()
        self._last_kinds = self.said[-1].kinds if self.said else set()
        qtype = pt.question_type
        pieces: list[_Piece] = []
        if qtype == "current_media":
            piece = self._current_piece(pt)
            pieces = [piece] if piece else []
        elif qtype in ("memory_media", "memory_text", "memory_mixed"):
            media_pieces = self._memory_media_pieces(pt)
            text_pieces = [p for p in (self._memory_text_piece(s, pt.index) for s in pt.recall_statement_turns) if p]
            pieces = media_pieces + text_pieces
            # what could be recalled decides the type: a clip whose every fact was restated since drops out
            qtype = ("memory_mixed" if media_pieces and text_pieces else "memory_media" if media_pieces
                     else "memory_text")  # nothing to recall at all: no_context, below
        if not pieces:
            qtype = "no_context"
            pieces = [self._general_piece(pt.index)]

        question = pieces[0].question
        answer = pieces[0].answer
        if len(pieces) > 1:
            question = " ".join([self._pick(MULTI_OPENERS, pt.index), *(p.question for p in pieces)])
            answer = " ".join(p.answer for p in pieces)

        user_text = question
        if pt.index in self.statements:
            slot_name, value, _ = self.statements[pt.index]
            lead = self._pick(STATEMENT_LEADS, pt.index)
            sentence = _cap(lead + STATEMENT_SLOTS[slot_name].statement.format(v=value))
            self.statements[pt.index] = (slot_name, value, sentence)
            user_text = f"{sentence} {question}"

        parts = []
        planned = self.member_at.get(pt.index)
        if planned is not None:
            parts.append(ContentPart(kind=self.clips[planned.clip_id].clip.kind, member=planned.member))
        parts.append(ContentPart(kind="text", text=user_text))
        turn = Turn(index=pt.index, question_type=qtype,
                    user=Message(role="user", parts=parts),
                    assistant=Message(role="assistant", parts=[ContentPart(kind="text", text=answer)]),
                    fact_ids=[f for p in pieces for f in p.fact_ids],
                    memory_refs=[p.ref for p in pieces if p.ref is not None],
                    answer_key=ANSWER_SEPARATOR.join(p.key for p in pieces))
        self.said.append(_Said(f"{user_text} {answer}", set(self._used), {p.kind for p in pieces}))
        return turn
