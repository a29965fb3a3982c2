"""The local transformers VLM path of the captioner and the memory answerer, on the tiny random LLaVA."""

from __future__ import annotations

from pathlib import Path

import pytest
from media_fixtures import card_image
from openai_server import build_tiny_vlm

from curators.captioner import LocalVlmCaptioner, caption_request
from curators.chat_media import image_part, text_part
from curators.filters.memory_validity import make_answer_check
from curators.local_vlm import LocalVlmChat, local_messages
from schemas.config import MemoryCheckConfig
from schemas.media import AnnotatedClip, Clip


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory) -> str:
    return str(build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm")))


def test_data_url_pictures_reach_the_local_model_as_images_in_order(tiny_vlm, tmp_path: Path):
    first, second = card_image(tmp_path / "a.jpg"), card_image(tmp_path / "b.jpg", background=(250, 250, 20))
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": [text_part("Compare"), image_part(first), image_part(second),
                                             {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]
    chat, images = local_messages(messages)
    assert [p["type"] for p in chat[1]["content"]] == ["text", "image", "image"]  # a local VLM hears no sound
    blue, yellow = (im.getpixel((2, 2)) for im in images)  # in the order of their parts
    assert blue[2] > 150 > yellow[2] and yellow[0] > 150 > blue[0]
    model = LocalVlmChat(tiny_vlm, device="cpu")
    reply = model.reply(messages, 8)
    assert isinstance(reply, str) and reply == model.reply(messages, 8)  # greedy: the same reply again


def test_local_captioner_and_answerer_turn_a_random_model_into_rows(tiny_vlm, tmp_path: Path):
    frames = [str(card_image(tmp_path / f"f{i}.jpg")) for i in range(3)]
    clip = Clip(clip_id="c1", media_id="m1", source_uri="/corpus/v.mp4", kind="video", start_s=0.0, end_s=3.0,
                media_path="/nonexistent.mp4", frame_paths=frames, frame_times_s=[0.0, 1.0, 2.0])
    annotated = AnnotatedClip(clip=clip, facts=[])
    assert sum(p["type"] == "image_url" for p in caption_request(annotated, 2, "transcript")[1]["content"]) == 2
    caption = LocalVlmCaptioner(tiny_vlm, frames=2, device="cpu").caption(annotated)
    assert caption.events == [] and caption.refused  # random text is no valid caption, and says so
    check = make_answer_check(MemoryCheckConfig(answerer="local_vlm", model=tiny_vlm))
    replies = check.answer([[{"role": "user", "content": [image_part(frames[0]), text_part("Colour?")]}]])
    assert len(replies) == 1 and isinstance(replies[0], str)
