"""Turn a written dialogue into a keyed Sample: member files, lineage and token estimate."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace

from curators.dialogue_plan import PLANNER_VERSION
from curators.dialogue_write import WrittenDialogue
from schemas.config import DecodeConfig
from schemas.dataset_format import SCHEMA_VERSION, check_key
from schemas.dialogue import CuratedSample, Dialogue, Lineage, Sample, SourceSpan, TokenEstimate
from schemas.media import AnnotatedClip
from schemas.text_tokens import count_text_tokens
from schemas.tiling import tile_count
from schemas.token_accounting import TokenAccounting
from schemas.validation import to_json

SAMPLE_BUILD_VERSION = "2"
"""2: text counted by the Qwen tokenizer (was four characters a token); InternVL's tiling grid exactly."""

MESSAGE_OVERHEAD_TOKENS = 5
"""Chat-template tokens around each message: ``<|im_start|>``, role, newline, ``<|im_end|>``, newline."""

TextCounter = Callable[[str], int]
"""Text -> its token count; the Qwen tokenizer's (``schemas.text_tokens.count_text_tokens``) unless a test says."""


def image_tiles(width: int | None, height: int | None, decode: DecodeConfig) -> int:
    """Tiles of the dynamic tiling (grid plus thumbnail); one tile when the size is unknown."""
    if not width or not height:
        return 1
    return tile_count(width, height, decode.tile_size, decode.max_tiles)


def media_tiles(clip: AnnotatedClip, decode: DecodeConfig) -> int:
    if clip.clip.kind == "image":
        return image_tiles(clip.clip.width, clip.clip.height, decode)
    if clip.clip.kind == "video":  # the frames actually sampled: fps and keyframe policies vary per clip
        return len(clip.clip.frame_paths) or decode.frames_per_clip
    return 0


def estimate_tokens(dialogue: Dialogue, clips: dict[str, AnnotatedClip], accounting: TokenAccounting,
                    speech_seconds: dict[str, float] | None = None,
                    count_text: TextCounter = count_text_tokens) -> TokenEstimate:
    """DESIGN.md's accounting: image tiles x 64 + 2, video frames x 64 + 2, audio ceil(s x 25) + 2, text counted.

    A video's own sound track counts as audio when the clip has one; spoken turns count as audio too.
    """
    image = video = audio = 0
    for item in dialogue.media:
        clip = clips[item.clip_id].clip
        if item.kind == "image":
            image += accounting.image_tokens(item.tiles)
        elif item.kind == "video":
            video += accounting.video_tokens(item.tiles)
            if clip.audio_path is not None and clip.duration_s > 0:
                audio += accounting.audio_tokens(clip.duration_s)
        else:
            audio += accounting.audio_tokens(clip.duration_s)
    for seconds in (speech_seconds or {}).values():
        audio += accounting.audio_tokens(seconds)
    text = 0
    for turn in dialogue.turns:
        for message in (turn.user, turn.assistant):
            text += MESSAGE_OVERHEAD_TOKENS + count_text(message.text)
    return TokenEstimate(text=text, image=image, video=video, audio=audio)


def sample_key(dialogue: Dialogue, seed: int) -> str:
    """Content- and seed-derived key: a re-run makes the same keys, different content never collides."""
    digest = hashlib.sha256(f"{seed}\x1f{to_json(dialogue)}".encode()).hexdigest()
    return check_key(digest[:24])


def build_sample(written: WrittenDialogue, clips: dict[str, AnnotatedClip], *, seed: int, config_hash: str,
                 decode: DecodeConfig, accounting: TokenAccounting,
                 count_text: TextCounter = count_text_tokens) -> CuratedSample:
    """A Sample (no verdicts yet) and the local files of its media members."""
    dialogue = written.dialogue
    media = [replace(item, tiles=media_tiles(clips[item.clip_id], decode)) for item in dialogue.media]
    dialogue = replace(dialogue, media=media)
    sources, asr_models = [], set()
    for item in media:
        annotated = clips[item.clip_id]
        sources.append(SourceSpan(uri=item.source_uri, sha256=annotated.source_sha256, start_s=item.start_s,
                                  end_s=item.end_s))
        if annotated.transcript is not None:
            asr_models.add(annotated.transcript.model_id)
    models = {"writer": written.model_id}
    if asr_models:
        models["asr"] = ",".join(sorted(asr_models))
    lineage = Lineage(sources=sources,
                      operators={"dialogue_plan": PLANNER_VERSION, f"dialogue_write.{written.writer}": written.model_id,
                                 "sample_build": SAMPLE_BUILD_VERSION},
                      models=models, prompt_hashes={"writer": written.prompt_hash}, seed=seed, config_hash=config_hash)
    sample = Sample(key=sample_key(dialogue, seed), schema_version=SCHEMA_VERSION, dialogue=dialogue, lineage=lineage,
                    tokens=estimate_tokens(dialogue, clips, accounting, count_text=count_text),
                    verdicts=list(written.verdicts))
    files = {item.member: clips[item.clip_id].clip.media_path for item in media}
    return CuratedSample(sample=sample, files=files)
