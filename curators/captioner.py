"""Audio-visual captions: a VLM sees several time-stamped frames of a clip and its transcript (or its sound) and
describes, span by span, what happens, who speaks and what is said; the reply is validated before it becomes
facts. A local transformers VLM or any OpenAI-compatible endpoint; off by default."""

from __future__ import annotations

import json
import re
from typing import Protocol

from curators.chat_media import clip_parts, text_part
from curators.writers.chat_client import json_schema_format
from schemas.config import VisualConfig
from schemas.media import AnnotatedClip, CaptionEvent, ClipCaption

CAPTION_PROMPT_VERSION = "av/1"
SYSTEM_PROMPT = (
    "You describe a media clip for someone who cannot see or hear it. You get frames of the clip, each after "
    "its time in seconds from the clip start, and the transcript of what is said. Describe in time order what "
    "happens, who speaks and what they say. Reply with JSON only: {\"events\": [{\"start_s\": <seconds>, "
    "\"end_s\": <seconds>, \"description\": <one sentence>, \"speaker\": <who speaks, or empty>, \"speech\": "
    "<what they say, or empty>}]}. Times must lie within the clip.")
MAX_EVENTS = 12
MIN_DESCRIPTION_CHARS = 3
MAX_DESCRIPTION_CHARS = 300
MAX_SPEECH_CHARS = 300
TIME_TOLERANCE_S = 0.05
"""Slack on the clip's end for rounded time stamps."""
MAX_TOKENS = 512
ENDPOINT_TIMEOUT_S = 60.0
CAPTIONER_STAGE = "captioner"

_EVENT_SCHEMA = {
    "type": "object",
    "properties": {"start_s": {"type": "number"}, "end_s": {"type": "number"},
                   "description": {"type": "string", "minLength": MIN_DESCRIPTION_CHARS,
                                   "maxLength": MAX_DESCRIPTION_CHARS},
                   "speaker": {"type": "string"}, "speech": {"type": "string", "maxLength": MAX_SPEECH_CHARS}},
    "required": ["start_s", "end_s", "description", "speaker", "speech"],
    "additionalProperties": False,
}
CAPTION_SCHEMA = {
    "type": "object",
    "properties": {"events": {"type": "array", "minItems": 1, "maxItems": MAX_EVENTS, "items": _EVENT_SCHEMA}},
    "required": ["events"],
    "additionalProperties": False,
}
"""The reply's JSON schema, sent as ``response_format`` (vLLM and SGLang enforce it) and checked here anyway."""
_FENCE_RE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


class CaptionError(RuntimeError):
    """The captioner got no reply for a clip (endpoint down): the clip goes on without a caption, saying why."""


class Captioner(Protocol):
    model_id: str

    def caption(self, annotated: AnnotatedClip) -> ClipCaption:
        """The clip's validated time-stamped description, or a refusal saying why."""


def caption_request(annotated: AnnotatedClip, frames: int, audio: str) -> list[dict]:
    clip = annotated.clip
    span = "a still image" if clip.kind == "image" else f"0.0 to {clip.duration_s:.1f} s"
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": [*clip_parts(annotated, frames=frames, audio=audio),
                                         text_part(f"The clip runs {span}. Describe it as JSON.")]}]


def _event_text(description: str, speaker: str, speech: str) -> str:
    text = description.rstrip()
    if speech:
        who = speaker or "someone"
        text = f"{text} {who[0].upper()}{who[1:]} says: \"{speech}\"."
    return text


