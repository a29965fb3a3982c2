"""Arrow schemas of the catalog tables: the contract shared by the catalog builder, the validator and reviewers."""

from __future__ import annotations

import pyarrow as pa

from schemas.dataset_format import CATALOG_TABLES


def _field(name: str, type_: pa.DataType, doc: str, nullable: bool = False) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"doc": doc})


_STR_MAP = pa.map_(pa.string(), pa.string())

SAMPLES = pa.schema([
    _field("key", pa.string(), "Sample key; members of the sample are `KEY.<suffix>` in its shard."),
    _field("shard", pa.string(), "Shard file under `shards/` holding the sample; null when it was rejected.", True),
    _field("kept", pa.bool_(), "True when every filter passed and the sample is in a shard."),
    _field("schema_version", pa.int32(), "Schema version of the `KEY.json` record."),
    _field("dialogue_id", pa.string(), "Identifier of the dialogue the planner made."),
    _field("num_turns", pa.int32(), "Turns in the dialogue."),
    _field("num_media", pa.int32(), "Media members (images, video clips, audio clips)."),
    _field("num_memory_questions", pa.int32(), "Turns whose question type is a memory type."),
    _field("num_spoken_messages", pa.int32(), "Messages that carry a TTS speech member."),
    _field("max_memory_distance", pa.int32(), "Longest memory distance in turns; null without memory questions.", True),
    _field("token_text", pa.int64(), "Text tokens (Qwen tokenizer)."),
    _field("token_image", pa.int64(), "Image tokens: tiles x 64 + 2 per image."),
    _field("token_video", pa.int64(), "Video tokens: frames x 64 + 2 per clip."),
    _field("token_audio", pa.int64(), "Audio tokens: ceil(seconds x 25) + 2 per clip."),
    _field("token_total", pa.int64(), "Sum of the four token counts."),
    _field("failed_filters", pa.list_(pa.string()), "Names of the filters that rejected the sample (empty when kept)."),
    _field("has_preference", pa.bool_(), "True when the sample carries a DPO pair on its final turn."),
    _field("bytes", pa.int64(), "Bytes of the sample's members in its shard (data only); null when rejected.", True),
    _field("seed", pa.int64(), "Seed the sample was made with."),
    _field("config_hash", pa.string(), "Hash of the run configuration that made the sample."),
])

TURNS = pa.schema([
    _field("key", pa.string(), "Sample key."),
    _field("turn", pa.int32(), "Turn index, from 0."),
    _field("question_type", pa.string(),
           "One of no_context, current_media, memory_media, memory_text, memory_mixed."),
    _field("is_memory", pa.bool_(), "True for the three memory question types."),
    _field("memory_distance", pa.int32(), "Largest distance in turns to a recalled turn; null when not memory.", True),
    _field("memory_turns", pa.list_(pa.int32()), "Earlier turns the question depends on."),
    _field("memory_members", pa.list_(pa.string()), "Media member suffixes the question recalls."),
    _field("user_text", pa.string(), "Text of the user message."),
    _field("assistant_text", pa.string(), "Text of the assistant message."),
    _field("answer_key", pa.string(), "Short grounded answer the assistant text must contain."),
    _field("user_media", pa.list_(pa.string()), "Member suffixes of the media shown in the user message."),
    _field("user_speech", pa.string(), "Member suffix of the spoken user message; null when not spoken.", True),
    _field("assistant_speech", pa.string(), "Member suffix of the spoken answer; null when not spoken.", True),
    _field("fact_ids", pa.list_(pa.string()), "Facts the question and answer are grounded on."),
])

MEDIA = pa.schema([
    _field("key", pa.string(), "Sample key."),
    _field("member", pa.string(), "Member suffix (`m00.jpg`, `m01.mp4`, `m02.flac`)."),
    _field("kind", pa.string(), "image, video or audio."),
    _field("clip_id", pa.string(), "Content address of the clip (source, span)."),
    _field("source_uri", pa.string(), "Source file the clip was cut from."),
    _field("start_s", pa.float64(), "Start of the clip in the source, seconds (0 for stills)."),
    _field("end_s", pa.float64(), "End of the clip in the source, seconds (0 for stills)."),
    _field("duration_s", pa.float64(), "end_s - start_s."),
    _field("turn", pa.int32(), "Turn that shows the media to the model."),
    _field("tiles", pa.int32(), "448x448 tiles (images) or frames (video) it takes."),
    _field("bytes", pa.int64(), "Size of the member in its shard; null when the sample was rejected.", True),
])

VERDICTS = pa.schema([
    _field("key", pa.string(), "Sample key."),
    _field("kept", pa.bool_(), "Whether the sample as a whole was kept (all filters passed)."),
    _field("filter", pa.string(), "Filter name."),
    _field("passed", pa.bool_(), "This filter's decision."),
    _field("code", pa.string(), "Why it failed: a reason code from the filter's closed set (answer_restated, "
                                "wer_over_limit, ...; see README); empty when passed."),
    _field("detail", pa.string(), "The same in words, with the values (empty, or a note, when passed)."),
    _field("score", pa.float64(), "The filter's score, when it has one.", True),
    _field("turn", pa.int32(), "Turn the verdict is about; null when about the whole sample.", True),
])

