"""Language and near-duplicate filters, and DPO preference pairs on the final turn."""

import subprocess
from dataclasses import replace

from dialogue_fixtures import clip_pool

from curators.dialogue_plan import plan_dialogues
from curators.dialogue_write import TemplateDialogueWriter
from curators.filters import FilterContext, LanguageFilter, NearDuplicateIndex
from curators.filters.near_duplicate import dhash, hamming
from curators.preference import answer_pool, preference_pair
from curators.sample_build import build_sample
from curators.writers.grounding import answer_parts, mentions
from schemas.config import CurateConfig
from schemas.dialogue import ContentPart, Message

CFG = CurateConfig(input="in", output="out", seed=8)


def samples_and_facts(n_clips=30):
    clips = clip_pool(n_clips)
    by_id = {c.clip.clip_id: c for c in clips}
    writer = TemplateDialogueWriter()
    out = [build_sample(writer.write(p, by_id), by_id, seed=CFG.seed, config_hash="h", decode=CFG.decode,
                        accounting=CFG.tokens).sample for p in plan_dialogues(clips, CFG.dialogue, CFG.seed)]
    return out, {f.fact_id: f for c in clips for f in c.facts}


def test_language_filter_passes_english_and_rejects_german():
    samples, _ = samples_and_facts()
    english = samples[0]
    (ok,) = LanguageFilter("en").verdicts(english, FilterContext())
    assert ok.passed and ok.score > 0.08
    turns = [replace(t, user=Message(role="user", parts=[ContentPart(kind="text", text="Was ist das und wer war es?")]),
                     assistant=Message(role="assistant", parts=[ContentPart(kind="text", text="Das ist der Hund von "
                                                                            "meiner Schwester und es war nicht rot.")]))
             for t in english.dialogue.turns]
    german = replace(english, dialogue=replace(english.dialogue, turns=turns))
    (bad,) = LanguageFilter("en").verdicts(german, FilterContext())
    assert not bad.passed and bad.code == "wrong_language" and "looks like de" in bad.detail
    assert LanguageFilter("de").verdicts(german, FilterContext())[0].passed


def test_near_duplicate_text_and_media(tmp_path):
    samples, _ = samples_and_facts()
    index = NearDuplicateIndex()
    first, other = samples[0], samples[1]
    assert index.check(first, [0b1011]).passed
    assert index.check(other, [0b1011]).passed  # different dialogue text
    copy = replace(first, key="copy0001")
    verdict = index.check(copy, [0b1011])
    assert not verdict.passed and verdict.code == "near_duplicate" and first.key in verdict.detail
    assert verdict.score >= 0.8
    assert index.check(replace(first, key="copy0002"), [(1 << 63) - 1]).passed  # same text, other media

    def frame(name, source):
        path = tmp_path / name
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source,
                        "-frames:v", "1", str(path)], check=True)
        return str(path)

    a = frame("a.png", "testsrc=s=160x120")
    a_small = frame("b.jpg", "testsrc=s=96x72")
    c = frame("c.png", "mandelbrot=s=160x120")
    assert hamming(dhash(a), dhash(a_small)) <= 6 < hamming(dhash(a), dhash(c))


def test_preference_pair_swaps_the_key_for_a_plausible_wrong_answer():
    samples, facts = samples_and_facts(90)
    pool = answer_pool(facts)
    sources = set()
    for sample in samples:
        pair = preference_pair(sample.dialogue, facts, pool, seed=8)
        final = sample.dialogue.turns[-1]
        assert pair is not None and pair.turn == final.index
        key = answer_parts(final)[0]
        assert pair.chosen == final.assistant.text and mentions(pair.chosen, key)
        assert not mentions(pair.rejected, key) and pair.rejected != pair.chosen
        sources.add(pair.rejected_source)
    assert sources == {"other_item", "truncated_history"}
    assert preference_pair(samples[0].dialogue, facts, pool, seed=8) == preference_pair(samples[0].dialogue, facts,
                                                                                         pool, seed=8)