def parse_caption(reply: str, duration_s: float) -> list[CaptionEvent] | str:
    """The reply's events when it is valid JSON of ``CAPTION_SCHEMA`` with time stamps inside the clip, in
    order, and texts within bounds; else why not."""
    fenced = _FENCE_RE.match(reply)
    try:
        data = json.loads(fenced.group(1) if fenced else reply)
    except json.JSONDecodeError:
        return f"not JSON: {' '.join(reply.split())[:80]!r}"
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list) or not events:
        return "no events list"
    if len(events) > MAX_EVENTS:
        return f"{len(events)} events (at most {MAX_EVENTS})"
    out, last_start = [], 0.0
    for i, event in enumerate(events):
        if not isinstance(event, dict):
            return f"event {i} is not an object"
        start, end = event.get("start_s"), event.get("end_s")
        if not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in (start, end)):
            return f"event {i} lacks numeric start_s/end_s"
        if not 0 <= start <= end <= duration_s + TIME_TOLERANCE_S:
            return f"event {i} spans {start}-{end} s, outside the clip's 0-{duration_s:.2f} s"
        if start < last_start:
            return f"event {i} starts at {start} s, before the event ahead of it"
        description = " ".join(str(event.get("description") or "").split())
        if not MIN_DESCRIPTION_CHARS <= len(description) <= MAX_DESCRIPTION_CHARS:
            return f"event {i} description has {len(description)} characters " \
                   f"({MIN_DESCRIPTION_CHARS}-{MAX_DESCRIPTION_CHARS})"
        speaker = " ".join(str(event.get("speaker") or "").split())
        speech = " ".join(str(event.get("speech") or "").split())
        if len(speech) > MAX_SPEECH_CHARS or len(speaker) > MAX_SPEECH_CHARS:
            return f"event {i} speech or speaker over {MAX_SPEECH_CHARS} characters"
        out.append(CaptionEvent(start_s=round(float(start), 3), end_s=round(float(min(end, duration_s)), 3),
                                text=_event_text(description, speaker, speech)))
        last_start = start
    return out


def judged(annotated: AnnotatedClip, model_id: str, reply: str) -> ClipCaption:
    parsed = parse_caption(reply, annotated.clip.duration_s)
    clip_id = annotated.clip.clip_id
    if isinstance(parsed, str):
        return ClipCaption(clip_id=clip_id, model_id=model_id, refused=parsed)
    return ClipCaption(clip_id=clip_id, model_id=model_id, events=parsed)


class EndpointCaptioner:
    """Chat completions with the frames as data URLs through the shared ``ChatClient`` (request cache, retries,
    usage counted under the ``captioner`` stage), on any OpenAI-compatible server (vLLM, SGLang, ...)."""

    def __init__(self, base_url: str, model: str, *, frames: int = 8, audio: str = "transcript",
                 timeout_s: float = ENDPOINT_TIMEOUT_S, cache_dir: str | None = None, max_retries: int = 2):
        from curators.writers.chat_client import ChatClient

        self.client = ChatClient(base_url, model, stage=CAPTIONER_STAGE, cache_dir=cache_dir, timeout_s=timeout_s,
                                 max_retries=max_retries, concurrency=1, max_tokens=MAX_TOKENS)
        self.model_id = f"endpoint:{model}"
        self.frames = frames
        self.audio = audio

    def payload(self, annotated: AnnotatedClip) -> dict:
        return self.client.payload(caption_request(annotated, self.frames, self.audio),
                                   response_format=json_schema_format("clip_caption", CAPTION_SCHEMA))

    def caption(self, annotated: AnnotatedClip) -> ClipCaption:
        content = self.client.send(self.payload(annotated))
        if content is None:
            raise CaptionError(f"{self.client.url}: no reply after retries")
        return judged(annotated, self.model_id, content)


class LocalVlmCaptioner:
    """A transformers image-text-to-text model from a local directory, loaded once."""

    def __init__(self, model_path: str, *, frames: int = 8, device: str | None = None):
        from curators.local_vlm import LocalVlmChat

        self.chat = LocalVlmChat(model_path, device)
        self.model_id = self.chat.model_id
        self.frames = frames

    def caption(self, annotated: AnnotatedClip) -> ClipCaption:
        reply = self.chat.reply(caption_request(annotated, self.frames, "transcript"), MAX_TOKENS)
        return judged(annotated, self.model_id, reply)


def caption_or_refusal(captioner: Captioner, annotated: AnnotatedClip) -> ClipCaption:
    """The caption, or a refusal naming the failure when no reply came (one clip's failure, not the run's)."""
    try:
        return captioner.caption(annotated)
    except CaptionError as exc:
        return ClipCaption(clip_id=annotated.clip.clip_id, model_id=captioner.model_id,
                           refused=f"no reply: {exc}"[:300])


def make_captioner(cfg: VisualConfig) -> Captioner | None:
    """The configured captioner, or None when captioning is off."""
    if cfg.captioner == "none":
        return None
    if cfg.captioner == "endpoint":
        if not cfg.captioner_url:
            raise ValueError("visual.captioner_url is needed for the endpoint captioner")
        return EndpointCaptioner(cfg.captioner_url, cfg.captioner_model, frames=cfg.captioner_frames,
                                 audio=cfg.captioner_audio, timeout_s=cfg.captioner_timeout_s)
    return LocalVlmCaptioner(cfg.captioner_model, frames=cfg.captioner_frames)
