"""The planner: seeded, within bounds, reaching far back in long dialogues."""

from collections import Counter

from dialogue_fixtures import clip_pool

from curators.dialogue_plan import plan_dialogues
from schemas.config import DialogueConfig


def test_same_seed_same_plans_other_seed_other_plans():
    clips = clip_pool(24)
    cfg = DialogueConfig()
    assert plan_dialogues(clips, cfg, 5) == plan_dialogues(list(reversed(clips)), cfg, 5)
    assert plan_dialogues(clips, cfg, 5) != plan_dialogues(clips, cfg, 6)


def test_count_lengths_and_media_members():
    clips = clip_pool(30)
    plans = plan_dialogues(clips, DialogueConfig(min_turns=2, max_turns=20), 1)
    assert len(plans) == 10  # about one dialogue per three clips
    lengths = [len(p.turns) for p in plans]
    assert min(lengths) == 2 and max(lengths) == 20
    for p in plans:
        assert [t.index for t in p.turns] == list(range(len(p.turns)))
        assert len(set(p.clip_ids)) == len(p.clip_ids)  # no clip twice in one dialogue
        assert [m.member[:3] for m in p.media] == [f"m{i:02d}" for i in range(len(p.media))]
        assert all(t.question_type not in ("memory_media", "memory_text", "memory_mixed") for t in p.turns[:1])
    assert len(plan_dialogues(clips, DialogueConfig(dialogues=3), 1)) == 3
    assert len(plan_dialogues(clip_pool(1), DialogueConfig(), 1)) == 1


def test_memory_distances_reach_eight_and_stay_within_k():
    cfg = DialogueConfig(dialogues=12, min_turns=14, max_turns=20, max_memory_distance=12)
    plans = plan_dialogues(clip_pool(40), cfg, 7)
    distances = [d for p in plans for t in p.turns for d in t.distances]
    assert min(distances) >= 1 and max(distances) <= 12
    assert max(distances) >= 8
    assert set(range(1, 9)) <= set(distances)
    recalls = Counter(len(t.recall_media_turns) for p in plans for t in p.turns if t.question_type == "memory_media")
    assert recalls[1] > 0 and recalls[2] + recalls[3] > 0  # some questions recall several items
    for p in plans:
        planted = {t.index for t in p.turns if t.plants_statement}
        recalled = [s for t in p.turns for s in t.recall_statement_turns]
        assert sorted(recalled) == sorted(planted)  # each statement planted once, recalled once
        shown = {m.turn for m in p.media}
        assert all(m in shown for t in p.turns for m in t.recall_media_turns)


def test_question_mix_is_honoured():
    only_general = DialogueConfig(question_mix={"no_context": 1.0})
    plans = plan_dialogues(clip_pool(9), only_general, 2)
    assert {t.question_type for p in plans for t in p.turns} == {"no_context"}
    media_heavy = DialogueConfig(dialogues=20, question_mix={"current_media": 1.0, "memory_media": 1.0})
    types = Counter(t.question_type for p in plan_dialogues(clip_pool(60), media_heavy, 2) for t in p.turns)
    assert set(types) <= {"current_media", "memory_media", "no_context"}
    assert types["memory_media"] > 0 and types["current_media"] > 0

