"""Round trips and named errors for every record of schemas/."""

import json

import pytest

from schemas import SchemaError, from_dict, from_json, to_dict, to_json
from schemas.config import CurateConfig, load_config
from schemas.dataset_format import SCHEMA_VERSION, Manifest, ShardEntry, check_key, media_suffix, speech_suffix, split_member
from schemas.dialogue import (ContentPart, Dialogue, Lineage, MediaItem, MemoryRef, Message, PreferencePair, Sample,
                              SourceSpan, TokenEstimate, Turn, Verdict)
from schemas.media import (AnnotatedClip, Clip, Fact, MediaAsset, QuarantineRecord, Transcript, TranscriptSegment,
                           VisualFacts, Word)
from schemas.token_accounting import TokenAccounting

SHA = "ab" * 32


def make_clip():
    return Clip(clip_id="c1", media_id="m1", source_uri="/x/a.mp4", kind="video", start_s=0.0, end_s=4.0,
                media_path="/w/c1.mp4", frame_paths=["/w/f0.jpg"], frame_times_s=[0.5], audio_path="/w/c1.wav",
                width=320, height=240)


def make_sample():
    t0 = Turn(index=0, question_type="current_media",
              user=Message(role="user", parts=[ContentPart(kind="video", member="m00.mp4"),
                                               ContentPart(kind="text", text="What colour is the shape?")]),
              assistant=Message(role="assistant", parts=[ContentPart(kind="text", text="It is red.")]),
              fact_ids=["f1"], answer_key="red")
    t1 = Turn(index=1, question_type="no_context",
              user=Message(role="user", parts=[ContentPart(kind="text", text="What is two plus two?")],
                           speech_member="t01.user.flac"),
              assistant=Message(role="assistant", parts=[ContentPart(kind="text", text="Four.")]))
    t2 = Turn(index=2, question_type="memory_media",
              user=Message(role="user", parts=[ContentPart(kind="text", text="What colour was the shape earlier?")]),
              assistant=Message(role="assistant", parts=[ContentPart(kind="text", text="Red.")]),
              memory_refs=[MemoryRef(turn=0, distance=2, member="m00.mp4", start_s=0.0, end_s=4.0)], answer_key="red")
    d = Dialogue(dialogue_id="d1", turns=[t0, t1, t2],
                 media=[MediaItem(member="m00.mp4", clip_id="c1", kind="video", source_uri="/x/a.mp4",
                                  start_s=0.0, end_s=4.0, turn=0, tiles=8)])
    return Sample(key="k0001", schema_version=SCHEMA_VERSION, dialogue=d,
                  lineage=Lineage(sources=[SourceSpan(uri="/x/a.mp4", sha256=SHA, start_s=0, end_s=4)],
                                  operators={"probe": "1"}, models={"asr": "tiny.en"}, seed=3, config_hash="h"),
                  tokens=TokenEstimate(text=30, image=0, video=514, audio=0),
                  verdicts=[Verdict(filter="leakage", passed=True, score=0.0),
                            Verdict(filter="memory_validity", passed=False, code="answer_restated",
                                    detail="answer 'red' restated at turn 1, between turn 0 and turn 2", score=2.0,
                                    turn=2)],
                  preference=PreferencePair(turn=2, chosen="Red.", rejected="Blue.", rejected_source="other_item"))


