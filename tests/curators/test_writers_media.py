"""The media writers against the real test server (``transformers serve`` over tiny random models).

What the server received is read from a recording proxy in front of it. The random VLM answers garbage, which
is the invalid-reply case; the valid-reply case is a known-good JSON placed in the request cache for one turn.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from writer_media_fixtures import FRAMES_PER_VIDEO, b64, media_pool

from curators.dialogue_plan import plan_dialogues
from curators.dialogue_write import make_writer
from curators.writers.media_writer import TURN_SCHEMA, MediaTurnPrompt, parse_turn_reply
from curators.writers.rewrite import drafts_of
from curators.writers.template import TemplateWriter
from openai_server import RecordingProxy, openai_server  # noqa: F401 (the fixture)
from schemas.config import DialogueConfig
from schemas.dialogue import MEMORY_TYPES


def image_payloads(request: dict) -> list[str]:
    parts = request["messages"][-1]["content"]
    return [p["image_url"]["url"].split(";base64,", 1)[1] for p in parts if p["type"] == "image_url"]


def texts(request: dict) -> str:
    return "\n".join(p["text"] for p in request["messages"][-1]["content"] if p["type"] == "text")


def writer_config(base_url: str, model: str, cache: Path, **extra) -> DialogueConfig:
    fields = {"writer": "vlm_endpoint", "writer_model": model, "endpoint_url": base_url, "writer_cache_dir": str(cache),
              "writer_concurrency": 2, "writer_max_tokens": 16, "writer_frames": FRAMES_PER_VIDEO, "dialogues": 2,
              "min_turns": 6, "max_turns": 6, **extra}
    return DialogueConfig(**fields)


def drafts_by_text(plans, by_id):
    """Each turn's draft and its dialogue, found by the draft text a request carries."""
    template = TemplateWriter()
    found = {}
    for i, plan in enumerate(plans):
        dialogue = template.write(plan, by_id)
        for draft in drafts_of(i, dialogue):
            found[f"Draft question: {draft.question}\nDraft answer: {draft.answer}\n"] = (draft, dialogue)
    return found


def clip_of(dialogue, member, by_id):
    return by_id[next(m.clip_id for m in dialogue.media if m.member == member)]


def expected_pictures(annotated) -> list[str]:
    clip = annotated.clip
    return [b64(clip.media_path)] if clip.kind == "image" else [b64(p) for p in clip.frame_paths]


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    clips = media_pool(tmp_path_factory.mktemp("media"))
    return clips, {c.clip.clip_id: c for c in clips}


