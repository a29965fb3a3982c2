"""The audio-visual captioner: what it sends a real ``transformers serve`` VLM, how replies are validated, and how
captions (or why there is none) become facts."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path

import pytest
from media_fixtures import card_image
from openai_server import RecordingProxy, openai_server  # noqa: F401 (the fixture)

from curators.captioner import CAPTION_SCHEMA, EndpointCaptioner, caption_or_refusal, make_captioner, parse_caption
from curators.dialogue_plan import ASKABLE_FACT_KINDS
from curators.facts import annotate_clip
from schemas.config import VisualConfig
from schemas.media import AnnotatedClip, Clip, ClipCaption, Transcript, TranscriptSegment
from schemas.validation import SchemaError

SPOKEN = "Welcome to the harbour tour"


def video_clip(tmp_path: Path, frames: int = 6) -> AnnotatedClip:
    """A 6-second clip from source second 10 with ``frames`` distinct frames and a transcript."""
    paths = [str(card_image(tmp_path / f"f{i}.jpg", background=(40 * i, 60, 200 - 30 * i))) for i in range(frames)]
    clip = Clip(clip_id="c1", media_id="m1", source_uri="/corpus/tour.mp4", kind="video", start_s=10.0, end_s=16.0,
                media_path="/nonexistent/c1.mp4", frame_paths=paths,
                frame_times_s=[10.0 + i * 6.0 / frames for i in range(frames)], audio_path=None)
    transcript = Transcript(clip_id="c1", model_id="tiny.en", language="en", language_probability=0.99, text=SPOKEN,
                            segments=[TranscriptSegment(text=SPOKEN, start_s=0.5, end_s=2.4, avg_logprob=-0.1,
                                                        no_speech_prob=0.01)])
    return AnnotatedClip(clip=clip, facts=[], transcript=transcript)


def reply(*events) -> str:
    return json.dumps({"events": [dict(zip(("start_s", "end_s", "description", "speaker", "speech"), e))
                                  for e in events]})


GOOD = reply((0.0, 2.5, "A guide stands on a pier and waves.", "the guide", SPOKEN),
             (2.5, 6.0, "A boat leaves the harbour.", "", ""))


def test_the_vlm_gets_timed_frames_and_the_transcript_and_a_garbage_reply_is_refused(
        openai_server, tmp_path):  # noqa: F811
    annotated = video_clip(tmp_path)
    with RecordingProxy(openai_server.base_url) as proxy:
        captioner = EndpointCaptioner(proxy.base_url, openai_server.vlm, frames=4, timeout_s=600)
        caption = caption_or_refusal(captioner, annotated)
    (sent,) = proxy.requests
    parts = sent["messages"][1]["content"]
    images = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    chosen = [0, 2, 3, 5]  # four of the six frames, spread over the clip
    assert images == ["data:image/jpeg;base64," + base64.b64encode(Path(annotated.clip.frame_paths[i]).read_bytes())
                      .decode() for i in chosen]
    texts = [p["text"] for p in parts if p["type"] == "text"]
    assert [t for t in texts if t.startswith("Frame at")] == ["Frame at 0.0 s:", "Frame at 2.0 s:", "Frame at 3.0 s:",
                                                              "Frame at 5.0 s:"]
    assert any(f"[0.5-2.4 s] {SPOKEN}" in t for t in texts)
    assert sent["response_format"]["json_schema"]["schema"] == CAPTION_SCHEMA
    # a random model's reply is no caption: the clip keeps its other facts and a row saying why
    assert caption.events == [] and caption.refused.startswith("not JSON")
    facts = annotate_clip(annotated.clip, annotated.transcript, None, caption=caption).facts
    assert [f.kind for f in facts if f.source == "caption"] == ["caption_refused"]
    assert "caption_refused" not in ASKABLE_FACT_KINDS
    assert captioner.client.usage().requests == 1


def test_a_valid_reply_becomes_time_stamped_caption_facts_from_the_cache(openai_server, tmp_path):  # noqa: F811
    annotated = video_clip(tmp_path)
    captioner = EndpointCaptioner(openai_server.base_url, openai_server.vlm, cache_dir=str(tmp_path / "cache"))
    # transformers serve does not enforce response_format, so a schema-valid reply is seeded where the client's
    # cache keeps this exact request's answer
    cached = captioner.client.cache_path(captioner.payload(annotated))
    cached.parent.mkdir(parents=True)
    cached.write_text(json.dumps({"content": f"```json\n{GOOD}\n```"}))
    caption = captioner.caption(annotated)
    assert captioner.client.usage().requests == 0 and captioner.client.usage().cache_hits == 1
    facts = [f for f in annotate_clip(annotated.clip, annotated.transcript, None, caption=caption).facts
             if f.kind == "caption"]
    assert [(f.start_s, f.end_s, f.value) for f in facts] == [
        (0.0, 2.5, f"A guide stands on a pier and waves. The guide says: \"{SPOKEN}\"."),
        (2.5, 6.0, "A boat leaves the harbour.")]


@pytest.mark.parametrize(("text", "why"), [
    (reply((0.0, 7.5, "A boat leaves.", "", "")), "outside the clip"),
    (reply((-1.0, 2.0, "A boat leaves.", "", "")), "outside the clip"),
    (reply((3.0, 4.0, "A boat leaves.", "", ""), (1.0, 2.0, "A guide waves.", "", "")), "before the event"),
    (reply((0.0, 1.0, "x" * 301, "", "")), "description has 301 characters"),
    (reply((0.0, 1.0, "ok", "", "")), "description has 2 characters"),
    (reply(*[(0.0, 1.0, "A boat leaves.", "", "")] * 13), "13 events"),
    (json.dumps({"events": []}), "no events"),
    (json.dumps({"events": [{"start_s": "0", "end_s": 1, "description": "A boat leaves."}]}), "numeric"),
    ("The clip shows a boat.", "not JSON"),
])
def test_a_bad_reply_is_refused_with_the_reason(text, why):
    refused = parse_caption(text, 6.0)
    assert isinstance(refused, str) and why in refused


def test_an_endpoint_that_never_answers_is_a_refusal_not_a_crash(tmp_path):
    from ports import free_port

    annotated = video_clip(tmp_path, frames=1)
    captioner = EndpointCaptioner(f"http://127.0.0.1:{free_port()}/v1", "vlm", timeout_s=2, max_retries=0)
    caption = caption_or_refusal(captioner, annotated)
    assert caption.refused.startswith("no reply") and caption.model_id == "endpoint:vlm"
    with pytest.raises(SchemaError, match="refused"):
        ClipCaption(clip_id="c", model_id="m")


def test_captioner_config_names_the_bad_field():
    assert make_captioner(VisualConfig()) is None
    with pytest.raises(SchemaError, match="captioner_audio"):
        VisualConfig(captioner="local_vlm", captioner_model="/m", captioner_audio="input_audio")
    with pytest.raises(SchemaError, match="captioner_frames"):
        VisualConfig(captioner_frames=0)


def test_input_audio_sends_the_sound_beside_the_transcript(tmp_path):
    from media_fixtures import tone

    annotated = video_clip(tmp_path, frames=2)
    wav = tone(tmp_path / "a.wav", seconds=0.5)
    annotated = AnnotatedClip(clip=replace(annotated.clip, audio_path=str(wav)), facts=[],
                              transcript=annotated.transcript)
    parts = EndpointCaptioner("http://127.0.0.1:1/v1", "omni", audio="input_audio").payload(annotated)[
        "messages"][1]["content"]
    (sound,) = [p["input_audio"] for p in parts if p["type"] == "input_audio"]
    assert sound == {"data": base64.b64encode(wav.read_bytes()).decode(), "format": "wav"}
    assert any(SPOKEN in p.get("text", "") for p in parts)