RECORDS = [
    MediaAsset(media_id="m1", uri="/x/a.mp4", kind="video", sha256=SHA, size_bytes=10, container="mp4",
               duration_s=4.0, video_codec="h264", width=320, height=240, fps=25.0, metadata={"title": "t"}),
    QuarantineRecord(uri="/x/b.mp4", reason="truncated", detail="moov atom not found", stage="probe"),
    make_clip(),
    Transcript(clip_id="c1", model_id="tiny.en", language="en", language_probability=0.9, text="hello",
               segments=[TranscriptSegment(text="hello", start_s=0, end_s=1, avg_logprob=-0.2, no_speech_prob=0.01,
                                           words=[Word(word="hello", start_s=0, end_s=0.5, probability=0.9)])]),
    VisualFacts(clip_id="c1", dominant_colors=["red"], mean_brightness=0.4, motion=0.1, ocr_text="HELLO"),
    AnnotatedClip(clip=make_clip(), facts=[Fact(fact_id="f1", clip_id="c1", kind="dominant_color", value="red",
                                                source="visual")]),
    make_sample(),
    Manifest(schema_version=SCHEMA_VERSION, config_hash="h", seed=0, counts={"samples": 1},
             shards=[ShardEntry(name="train-000000.tar", sha256=SHA, bytes=10, samples=1,
                                index="train-000000.index.parquet")]),
    TokenAccounting(),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_json_round_trip_is_exact(record):
    text = to_json(record)
    back = from_json(type(record), text)
    assert back == record
    assert to_json(back) == text


def test_bad_nested_field_is_named():
    data = to_dict(make_sample())
    data["dialogue"]["turns"][2]["question_type"] = "memory_smell"
    with pytest.raises(SchemaError) as err:
        from_dict(Sample, data)
    assert err.value.field == "dialogue.turns[2].question_type"
    assert "memory_media" in str(err.value)


def test_memory_distance_must_match_turns():
    data = to_dict(make_sample())
    data["dialogue"]["turns"][2]["memory_refs"][0]["distance"] = 1
    with pytest.raises(SchemaError, match=r"memory_refs\[0\]\.distance"):
        from_dict(Sample, data)


def test_memory_question_without_refs_is_refused():
    data = to_dict(make_sample())
    data["dialogue"]["turns"][2]["memory_refs"] = []
    with pytest.raises(SchemaError, match="memory_refs"):
        from_dict(Sample, data)


def test_unknown_and_missing_fields_are_named():
    with pytest.raises(SchemaError, match="^colour: unknown field"):
        from_dict(VisualFacts, {"clip_id": "c", "dominant_colors": [], "mean_brightness": 0.1, "motion": 0, "colour": 1})
    with pytest.raises(SchemaError, match="^motion: missing"):
        from_dict(VisualFacts, {"clip_id": "c", "dominant_colors": [], "mean_brightness": 0.1})
    with pytest.raises(SchemaError, match="^size_bytes: expected an integer"):
        from_dict(QuarantineRecord, {"uri": "u", "reason": "empty", "detail": "", "stage": "probe", "size_bytes": True})


def test_verdict_codes_are_strict():
    data = to_dict(make_sample())
    old = dict(data, verdicts=[{"filter": "memory_validity", "passed": False, "reason": "answer 'red' restated",
                                "score": 2.0, "turn": 2}])  # a schema-version-1 verdict
    with pytest.raises(SchemaError, match=r"^verdicts\[0\]\.reason: unknown field"):
        from_dict(Sample, old)
    uncoded = dict(data, verdicts=[{"filter": "leakage", "passed": False, "detail": "question contains 'red'"}])
    with pytest.raises(SchemaError, match=r"^verdicts\[0\]\.code: a failed verdict needs"):
        from_dict(Sample, uncoded)
    for bad in ("Answer Restated", "answer-restated", "restated at turn 5"):
        with pytest.raises(SchemaError, match="^code"):
            Verdict(filter="memory_validity", passed=False, code=bad)
    with pytest.raises(SchemaError, match="^code: a passed verdict has no reason code"):
        Verdict(filter="leakage", passed=True, code="answer_in_question")


@pytest.mark.parametrize("bad", ["", "A1", "a.b", "../x", "a/b", "x" * 200])
def test_bad_keys_are_refused(bad):
    with pytest.raises(SchemaError):
        check_key(bad)


@pytest.mark.parametrize("name", ["../etc.json", "/abs.json", "k/x.json", ".hidden.json", "k.exe", "k.m00.sh", "k"])
def test_hostile_member_names_are_refused(name):
    with pytest.raises(SchemaError):
        split_member(name)


def test_member_naming():
    assert split_member("abc." + media_suffix(2, "audio")) == ("abc", "m02.flac")
    assert split_member("abc." + speech_suffix(3, "assistant")) == ("abc", "t03.assistant.flac")


def test_token_accounting_matches_design():
    acc = TokenAccounting()
    assert acc.image_tokens(tiles=7) == 7 * 64 + 2
    assert acc.video_tokens(frames=8) == 8 * 64 + 2
    assert acc.audio_tokens(seconds=2.01) == 51 + 2
    assert acc.audio_tokens(seconds=2.0) == 50 + 2


def test_config_file_names_bad_field(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("input: in\noutput: out\ndecode:\n  frames_per_clip: 0\n")
    with pytest.raises(SchemaError, match=r"^decode\.frames_per_clip: must be between"):
        load_config(path)
    path.write_text("input: in\noutput: out\ndialogue:\n  question_mix: {memory_smell: 1}\n")
    with pytest.raises(SchemaError, match=r"^dialogue\.question_mix\.memory_smell"):
        load_config(path)


def test_config_hash_ignores_locations_but_not_settings():
    a = CurateConfig(input="a", output="b")
    assert a.config_hash() == CurateConfig(input="c", output="d").config_hash()
    assert a.config_hash() != CurateConfig(input="a", output="b", seed=1).config_hash()


def test_sample_json_is_canonical():
    text = to_json(make_sample())
    assert json.loads(text)["dialogue"]["turns"][2]["memory_refs"][0]["distance"] == 2
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_a_union_of_several_types_takes_the_first_that_fits_and_names_the_field_when_none_does():
    from dataclasses import dataclass

    @dataclass
    class Mixed:
        value: int | str
        rows: dict[str, list[float]]
        free: object = None

    assert from_dict(Mixed, {"value": "7", "rows": {"a": [1, 2.5]}}) == Mixed(value="7", rows={"a": [1.0, 2.5]})
    assert from_dict(Mixed, {"value": 7, "rows": {}}).value == 7
    with pytest.raises(SchemaError, match=r"^value: expected int \| str, got 7\.5"):
        from_dict(Mixed, {"value": 7.5, "rows": {}})
    with pytest.raises(SchemaError, match=r"^rows\.a\[1\]: expected a number"):
        from_dict(Mixed, {"value": 1, "rows": {"a": [1, "x"]}})
    # a field of a type the schemas do not know is an error only for a value that reaches it
    assert to_dict(Mixed(value=1, rows={}, free=None)) == {"value": 1, "rows": {}, "free": None}
    with pytest.raises(TypeError, match="at free"):
        from_dict(Mixed, {"value": 1, "rows": {}, "free": 3})
