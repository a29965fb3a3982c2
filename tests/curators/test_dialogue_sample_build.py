"""Sample building: token accounting arithmetic, content-derived keys, lineage and member files."""

import math
from dataclasses import replace

from dialogue_fixtures import annotated_clip

from curators.dialogue_plan import plan_dialogues
from curators.dialogue_write import TemplateDialogueWriter
from curators.sample_build import build_sample, estimate_tokens, image_tiles
from schemas.config import DecodeConfig, DialogueConfig
from schemas.dataset_format import check_key, split_member
from schemas.dialogue import ContentPart, Dialogue, MediaItem, Message, Turn
from schemas.token_accounting import TokenAccounting


def one_of_each():
    image = annotated_clip(0, "image")  # 640x480
    video = annotated_clip(1, "video")  # 5 s with a sound track
    audio = annotated_clip(2, "audio")  # 6 s
    return {c.clip.clip_id: c for c in (image, video, audio)}


def dialogue_over(clips):
    media = [MediaItem(member=f"m{i:02d}.{ext}", clip_id=c.clip.clip_id, kind=c.clip.kind,
                       source_uri=c.clip.source_uri, start_s=c.clip.start_s, end_s=c.clip.end_s, turn=i, tiles=tiles)
             for i, (c, ext, tiles) in enumerate(zip(clips.values(), ("jpg", "mp4", "flac"), (13, 8, 0)))]
    turns = [Turn(index=i, question_type="current_media",
                  user=Message(role="user", parts=[ContentPart(kind=m.kind, member=m.member),
                                                   ContentPart(kind="text", text="What is this?")]),
                  assistant=Message(role="assistant", parts=[ContentPart(kind="text", text="Something.")]),
                  answer_key="something")
             for i, m in enumerate(media)]
    return Dialogue(dialogue_id="d", turns=turns, media=media)


def test_token_estimate_follows_the_accounting():
    clips = one_of_each()
    est = estimate_tokens(dialogue_over(clips), clips, TokenAccounting(), speech_seconds={"t00.user.flac": 1.3},
                          count_text=lambda text: 1)
    assert est.image == 13 * 64 + 2
    assert est.video == 8 * 64 + 2
    assert est.audio == (math.ceil(5.0 * 25) + 2) + (6 * 25 + 2) + (math.ceil(1.3 * 25) + 2)  # sound track, clip, speech
    assert est.text == 6 * (5 + 1)  # six messages, five template tokens each plus the counted text
    assert est.total == est.text + est.image + est.video + est.audio


def test_image_tiles_follow_the_dynamic_tiling():
    decode = DecodeConfig()
    assert image_tiles(448, 448, decode) == 1
    assert image_tiles(896, 448, decode) == 3  # a 2x1 grid plus the thumbnail
    assert image_tiles(640, 480, decode) == 13  # 4x3 grid plus the thumbnail
    assert image_tiles(640, 480, replace(decode, max_tiles=6)) == 7  # 3x2, the closest grid allowed
    assert image_tiles(None, None, decode) == 1


def test_text_is_counted_by_the_qwen_tokenizer_by_default():
    """Four characters a token guessed 4 for "Hello world" and 1 for "1234"; the Qwen tokenizer says 2 and 4."""
    clips = one_of_each()
    dialogue = dialogue_over(clips)
    turns = [replace(t, user=Message(role="user", parts=[ContentPart(kind="text", text="Hello world")]),
                     assistant=Message(role="assistant", parts=[ContentPart(kind="text", text="1234")]))
             for t in dialogue.turns]
    est = estimate_tokens(replace(dialogue, turns=turns), clips, TokenAccounting())
    assert est.text == 3 * ((5 + 2) + (5 + 4))  # [9707, 1879]; digits split one by one


def test_keys_lineage_and_files():
    clips = {c.clip.clip_id: c for c in (annotated_clip(i, k) for i, k in enumerate(("video", "image", "audio") * 3))}
    plan = plan_dialogues(list(clips.values()), DialogueConfig(dialogues=1, min_turns=8, max_turns=8), 9)[0]
    written = TemplateDialogueWriter().write(plan, clips)
    kwargs = {"config_hash": "cfg1", "decode": DecodeConfig(), "accounting": TokenAccounting()}
    a = build_sample(written, clips, seed=9, **kwargs)
    assert a == build_sample(written, clips, seed=9, **kwargs)
    assert a.sample.key != build_sample(written, clips, seed=10, **kwargs).sample.key
    assert check_key(a.sample.key) and "." not in a.sample.key
    for member, path in a.files.items():
        assert split_member(f"{a.sample.key}.{member}") == (a.sample.key, member)
        assert path == clips[next(m.clip_id for m in a.sample.dialogue.media if m.member == member)].clip.media_path
    lineage = a.sample.lineage
    assert lineage.seed == 9 and lineage.config_hash == "cfg1"
    assert [s.uri for s in lineage.sources] == [m.source_uri for m in a.sample.dialogue.media]
    assert lineage.models["writer"].startswith("template") and lineage.models["asr"] == "tiny.en"
    assert set(lineage.operators) >= {"dialogue_plan", "dialogue_write.template", "sample_build"}
    assert lineage.prompt_hashes["writer"] == written.prompt_hash
    images = [m for m in a.sample.dialogue.media if m.kind == "image"]
    assert all(m.tiles == 13 for m in images)
