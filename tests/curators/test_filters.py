"""Dialogue filters: clean dialogues pass; planted faults are rejected with their reason."""

from dataclasses import replace

from dialogue_fixtures import clip_pool

from curators.dialogue_plan import plan_dialogues
from curators.dialogue_write import TemplateDialogueWriter
from curators.filters import FilterContext, apply_filters, default_filters, failed
from curators.filters.memory_validity import answer_from_truncated_history
from curators.sample_build import build_sample
from curators.writers.grounding import answer_parts
from schemas.config import CurateConfig
from schemas.dialogue import ContentPart, Message
from schemas.token_accounting import TokenAccounting

CFG = CurateConfig(input="in", output="out", seed=4)


def curated_samples(n_clips=30, accounting=CFG.tokens):
    clips = clip_pool(n_clips)
    by_id = {c.clip.clip_id: c for c in clips}
    context = FilterContext(facts={f.fact_id: f for c in clips for f in c.facts})
    writer = TemplateDialogueWriter()
    out = []
    for plan in plan_dialogues(clips, CFG.dialogue, CFG.seed):
        curated = build_sample(writer.write(plan, by_id), by_id, seed=CFG.seed, config_hash="h", decode=CFG.decode,
                               accounting=accounting)
        out.append(curated)
    return out, context


def filtered(curated, context, accounting=CFG.tokens):
    return apply_filters(curated, default_filters(accounting), context)


def with_assistant_text(curated, index, text):
    dialogue = curated.sample.dialogue
    turns = list(dialogue.turns)
    turns[index] = replace(turns[index], assistant=Message(role="assistant", parts=[ContentPart(kind="text", text=text)]))
    return replace(curated, sample=replace(curated.sample, dialogue=replace(dialogue, turns=turns)))


def with_user_text(curated, index, text):
    dialogue = curated.sample.dialogue
    turns = list(dialogue.turns)
    media = [p for p in turns[index].user.parts if p.kind != "text"]
    turns[index] = replace(turns[index], user=Message(role="user", parts=[*media, ContentPart(kind="text", text=text)]))
    return replace(curated, sample=replace(curated.sample, dialogue=replace(dialogue, turns=turns)))


def far_memory_turn(samples):
    """A sample and a memory turn whose reference lies at least two turns back."""
    for s in samples:
        for t in s.sample.dialogue.turns:
            if t.memory_refs and min(r.distance for r in t.memory_refs) >= 2:
                return s, t
    raise AssertionError("the fixture pool should plan a memory question reaching two turns back")


def test_written_dialogues_pass_every_filter():
    samples, context = curated_samples()
    results = [filtered(s, context) for s in samples]
    assert all(r.kept for r in results), [failed(r) for r in results if not r.kept]
    names = {v.filter for r in results for v in r.sample.verdicts}
    assert names == {"grounding", "memory_validity", "leakage", "language", "token_budget"}
    memory_turns = sum(t.question_type.startswith("memory") for r in results for t in r.sample.dialogue.turns)
    validity = [v for r in results for v in r.sample.verdicts if v.filter == "memory_validity"]
    assert len(validity) == memory_turns > 0


def test_planted_invalid_memory_question_is_rejected_with_its_reason():
    samples, context = curated_samples()
    sample, turn = far_memory_turn(samples)
    ref = min(turn.memory_refs, key=lambda r: r.turn)
    answer = answer_parts(turn)[turn.memory_refs.index(ref)] if len(turn.memory_refs) > 1 else answer_parts(turn)[0]
    between = ref.turn + 1
    intermediate = sample.sample.dialogue.turns[between]
    planted = with_assistant_text(sample, between, f"{intermediate.assistant.text} Also, remember: {answer}.")
    result = filtered(planted, context)
    assert not result.kept
    bad = [v for v in failed(result) if v.filter == "memory_validity"]
    assert len(bad) == 1 and bad[0].turn == turn.index
    assert bad[0].code == "answer_restated"
    assert f"restated at turn {between}" in bad[0].detail and repr(answer) in bad[0].detail
    found = answer_from_truncated_history(planted.sample.dialogue, turn, ref, [answer])
    assert found == (answer, between)