def test_media_writer_sends_the_media_falls_back_on_garbage_and_reruns_from_cache(openai_server, pool,  # noqa: F811
                                                                                  tmp_path):
    clips, by_id = pool
    with RecordingProxy(openai_server.base_url) as proxy:
        cfg = writer_config(proxy.base_url, openai_server.vlm, tmp_path / "cache")
        plans = plan_dialogues(clips, cfg, 5)
        writer = make_writer(cfg)
        first = writer.write_batch(plans, by_id)
        sent = list(proxy.requests)
        again = make_writer(cfg).write_batch(plans, by_id)
        rerun_sent = proxy.requests[len(sent):]
    turns = [t for w in first for t in w.dialogue.turns]
    assert sent and rerun_sent == []  # the re-run answered every request from the cache
    assert [w.dialogue for w in again] == [w.dialogue for w in first]

    # Two attempts per turn (greedy, then sampled), every one sent with the JSON schema.
    assert len(sent) == 2 * len(turns)
    assert all(r["response_format"]["json_schema"]["schema"] == TURN_SCHEMA for r in sent)
    assert {r["temperature"] for r in sent} == {0.0, 0.8}

    drafts = drafts_by_text(plans, by_id)
    memory_media_checked = current_checked = 0
    for request in sent:
        body = texts(request)
        (draft, dialogue), = [v for k, v in drafts.items() if k in body]
        pictures = image_payloads(request)
        turn = draft.turn
        for part in turn.user.parts:
            if part.kind != "text":
                shown = clip_of(dialogue, part.member, by_id)
                assert all(p in pictures for p in expected_pictures(shown))
                if shown.clip.kind == "video":  # frames go with their time stamps
                    assert all(f"Frame at {t - shown.clip.start_s:.1f} s:" in body for t in shown.clip.frame_times_s)
                current_checked += 1
        for ref in turn.memory_refs:
            if ref.member:
                recalled = clip_of(dialogue, ref.member, by_id)
                assert f"shared in turn {ref.turn + 1}, {ref.distance} turns before this one" in body
                assert all(p in pictures for p in expected_pictures(recalled))
                if recalled.transcript:
                    assert recalled.transcript.segments[0].text in body
                memory_media_checked += 1
        assert not [p for p in request["messages"][-1]["content"] if p["type"] == "input_audio"]  # sound as words
        if turn.question_type not in MEMORY_TYPES and not any(p.kind != "text" for p in turn.user.parts):
            assert pictures == []  # a turn about nothing shown carries no pictures
    assert current_checked and memory_media_checked

    # The random model's garbage never validates: every turn keeps the grounded template turn, saying why.
    template = TemplateWriter()
    for plan, w in zip(plans, first):
        assert w.dialogue == template.write(plan, by_id)
        (verdict,) = w.verdicts
        assert verdict.filter == "writer_validation" and verdict.passed and verdict.score == 0.0
        assert "template kept for turns 0 (reply is not JSON)" in verdict.detail
    usage = writer.usage()
    assert (usage.stage, usage.requests, usage.cache_hits, usage.failures) == ("writer", len(sent), 0, 0)
    with RecordingProxy(openai_server.base_url) as plain:  # what a memory answerer asks through: no turn schema
        asker = make_writer(replace(cfg, endpoint_url=plain.base_url, writer_cache_dir=None))
        (reply,) = asker.complete([[{"role": "user", "content": "What colour was it?"}]], 0)
    assert isinstance(reply, str) and "response_format" not in plain.requests[0]
    assert usage.completion_tokens == 16 * len(sent) and usage.prompt_tokens > 0


def test_a_valid_json_reply_is_taken_and_an_invalid_one_is_refused(openai_server, pool, tmp_path):  # noqa: F811
    clips, by_id = pool
    cache = tmp_path / "cache"
    with RecordingProxy(openai_server.base_url) as proxy:
        cfg = writer_config(proxy.base_url, openai_server.vlm, cache, dialogues=1)
        plans = plan_dialogues(clips, cfg, 5)
        writer = make_writer(cfg)
        dialogue = TemplateWriter().write(plans[0], by_id)
        drafts = drafts_of(0, dialogue)
        good = next(d for d in drafts if d.turn.question_type == "current_media" and d.turn.answer_key)
        bad = next(d for d in drafts if d is not good and d.turn.answer_key)
        prompt = MediaTurnPrompt(by_id, frames=cfg.writer_frames, audio=cfg.writer_audio, vision=True)
        question = "Looking at what I just showed you, what stands out most?"
        answer = f"What stands out is {good.turn.answer_key}."
        for draft, reply in ((good, {"question": question, "answer": answer, "answer_key": good.turn.answer_key}),
                             (bad, {"question": "What is it?", "answer": "Something.", "answer_key": "nothing"})):
            for attempt in (0, 1):
                payload = writer.client.payload(prompt.request(draft, dialogue), attempt,
                                                response_format=writer.response_format)
                path = writer.client.cache_path(payload)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({"content": json.dumps(reply)}))
        (written,) = writer.write_batch(plans, by_id)
    turn = written.dialogue.turns[good.turn.index]
    assert turn.user.text.endswith(question) and turn.assistant.text == answer
    assert turn.answer_key == good.turn.answer_key and turn.fact_ids == good.turn.fact_ids
    assert written.dialogue.turns[bad.turn.index] == bad.turn
    (verdict,) = written.verdicts
    assert f"{bad.turn.index} (answer key lacks {bad.turn.answer_key.split('; ')[0]!r})" in verdict.detail
    assert f"{good.turn.index} (" not in verdict.detail
    assert len(proxy.requests) == 2 * (len(drafts) - 2)  # the two cached turns sent nothing
    assert writer.usage().cache_hits == 3  # the good turn once (taken), the bad one greedy and sampled


