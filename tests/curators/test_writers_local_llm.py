"""The local LLM writer: a tiny random causal LM built here (fast) and the real SmolLM2 GGUF (slow)."""

import pytest
from dialogue_fixtures import build_tiny_causal_lm, clip_pool

from curators.dialogue_plan import plan_dialogues
from curators.filters import FilterContext, GroundingFilter, LeakageFilter
from curators.sample_build import build_sample
from curators.writers.local_llm import LocalLlmWriter, smollm2_gguf
from curators.writers.rewrite import drafts_of, parse_rewrite, validate_rewrite
from curators.writers.template import TemplateWriter
from schemas.config import CurateConfig, DialogueConfig


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-llm"))


def plans_and_clips(turns=4):
    clips = clip_pool(6)
    by_id = {c.clip.clip_id: c for c in clips}
    return plan_dialogues(clips, DialogueConfig(dialogues=1, min_turns=turns, max_turns=turns), 2), by_id


def test_random_model_output_is_refused_and_template_turns_kept(tiny_model_dir):
    plans, clips = plans_and_clips()
    writer = LocalLlmWriter(str(tiny_model_dir), device="cpu", batch_size=3, max_new_tokens=12)
    (written,) = writer.write_batch(plans, clips)
    template = TemplateWriter().write(plans[0], clips)
    assert written.dialogue == template  # nothing the random model said survived validation
    (verdict,) = written.verdicts
    assert verdict.filter == "writer_validation" and verdict.passed and verdict.score == 0.0
    assert all(f"{i} (" in verdict.detail for i in range(4))
    assert written.writer == "local_llm" and written.model_id == tiny_model_dir.name
    usage = writer.usage()  # 4 turns, greedy then sampled: 8 generations of at most 12 tokens
    assert (usage.stage, usage.requests, usage.cache_hits) == ("writer", 8, 0)
    assert 0 < usage.completion_tokens <= 8 * 12 and usage.prompt_tokens > 8 * 10


def test_rewrite_validation_rules():
    plans, clips = plans_and_clips(turns=8)
    dialogue = TemplateWriter().write(plans[0], clips)
    drafts = drafts_of(0, dialogue)
    memory = next(d for d in drafts if d.turn.memory_refs and d.turn.memory_refs[0].member)
    key = memory.turn.answer_key.split("; ")[0]
    assert validate_rewrite(memory, memory.question, memory.answer) == ""
    assert "lacks" in validate_rewrite(memory, memory.question, "No idea.")
    assert "contains the answer" in validate_rewrite(memory, f"{memory.question} Was it {key}?", memory.answer)
    assert "lost the reference" in validate_rewrite(memory, "What was it?", memory.answer)
    assert "not in the grounding" in validate_rewrite(memory, memory.question, f"{memory.answer} Also magenta.")
    assert parse_rewrite("**Question:** Hi there?\nAnswer: Yes.") == ("Hi there?", "Yes.")
    assert parse_rewrite("just prose") is None


@pytest.mark.slow
def test_real_smollm2_writes_a_dialogue_end_to_end():
    assert smollm2_gguf().name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    plans, clips = plans_and_clips(turns=3)
    writer = LocalLlmWriter(device="cpu", batch_size=3, max_new_tokens=48)
    assert writer.model_id == "SmolLM2-135M-Instruct.Q4_1.gguf"
    (written,) = writer.write_batch(plans, clips)
    (verdict,) = written.verdicts
    assert verdict.filter == "writer_validation" and 0.0 <= verdict.score <= 1.0
    cfg = CurateConfig(input="in", output="out")
    sample = build_sample(written, clips, seed=2, config_hash="h", decode=cfg.decode, accounting=cfg.tokens).sample
    context = FilterContext(facts={f.fact_id: f for c in clips.values() for f in c.facts})
    for f in (GroundingFilter(), LeakageFilter()):  # whatever the model wrote or the template kept is grounded
        assert all(v.passed for v in f.verdicts(sample, context))
