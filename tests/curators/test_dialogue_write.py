"""The template writer: all five question types, grounded answers, varied phrasing, deterministic text."""

import itertools
from collections import Counter

from dialogue_fixtures import clip_pool

from curators.dialogue_plan import plan_dialogues
from curators.dialogue_write import TemplateDialogueWriter, make_writer
from curators.writers.grounding import answer_parts, fact_answer, mentions
from schemas.config import DialogueConfig
from schemas.validation import to_json


def written(n_clips=30, seed=3, cfg=None):
    clips = clip_pool(n_clips)
    by_id = {c.clip.clip_id: c for c in clips}
    plans = plan_dialogues(clips, cfg or DialogueConfig(), seed)
    writer = make_writer(cfg or DialogueConfig())
    return by_id, [writer.write_batch([p], by_id)[0] for p in plans]


def test_all_five_question_types_and_answers_contain_their_keys():
    clips, dialogues = written()
    facts = {f.fact_id: f for c in clips.values() for f in c.facts}
    types = Counter()
    for w in dialogues:
        for turn in w.dialogue.turns:
            types[turn.question_type] += 1
            parts = answer_parts(turn)
            assert parts and all(mentions(turn.assistant.text, p) for p in parts)
            for fid in turn.fact_ids:  # media answers are the fact's own derived answer
                assert mentions(turn.assistant.text, fact_answer(facts[fid]))
    assert set(types) == {"no_context", "current_media", "memory_media", "memory_text", "memory_mixed"}


def test_memory_refs_point_at_what_the_earlier_turn_holds():
    _, dialogues = written()
    text_refs = media_refs = 0
    for w in dialogues:
        turns = w.dialogue.turns
        for turn in turns:
            for ref in turn.memory_refs:
                earlier = turns[ref.turn]
                if ref.member:
                    media_refs += 1
                    assert ref.member in [p.member for p in earlier.user.parts]
                else:
                    text_refs += 1
                    assert ref.text and ref.text in earlier.user.text
        mixed = [t for t in turns if t.question_type == "memory_mixed"]
        for t in mixed:
            assert {r.member is None for r in t.memory_refs} == {True, False}  # recalls media and text together
    assert text_refs > 0 and media_refs > 0


def test_no_two_adjacent_turns_read_alike():
    _, dialogues = written()
    for w in dialogues:
        turns = w.dialogue.turns
        for a, b in itertools.pairwise(turns):
            assert a.user.text != b.user.text
            assert a.assistant.text != b.assistant.text


def test_writing_is_deterministic():
    a = [to_json(w.dialogue) for w in written(seed=11)[1]]
    b = [to_json(w.dialogue) for w in written(seed=11)[1]]
    c = [to_json(w.dialogue) for w in written(seed=12)[1]]
    assert a == b and a != c


def test_media_members_follow_the_plan():
    _, dialogues = written()
    for w in dialogues:
        shown = {t.index: [p for p in t.user.parts if p.kind != "text"] for t in w.dialogue.turns}
        for item in w.dialogue.media:
            assert [p.member for p in shown[item.turn]] == [item.member]
            assert item.member.split(".")[1] == {"image": "jpg", "video": "mp4", "audio": "flac"}[item.kind]
        assert sum(len(v) for v in shown.values()) == len(w.dialogue.media)
    assert TemplateDialogueWriter().prompt_hash() == TemplateDialogueWriter().prompt_hash()


def test_every_long_written_dialogue_reaches_eight_turns_back():
    images_only = [c for c in clip_pool(36) if c.clip.kind == "image"]  # few facts: clips run out of questions
    for pool in (clip_pool(24), images_only):
        by_id = {c.clip.clip_id: c for c in pool}
        writer = make_writer(DialogueConfig())
        for seed in range(4):
            for plan in plan_dialogues(pool, DialogueConfig(dialogues=4, min_turns=9, max_turns=20), seed):
                (w,) = writer.write_batch([plan], by_id)
                assert max(t.memory_distance or 0 for t in w.dialogue.turns) >= 8


def _captioned_pool() -> list:
    """Videos with three caption events each (one of them, a single event over the whole clip), and images
    with one: caption facts only, so every media question is about a caption."""
    from dataclasses import replace

    from dialogue_fixtures import annotated_clip

    from schemas.media import Fact

    pool = []
    for i in range(12):
        kind = "image" if i % 3 == 2 else "video"
        base = annotated_clip(i, kind)
        length = base.clip.end_s - base.clip.start_s
        if kind == "image":
            spans = [(0.0, 0.0)]
        elif i % 3 == 1:
            spans = [(0.0, length)]
        else:
            spans = [(0.0, 2.0), (2.0, 3.5), (3.5, length)]
        facts = [Fact(fact_id=f"{base.clip.clip_id}-c{n}", clip_id=base.clip.clip_id, kind="caption",
                      value=f"scene {i} part {n}", source="caption", start_s=start, end_s=end)
                 for n, (start, end) in enumerate(spans)]
        pool.append(replace(base, facts=facts, transcript=None))
    return pool


def test_caption_questions_name_the_events_span_and_a_whole_clip_caption_keeps_the_plain_question():
    from curators.writers.phrasebook import KIND_PHRASES
    from curators.writers.rewrite import drafts_of, validate_rewrite

    pool = _captioned_pool()
    by_id = {c.clip.clip_id: c for c in pool}
    facts = {f.fact_id: f for c in pool for f in c.facts}
    writer = make_writer(DialogueConfig())
    plain = {*KIND_PHRASES["caption"].ask_current, *KIND_PHRASES["caption"].ask_memory}
    asked = Counter()
    for seed in range(3):
        for plan in plan_dialogues(pool, DialogueConfig(dialogues=6), seed):
            (w,) = writer.write_batch([plan], by_id)
            for turn, draft in zip(w.dialogue.turns, drafts_of(0, w.dialogue)):
                if len(turn.fact_ids) == 1:  # (a mixed memory turn asks several questions)
                    fact = facts[turn.fact_ids[0]]
                    length = by_id[fact.clip_id].clip.end_s
                    if 0 < fact.end_s < length or fact.start_s > 0:  # one event of several
                        asked["part"] += 1
                        start, end = f"{fact.start_s:g}", f"{fact.end_s:g}"
                        assert (f"between {start} and {end} seconds" in turn.user.text
                                or f"from {start} to {end} seconds" in turn.user.text), turn.user.text
                        # a rewrite that drops the span is refused: the question would be ambiguous again
                        vague = "What happens in this clip?"
                        assert "lost the reference" in validate_rewrite(draft, vague, draft.answer)
                    else:
                        asked["whole"] += 1
                        assert "seconds" not in turn.user.text, turn.user.text
                        assert any(p.split("{")[0] in turn.user.text for p in plain), turn.user.text
    assert asked["part"] > 0 and asked["whole"] > 0, asked