def test_question_that_contains_its_answer_is_leakage():
    samples, context = curated_samples()
    sample = samples[0]
    turn = sample.sample.dialogue.turns[0]
    key = answer_parts(turn)[0]
    leaked = with_user_text(sample, 0, f"Is it {key}? {turn.user.text}")
    bad = [v for v in failed(filtered(leaked, context)) if v.filter == "leakage"]
    assert len(bad) == 1 and bad[0].turn == 0 and bad[0].code == "answer_in_question" and repr(key) in bad[0].detail


def test_answer_that_drops_its_fact_fails_grounding():
    samples, context = curated_samples()
    sample = samples[0]
    current = next(t for t in sample.sample.dialogue.turns if t.question_type == "current_media")
    wrong = with_assistant_text(sample, current.index, "I am not sure, it could be anything.")
    bad = [v for v in failed(filtered(wrong, context)) if v.filter == "grounding"]
    assert [(v.turn, v.code) for v in bad] == [(current.index, "answer_lacks_key")]
    assert "lacks its key" in bad[0].detail


def test_token_budget_rejects_a_sample_over_the_limit():
    samples, context = curated_samples()
    sample = samples[0]
    total = sample.sample.tokens.total
    tight = TokenAccounting(max_sequence=total - 1)
    over = [v for v in filtered(sample, context, tight).sample.verdicts if v.filter == "token_budget"]
    assert len(over) == 1 and not over[0].passed and over[0].score > 1.0
    fits = [v for v in filtered(sample, context, TokenAccounting(max_sequence=total)).sample.verdicts
            if v.filter == "token_budget"]
    assert fits[0].passed


def test_rejections_group_by_a_few_fixed_codes_while_details_vary():
    import duckdb

    from curators.filters import REASON_CODES
    from pipelines.dataset.catalog import CatalogBuilder

    samples, context = curated_samples(n_clips=60)
    planted = []
    for i, s in enumerate(samples):
        turn = s.sample.dialogue.turns[0]
        key = answer_parts(turn)[0] if answer_parts(turn) else None
        if i % 2 == 0 and key:
            planted.append(with_user_text(s, 0, f"Is it {key}? {turn.user.text}"))
        elif key:
            planted.append(with_assistant_text(s, 0, f"It could be anything, number {i}."))
    results = [filtered(p, context) for p in planted]
    bad = [v for r in results for v in failed(r)]
    assert len(planted) >= 10 and all(not r.kept for r in results)
    assert all(v.code in REASON_CODES[v.filter] for v in bad), {(v.filter, v.code) for v in bad}
    assert {(v.filter, v.code) for v in bad} <= {("leakage", "answer_in_question"), ("grounding", "answer_lacks_key"),
                                                 ("grounding", "key_not_grounded")}
    assert len({v.detail for v in bad}) > 2 * len({(v.filter, v.code) for v in bad})

    catalog = CatalogBuilder()
    for r in results:
        catalog.add(r)
    con = duckdb.connect()
    con.register("verdicts", catalog.tables()["verdicts"])
    groups = con.sql("SELECT filter, code, count(*) AS n FROM verdicts WHERE NOT passed GROUP BY ALL").fetchall()
    assert {(f, c) for f, c, _ in groups} == {(v.filter, v.code) for v in bad}
    assert sum(n for _, _, n in groups) == len(bad)


def test_a_filter_refuses_a_code_it_did_not_declare():
    import pytest

    from curators.filters import LeakageFilter

    with pytest.raises(ValueError, match="no reason code 'leaked'"):
        LeakageFilter().reject("leaked", "question contains its answer")


def test_readme_lists_every_filters_reason_codes():
    import re
    from pathlib import Path

    from curators.filters import REASON_CODES

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### `verdicts`", 1)[1].split("\n### ", 1)[0]
    listed = {m[1]: frozenset(re.findall(r"`([a-z_]+)`", m[2]))
              for m in re.finditer(r"^- `([a-z_]+)`: (.*)$", section, re.MULTILINE)}
    assert listed == REASON_CODES
