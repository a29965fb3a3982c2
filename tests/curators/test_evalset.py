"""Evaluation splits stay disjoint from training in source media; the scorer counts by type and distance."""

from dataclasses import replace

from dialogue_fixtures import annotated_clip

from curators.dialogue_plan import plan_dialogues
from curators.dialogue_write import TemplateDialogueWriter
from curators.evalset import (
    content_score,
    distance_bucket,
    held_out_sources,
    sample_sources,
    score_answers,
    split_for_eval,
)
from curators.sample_build import build_sample
from schemas.config import CurateConfig, DialogueConfig
from schemas.dialogue import Message

CFG = CurateConfig(input="in", output="out")


def samples_over(n_sources=12, dialogues=40, seed=0):
    """Clips from many sources (three per source), so that some dialogues stay inside a held-out set."""
    clips = [replace(c, source_sha256=f"{i // 3:064x}")
             for i, c in enumerate(annotated_clip(i, ("video", "image")[i % 2], media_id=f"src{i // 3}")
                                   for i in range(3 * n_sources))]
    by_id = {c.clip.clip_id: c for c in clips}
    cfg = DialogueConfig(dialogues=dialogues, min_turns=2, max_turns=6)
    writer = TemplateDialogueWriter()
    return [build_sample(writer.write(p, by_id), by_id, seed=seed, config_hash="h", decode=CFG.decode,
                         accounting=CFG.tokens).sample for p in plan_dialogues(clips, cfg, seed)]


def spoken(sample):
    turns = [replace(t, user=Message(role="user", parts=t.user.parts, speech_member=f"t{t.index:02d}.user.flac"))
             for t in sample.dialogue.turns]
    return replace(sample, dialogue=replace(sample.dialogue, turns=turns))


def test_held_out_split_shares_no_source_with_training():
    samples = [spoken(s) if i % 2 else s for i, s in enumerate(samples_over())]
    splits = split_for_eval(samples, fraction=0.5, seed=1)
    by_key = {s.key: s for s in samples}
    eval_items = splits.mmmb + splits.msib
    assert splits.mmmb and splits.train_keys
    eval_sources = set().union(*(set(i.sources) for i in eval_items))
    train_sources = set().union(*(sample_sources(by_key[k]) for k in splits.train_keys))
    assert not eval_sources & train_sources
    assert all(i.question_type.startswith("memory") and i.distance >= 1 for i in splits.mmmb)
    assert all(i.memory_kind in {"text", "media", "mixed"} and i.items_to_recall >= 1 for i in splits.mmmb)
    assert all(2 <= i.turns <= 10 and i.messages[-1].speech_member for i in splits.msib)
    for item in eval_items:  # the history ends with the final question; its answer is only the reference
        assert item.messages[-1].role == "user" and len(item.messages) == 2 * item.turns - 1
        assert item.reference == by_key[item.sample_key].dialogue.turns[-1].assistant.text
    assert len(eval_items) > 0 and len(splits.train_keys) + splits.dropped + len(
        {i.sample_key for i in eval_items}) <= len(samples)
    assert split_for_eval(samples, fraction=0.5, seed=1) == splits
    assert held_out_sources({"a", "b"}, 0.0, 1) == set() and held_out_sources({"a", "b"}, 1.0, 1) == {"a", "b"}


def test_separate_training_dataset_excludes_its_sources():
    samples = samples_over()
    train = samples[:10]
    train_sources = set().union(*(sample_sources(s) for s in train))
    splits = split_for_eval(samples, train_sources=train_sources)
    assert splits.mmmb and all(not set(i.sources) & train_sources for i in splits.mmmb)


def test_scorer_accuracy_by_type_and_distance():
    splits = split_for_eval(samples_over(dialogues=60), fraction=1.0, seed=0)
    items = splits.mmmb
    answers = {i.eval_id: i.reference for i in items[::2]}  # half answered with the reference, half missing
    answers.update({i.eval_id: "I do not remember." for i in items[1::2][:1]})
    rows = {r.group: r for r in score_answers(items, answers)}
    overall = rows["mmmb all"]
    assert overall.total == len(items) and overall.correct == len(items[::2])
    by_type = [r for g, r in rows.items() if g.startswith("mmmb type=")]
    assert sum(r.total for r in by_type) == len(items) and sum(r.correct for r in by_type) == overall.correct
    by_distance = [r for g, r in rows.items() if g.startswith("mmmb distance=")]
    assert sum(r.total for r in by_distance) == len(items)
    assert distance_bucket(1) == "1" and distance_bucket(3) == "2-3" and distance_bucket(9) == "8-20"
    answered, wrong = items[0], items[1]
    assert content_score(answered, answered.reference) == 5
    assert content_score(answered, answered.reference + " and so on" * 40) == 4
    assert content_score(wrong, "I do not remember.") == 2 and content_score(wrong, "") == 1
    expected_points = sum(content_score(i, answers.get(i.eval_id, "")) for i in items)
    assert overall.content_points == expected_points and 1 <= overall.mean_content <= 5