QUARANTINE = pa.schema([
    _field("uri", pa.string(), "Source file refused."),
    _field("reason", pa.string(), "Reason code (empty, truncated, not_media, ...; see schemas/media.py)."),
    _field("detail", pa.string(), "Human-readable cause."),
    _field("stage", pa.string(), "Stage that refused it (probe, decode, annotate)."),
    _field("size_bytes", pa.int64(), "Size of the source file."),
    _field("sha256", pa.string(), "sha256 of the source when it could be read.", True),
])

LINEAGE = pa.schema([
    _field("key", pa.string(), "Sample key."),
    _field("source_uri", pa.string(), "A source the sample was made from; null when the sample has none.", True),
    _field("source_sha256", pa.string(), "sha256 of that source.", True),
    _field("start_s", pa.float64(), "Start of the span used, seconds.", True),
    _field("end_s", pa.float64(), "End of the span used, seconds.", True),
    _field("operators", _STR_MAP, "Operator name -> version."),
    _field("models", _STR_MAP, "Role (asr, writer, tts) -> model id."),
    _field("prompt_hashes", _STR_MAP, "Prompt name -> hash."),
    _field("seed", pa.int64(), "Seed."),
    _field("config_hash", pa.string(), "Run configuration hash."),
])

CLIPS = pa.schema([
    _field("clip_id", pa.string(), "Content address of the clip (source, span); `media.clip_id` names it."),
    _field("media_id", pa.string(), "Content address of the source file (first 16 hex digits of its sha256)."),
    _field("source_uri", pa.string(), "Source file the clip was cut from."),
    _field("source_sha256", pa.string(), "sha256 of that source; null when not recorded.", True),
    _field("kind", pa.string(), "image, video or audio."),
    _field("start_s", pa.float64(), "Start of the clip in the source, seconds (0 for stills)."),
    _field("end_s", pa.float64(), "End of the clip in the source, seconds (0 for stills)."),
    _field("transcript", pa.string(),
           "What ASR heard: the kept segments' text; empty when it heard no speech, null when the clip has no audio.",
           True),
    _field("language", pa.string(), "Language ASR detected; null when the clip has no audio.", True),
    _field("language_probability", pa.float64(), "ASR's probability for that language; null without audio.", True),
    _field("asr_confidence", pa.float64(),
           "Mean over the kept segments of exp(avg_logprob), 0 to 1; null when no speech was kept.", True),
    _field("asr_model", pa.string(), "ASR model that made the transcript; null without audio.", True),
    _field("rejected_segments", pa.int32(), "Segments the hallucination guard dropped; null without audio.", True),
])

FACTS = pa.schema([
    _field("fact_id", pa.string(), "Content address of the fact (clip, kind, value, start); `turns.fact_ids` name it."),
    _field("clip_id", pa.string(), "Clip the fact is about (`clips.clip_id`)."),
    _field("kind", pa.string(), "spoken_text, spoken_keyword, spoken_language, dominant_color, brightness, motion, "
                                "on_screen_text, duration, media_kind, metadata, caption (one time-stamped event "
                                "of the audio-visual caption) or caption_refused (why the captioner's reply was "
                                "refused)."),
    _field("value", pa.string(), "The fact's value (the words, the colour, ...)."),
    _field("source", pa.string(), "transcript, visual, metadata or caption."),
    _field("confidence", pa.float64(), "Confidence of the fact, 0 to 1."),
    _field("start_s", pa.float64(), "Start of the span where the fact holds, seconds from the clip start; null when "
                                    "not known.", True),
    _field("end_s", pa.float64(), "End of that span, seconds from the clip start; null when not known.", True),
])

SCHEMAS: dict[str, pa.Schema] = {
    "samples": SAMPLES, "turns": TURNS, "media": MEDIA,
    "verdicts": VERDICTS, "quarantine": QUARANTINE, "lineage": LINEAGE,
    "clips": CLIPS, "facts": FACTS,
}
assert tuple(SCHEMAS) == CATALOG_TABLES

SHARD_INDEX = pa.schema([
    _field("key", pa.string(), "Sample key."),
    _field("member", pa.string(), "Full member name in the tar (`KEY.m00.jpg`)."),
    _field("offset", pa.int64(), "Byte offset of the member's data (after its tar header) in the shard."),
    _field("size", pa.int64(), "Bytes of the member's data."),
])
"""Schema of ``shards/*.index.parquet``: one row per tar member."""


def column_docs(schema: pa.Schema) -> list[tuple[str, str, str]]:
    """(column, Arrow type, description) for each column, as documented in README.md."""
    return [(f.name, str(f.type), f.metadata[b"doc"].decode()) for f in schema]
