"""Spoken turns: Piper and espeak-ng renders checked by a real faster-whisper round trip."""

import json
import random
import subprocess
from dataclasses import replace

import pytest
from dialogue_fixtures import clip_pool

from curators.dialogue_plan import plan_dialogues
from curators.dialogue_write import TemplateDialogueWriter
from curators.sample_build import build_sample
from curators.speech import EspeakSpeaker, RoundTripAsr, make_speaker, speak_checked, speak_sample, word_error_rate
from schemas.config import DecodeConfig, DialogueConfig, SpeechConfig
from schemas.token_accounting import TokenAccounting


@pytest.fixture(scope="module")
def asr():
    return RoundTripAsr()


def test_word_error_rate_counts_edits_over_reference_words():
    assert word_error_rate("What colour is it?", "what color is it") == 0.0
    assert word_error_rate("one two three four", "one too three") == pytest.approx(2 / 4)
    assert word_error_rate("a b", "a b c d") == pytest.approx(1.0)
    assert word_error_rate("", "") == 0.0


def test_piper_render_round_trips_through_whisper(asr):
    speaker = make_speaker("piper")
    assert speaker.backend == "piper"
    text = "Which colour dominated the picture I shared two turns ago?"
    slow, fast = speaker.render(text, 0.8), speaker.render(text, 1.25)
    assert slow.seconds > fast.seconds * 1.15  # rates change the pace (pauses between sentences stay)
    assert (speaker.render(text, 0.8).samples == slow.samples).all()  # a re-run renders the same speech
    spoken = speak_checked(text, speaker, asr, SpeechConfig(), random.Random(0))
    assert spoken.wer <= 0.35 and spoken.renders == 1


def test_unintelligible_text_is_re_rendered_then_rejected(asr):
    cfg = SpeechConfig(max_wer=0.05, max_renders=2, rates=[1.0, 1.3])
    spoken = speak_checked("Zxqv brrtl kwoonfa ptheg ulmb.", EspeakSpeaker(), asr, cfg, random.Random(1))
    assert spoken.renders == 2 and spoken.wer > 0.05


def test_speak_sample_adds_members_verdicts_and_lineage(asr, tmp_path):
    clips = {c.clip.clip_id: c for c in clip_pool(6)}
    plan = plan_dialogues(list(clips.values()), DialogueConfig(dialogues=1, min_turns=2, max_turns=2), 5)[0]
    curated = build_sample(TemplateDialogueWriter().write(plan, clips), clips, seed=5, config_hash="h",
                           decode=DecodeConfig(), accounting=TokenAccounting())
    spoken, seconds = speak_sample(curated, EspeakSpeaker(), asr, SpeechConfig(), tmp_path, seed=5)
    key = spoken.sample.key
    turns = spoken.sample.dialogue.turns
    assert [t.user.speech_member for t in turns] == ["t00.user.flac", "t01.user.flac"]
    assert all(t.assistant.speech_member is None for t in turns)
    wer = [v for v in spoken.sample.verdicts if v.filter == "speech_wer"]
    assert [v.turn for v in wer] == [0, 1] and all(v.score >= 0 for v in wer)
    assert spoken.sample.lineage.models["tts"] == "espeak-ng:en-us" and "speech" in spoken.sample.lineage.operators
    for suffix in ("t00.user.flac", "t01.user.flac"):
        path = spoken.files[suffix]
        assert path == str(tmp_path / key / suffix)
        probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", path],
                                          capture_output=True, check=True).stdout)["streams"][0]
        assert probe["codec_name"] == "flac" and probe["sample_rate"] == "16000" and probe["channels"] == 1
        assert seconds[suffix] > 0.5
    assert set(curated.files) < set(spoken.files)
    again, _ = speak_sample(replace(curated), EspeakSpeaker(), asr, SpeechConfig(), tmp_path / "again", seed=5)
    assert [v.score for v in again.sample.verdicts if v.filter == "speech_wer"] == [v.score for v in wer]


def test_a_misheard_turn_stays_text_or_rejects_the_dialogue_as_configured(asr, tmp_path):
    from schemas.dialogue import ContentPart, Message

    clips = {c.clip.clip_id: c for c in clip_pool(6)}
    plan = plan_dialogues(list(clips.values()), DialogueConfig(dialogues=1, min_turns=2, max_turns=2), 5)[0]
    curated = build_sample(TemplateDialogueWriter().write(plan, clips), clips, seed=5, config_hash="h",
                           decode=DecodeConfig(), accounting=TokenAccounting())
    first, second = curated.sample.dialogue.turns
    garbled = Message(role="user", parts=[ContentPart(kind="text", text="Zxqv brrtl kwoonfa ptheg ulmb.")])
    dialogue = replace(curated.sample.dialogue, turns=[replace(first, user=garbled), second])
    curated = replace(curated, sample=replace(curated.sample, dialogue=dialogue))
    cfg = SpeechConfig(max_renders=1, rates=[1.0])

    kept, _ = speak_sample(curated, EspeakSpeaker(), asr, cfg, tmp_path / "keep", seed=5)
    [misheard, heard] = [v for v in kept.sample.verdicts if v.filter == "speech_wer"]
    assert misheard.passed and misheard.detail.startswith("kept as text: user speech WER") and misheard.score > 0.35
    assert [t.user.speech_member for t in kept.sample.dialogue.turns] == [None, "t01.user.flac"]
    assert "t00.user.flac" not in kept.files and heard.passed

    rejected, _ = speak_sample(curated, EspeakSpeaker(), asr, replace(cfg, high_wer="reject"), tmp_path / "r", seed=5)
    [misheard, _] = [v for v in rejected.sample.verdicts if v.filter == "speech_wer"]
    assert (misheard.passed, misheard.code) == (False, "wer_over_limit")
    assert rejected.sample.dialogue.turns[0].user.speech_member == "t00.user.flac"
