"""``curate --dry-run``: the requests and tokens a corpus would cost the configured models, with no model asked.

The sources are listed and probed (ffprobe: kind, duration, picture size); clips are counted with the fixed
windows of ``decode.clip_seconds`` (scene and speech cuts are not made); dialogues, turns and question types
follow the planner's expectations. Text is counted with the Qwen tokenizer (``schemas.text_tokens``), pictures
with the token accounting (``schemas.token_accounting``: image tiles from ``schemas.tiling``, video frames,
audio seconds). Speech is assumed at ``SPOKEN_TOKENS_PER_S`` when a clip has sound. Nothing is written.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field

from curators.decode import fixed_spans
from curators.dialogue_plan import RECALL_WEIGHTS, _length_weights, dialogue_count
from curators.probe import probe_source
from curators.sources import list_sources
from curators.writers.media_writer import QUESTION_TYPE_WORDS, SYSTEM_PROMPT
from schemas.config import CurateConfig
from schemas.dialogue import MEMORY_TYPES
from schemas.media import MediaAsset
from schemas.text_tokens import count_text_tokens
from schemas.tiling import tile_count
from schemas.usage import StageUsage

SPOKEN_TOKENS_PER_S = 3.5
"""Transcript tokens per second of sound (about 150 words a minute at 1.4 Qwen tokens a word): an assumption."""
DRAFT_TEXT = ("Facts measured from the media:\n- dominant_color: red\n- spoken_keyword: lantern (0.5-1.0 s)\n"
              "Draft question: Which word did I say at about half a second in the second recording I shared?\n"
              "Draft answer: You said lantern.\nAnswer key: lantern\nThe answer and the answer key must contain: "
              "'lantern'; the question must not. The question must keep the words: second.")
"""A typical turn's facts, draft and rules: counted once as the text every writer request carries."""
REPLY_TOKENS = 80
"""Tokens of a typical JSON reply (question, answer, key); a request's ceiling is ``writer_max_tokens``."""
ANSWER_TOKENS = 32
CAPTION_TOKENS = 200


@dataclass(kw_only=True, slots=True)
class CorpusShape:
    """What probing the sources found: clips by kind and what one clip of each kind costs to show."""

    sources: int = 0
    refused: int = 0
    clips: dict[str, int] = field(default_factory=lambda: {"image": 0, "video": 0, "audio": 0})
    picture_tokens: dict[str, float] = field(default_factory=lambda: {"image": 0.0, "video": 0.0, "audio": 0.0})
    """Mean tokens of a clip's pictures as a writer sees them (an image's tiles; a video's sent frames)."""
    sound_seconds: dict[str, float] = field(default_factory=lambda: {"image": 0.0, "video": 0.0, "audio": 0.0})
    """Mean seconds of sound per clip."""

    @property
    def total_clips(self) -> int:
        return sum(self.clips.values())


def probe_corpus(cfg: CurateConfig) -> CorpusShape:
    """List and probe the input (remote sources through a temporary copy, deleted after)."""
    shape = CorpusShape()
    sums = {k: [0.0, 0.0] for k in shape.clips}
    frames = min(cfg.dialogue.writer_frames, cfg.decode.frames_per_clip)
    cache = tempfile.mkdtemp(prefix="omnicurate-dry-run-")
    try:
        for item in list_sources(cfg.input):
            shape.sources += 1
            asset = probe_source(item.uri, cfg.probe, metadata=item.metadata, cache_dir=cache)
            if not isinstance(asset, MediaAsset):
                shape.refused += 1
                continue
            spans = [(0.0, 0.0)] if asset.kind == "image" else \
                fixed_spans(asset.duration_s, cfg.decode.clip_seconds, cfg.decode.max_clips_per_media)
            for start, end in spans:
                shape.clips[asset.kind] += 1
                if asset.kind == "image":
                    tiles = tile_count(asset.width or cfg.decode.tile_size, asset.height or cfg.decode.tile_size,
                                       cfg.decode.tile_size, cfg.decode.max_tiles)
                    sums["image"][0] += cfg.tokens.image_tokens(tiles)
                elif asset.kind == "video":
                    sums["video"][0] += cfg.tokens.video_tokens(frames)
                if asset.kind != "image" and asset.audio_codec:
                    sums[asset.kind][1] += end - start
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    for kind, (pictures, seconds) in sums.items():
        n = shape.clips[kind] or 1
        shape.picture_tokens[kind], shape.sound_seconds[kind] = pictures / n, seconds / n
    return shape


def _mean_turns(cfg: CurateConfig) -> float:
    lengths, weights = _length_weights(cfg.dialogue)
    return sum(n * w for n, w in zip(lengths, weights)) / sum(weights)