def test_reply_validation_names_what_is_wrong():
    keys = ["red"]
    assert parse_turn_reply("no json here", keys) == "reply is not JSON"
    assert parse_turn_reply('{"question": "Q?", "answer": "red"}', keys).startswith("reply breaks the schema at reply")
    assert parse_turn_reply('{"question": "Q?", "answer": "red", "answer_key": "red", "extra": 1}',
                            keys).startswith("reply breaks the schema")
    assert parse_turn_reply('{"question": "", "answer": "red", "answer_key": "red"}', keys).startswith(
        "reply breaks the schema at question")
    assert parse_turn_reply('{"question": "Q?", "answer": "It is red.", "answer_key": "blue"}', keys) == \
        "answer key lacks 'red'"
    assert parse_turn_reply('```json\n{"question": "Q?", "answer": "It is red.", "answer_key": "Red"}\n```',
                            keys) == ("Q?", "It is red.")


def test_text_model_path_gets_words_for_pictures_and_sound_as_input_audio(openai_server, pool, tmp_path):  # noqa: F811
    """A text-only server: pictures named in words, transcripts as text, and (configured to hear) the sound as
    ``input_audio``; this server's text model reads only the text parts and answers."""
    clips, by_id = pool
    with RecordingProxy(openai_server.base_url) as proxy:
        cfg = writer_config(proxy.base_url, openai_server.text_lm, tmp_path / "cache", writer_vision=False,
                            writer_audio="input_audio", dialogues=1, min_turns=5, max_turns=5)
        plans = plan_dialogues(clips, cfg, 7)
        writer = make_writer(cfg)
        (written,) = writer.write_batch(plans, by_id)
    assert proxy.requests and all(image_payloads(r) == [] for r in proxy.requests)
    assert all(r["model"] == openai_server.text_lm for r in proxy.requests)
    assert writer.usage().failures == 0 and written.verdicts[0].score == 0.0
    heard = [by_id[m.clip_id] for m in written.dialogue.media if by_id[m.clip_id].clip.audio_path]
    assert heard
    sent_audio = [p["input_audio"] for r in proxy.requests for p in r["messages"][-1]["content"]
                  if p["type"] == "input_audio"]
    for annotated in heard:
        assert {"data": b64(annotated.clip.audio_path), "format": "wav"} in sent_audio
        assert any(annotated.transcript.segments[0].text in texts(r) for r in proxy.requests)
    pictured = [by_id[m.clip_id] for m in written.dialogue.media if m.kind != "audio"]
    assert pictured and any("[a frame]" in texts(r) or "[a picture]" in texts(r) for r in proxy.requests)


def test_local_vlm_writer_takes_the_same_requests(openai_server, pool):  # noqa: F811
    """The same prompts through the tiny VLM loaded in-process: it reads the pictures and falls back alike."""
    clips, by_id = pool
    cfg = DialogueConfig(writer="local_vlm", writer_model=openai_server.vlm, writer_max_tokens=16, dialogues=1,
                         min_turns=3, max_turns=3, writer_frames=FRAMES_PER_VIDEO)
    plans = plan_dialogues(clips, cfg, 5)
    writer = make_writer(cfg)
    seen = []
    complete = writer.complete_turns
    writer.complete_turns = lambda requests, attempt: seen.extend(requests) or complete(requests, attempt)
    (written,) = writer.write_batch(plans, by_id)
    assert written.writer == "local_vlm" and written.model_id == "tiny-vlm"
    assert written.dialogue == TemplateWriter().write(plans[0], by_id)
    assert "(reply is not JSON)" in written.verdicts[0].detail
    prompt = MediaTurnPrompt(by_id, frames=FRAMES_PER_VIDEO, audio="transcript", vision=True)
    dialogue = TemplateWriter().write(plans[0], by_id)
    assert seen == [prompt.request(d, dialogue) for d in drafts_of(0, dialogue)]  # one greedy attempt per turn
    assert writer.usage().requests == len(seen)