def _clip_cost(cfg: CurateConfig, shape: CorpusShape, hears: bool) -> float:
    """Prompt tokens of showing one clip (pictures, frame labels, transcript, sound), averaged over the corpus."""
    total = shape.total_clips or 1
    per_kind = 0.0
    for kind, n in shape.clips.items():
        seconds = shape.sound_seconds[kind]
        cost = shape.picture_tokens[kind] + SPOKEN_TOKENS_PER_S * seconds + 12
        if kind == "video":
            cost += 8 * min(cfg.dialogue.writer_frames, cfg.decode.frames_per_clip)  # "Frame at 1.5 s:"
        if hears and seconds:
            cost += cfg.tokens.audio_tokens(seconds)
        per_kind += n * cost
    return per_kind / total


def estimate_usage(cfg: CurateConfig, shape: CorpusShape) -> tuple[list[StageUsage], dict[str, float]]:
    """(one estimated usage row per model-backed stage, the figures it rests on). Requests count one greedy
    attempt per request; a refused reply's sampled retry (media and text writers) can double the writer's."""
    d = cfg.dialogue
    dialogues = dialogue_count(shape.total_clips, d) if shape.total_clips else 0
    turns = dialogues * _mean_turns(cfg)
    mix = {k: v / sum(d.question_mix.values()) for k, v in d.question_mix.items()}
    memory_share = sum(v for k, v in mix.items() if k in MEMORY_TYPES)
    recalled = sum(n * w for n, w in RECALL_WEIGHTS.items())
    clip_tokens = _clip_cost(cfg, shape, hears=d.writer_audio == "input_audio")
    figures = {"sources": shape.sources, "refused_sources": shape.refused, "clips": shape.total_clips,
               "dialogues": dialogues, "turns": round(turns, 1), "memory_turn_share": round(memory_share, 3),
               "tokens_per_shown_clip": round(clip_tokens, 1)}
    rows = []
    if d.writer != "template":
        model = d.writer_model or "local"
        base = count_text_tokens(SYSTEM_PROMPT) + count_text_tokens(DRAFT_TEXT) + 30
        instruction = sum(mix[k] * count_text_tokens(QUESTION_TYPE_WORDS[k]) for k in mix)
        if d.writer in ("vlm_endpoint", "local_vlm"):
            shown = mix.get("current_media", 0.0) + (mix.get("memory_media", 0.0) + mix.get("memory_mixed", 0.0)) * recalled
            per_request = base + instruction + shown * clip_tokens
        else:  # the text rephrasing: the draft and rules only
            per_request = count_text_tokens(DRAFT_TEXT) + 60
        rows.append(StageUsage(stage="writer", model=model, requests=round(turns),
                               prompt_tokens=round(turns * per_request),
                               completion_tokens=round(turns * min(REPLY_TOKENS, d.writer_max_tokens))))
        figures["writer_prompt_tokens_per_request"] = round(per_request, 1)
    check = cfg.memory_check
    if check.answerer != "none":
        memory_turns = turns * memory_share
        history = (_mean_turns(cfg) / 2) * (60 + mix.get("current_media", 0.0) * clip_tokens)
        asks = memory_turns * (recalled + 1)  # one without each recalled turn, one with the full history
        rows.append(StageUsage(stage="answerer", model=check.model or d.writer_model or "writer",
                               requests=round(asks), prompt_tokens=round(asks * history),
                               completion_tokens=round(asks * ANSWER_TOKENS)))
    if cfg.visual.captioner != "none":
        clips = shape.clips["image"] + shape.clips["video"]
        rows.append(StageUsage(stage="captioner", model=cfg.visual.captioner_model or "local",
                               requests=clips, prompt_tokens=round(clips * (clip_tokens + 120)),
                               completion_tokens=clips * CAPTION_TOKENS))
    return rows, figures


def dry_run_report(cfg: CurateConfig) -> str:
    """The estimate as text: the corpus figures, then one line per model-backed stage."""
    rows, figures = estimate_usage(cfg, probe_corpus(cfg))
    lines = ["dry run: no model asked, nothing written (estimates; see pipelines/cost_estimate.py for assumptions)",
             "corpus       " + ", ".join(f"{k} {v}" for k, v in figures.items())]
    dialogues = max(figures["dialogues"], 1)
    for r in rows:
        lines.append(f"{r.stage:<12} {r.model}: {r.requests} requests, {r.prompt_tokens} prompt + "
                     f"{r.completion_tokens} completion tokens ({r.requests / dialogues:.1f} requests, "
                     f"{(r.prompt_tokens + r.completion_tokens) / dialogues:.0f} tokens per dialogue)")
    if not rows:
        lines.append("models       none: the template writer and the rule checks ask no model")
    return "\n".join(lines)
