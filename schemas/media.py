"""Records at the media stage boundaries: probed assets, quarantine rows, clips, transcripts, facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from schemas.validation import require

MediaKind = Literal["image", "video", "audio"]

QuarantineReason = Literal[
    "empty",  # zero bytes
    "truncated",  # container cut short (moov missing, short read)
    "no_streams",  # readable container without audio or video streams
    "not_media",  # not a media container at all (text named .mp4, ...)
    "unsupported_codec",  # a stream codec the decoder cannot handle
    "unsupported_extension",  # file type outside the accepted list
    "decode_error",  # the decoder failed on the content
    "too_long",  # duration over policy
    "too_large",  # bytes or resolution over policy
    "too_short",  # duration under policy
    "timeout",  # a probe or decode ran past its time budget
    "crashed",  # the isolated probe or decoder process died (native crash)
    "unreadable",  # the source could not be opened or read
    "duplicate",  # a clip whose media is a copy of one kept in another partition (the kept one is named)
]

QUARANTINE_REASONS: tuple[str, ...] = QuarantineReason.__args__  # type: ignore[attr-defined]

FactKind = Literal[
    "spoken_text",  # a transcript segment's words
    "spoken_keyword",  # a salient word from the transcript
    "spoken_language",
    "dominant_color",
    "brightness",
    "motion",
    "on_screen_text",
    "duration",
    "media_kind",
    "metadata",
    "caption",  # one time-stamped event of the audio-visual caption: what happens, who speaks, what is said
    "caption_refused",  # why the captioner's reply was refused (the clip has no caption facts); never asked about
]

FactSource = Literal["transcript", "visual", "metadata", "caption"]


@dataclass(kw_only=True, slots=True, frozen=True)
class SourceItem:
    """One file named by a source (directory walk, manifest row, bucket listing), not yet probed."""

    uri: str
    """Local path or fsspec URL (``s3://``, ``gs://``, ``memory://``, ...)."""
    metadata: dict[str, str] = field(default_factory=dict)
    """Extra columns of a manifest row (title, licence, ...)."""


@dataclass(kw_only=True, slots=True, frozen=True)
class MediaAsset:
    """One accepted media file after the ffprobe preflight."""

    media_id: str
    """Content address: the first 16 hex digits of the file's sha256."""
    uri: str
    """Where the file was read from (local path, ``s3://``, ``gs://``)."""
    kind: MediaKind
    sha256: str
    size_bytes: int
    container: str
    """ffprobe's format name (``mov,mp4,m4a,3gp,3g2,mj2``, ``matroska,webm``, ...)."""
    duration_s: float
    """Seconds of media; 0 for still images."""
    video_codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    audio_codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    """Free metadata from a source manifest (title, licence, ...)."""

    def __post_init__(self) -> None:
        require(len(self.sha256) == 64, "sha256", "must be 64 hex digits")
        require(self.size_bytes > 0, "size_bytes", "must be positive")
        require(self.duration_s >= 0, "duration_s", "must not be negative")


@dataclass(kw_only=True, slots=True, frozen=True)
class QuarantineRecord:
    """A source file that was refused, and why. Nothing is dropped silently."""

    uri: str
    reason: QuarantineReason
    detail: str
    """Human-readable cause (the ffprobe/decoder message, the policy limit crossed)."""
    stage: str
    """The stage that refused it (``probe``, ``decode``, ``annotate``)."""
    size_bytes: int = 0
    sha256: str | None = None


@dataclass(kw_only=True, slots=True, frozen=True)
class Clip:
    """A decoded piece of a source: a still image, a video clip or an audio clip with its time span."""

    clip_id: str
    """Content address of (media_id, start_s, end_s)."""
    media_id: str
    source_uri: str
    kind: MediaKind
    start_s: float
    end_s: float
    """Source time span in seconds; both 0 for still images."""
    media_path: str
    """Local file that goes into shards (jpg, mp4 or flac) in a codec every reader decodes."""
    frame_paths: list[str] = field(default_factory=list)
    """Sampled frames (jpg) used for visual facts; the image itself for stills."""
    frame_times_s: list[float] = field(default_factory=list)
    """Source timestamps of ``frame_paths``."""
    audio_path: str | None = None
    """16 kHz mono wav for ASR, when the clip has audio."""
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        require(self.end_s >= self.start_s, "end_s", "must not be before start_s")
        require(len(self.frame_paths) == len(self.frame_times_s), "frame_times_s", "must match frame_paths")

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(kw_only=True, slots=True, frozen=True)
class Word:
    word: str
    start_s: float
    end_s: float
    probability: float


@dataclass(kw_only=True, slots=True, frozen=True)
class TranscriptSegment:
    text: str
    start_s: float
    end_s: float
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float = 0.0
    words: list[Word] = field(default_factory=list)

    @property
    def confidence(self) -> float:
        """exp(avg_logprob), clamped to 0..1: the segment's facts and the clip's ASR confidence use it."""
        return min(1.0, max(0.0, 2.718281828 ** self.avg_logprob))


@dataclass(kw_only=True, slots=True, frozen=True)
class Transcript:
    """ASR output for one clip; times are relative to the clip start."""

    clip_id: str
    model_id: str
    language: str
    language_probability: float
    text: str
    segments: list[TranscriptSegment] = field(default_factory=list)
    rejected_segments: int = 0
    """Segments dropped by the hallucination guard."""

    @property
    def confidence(self) -> float | None:
        """Mean confidence of the kept segments; None when none was kept."""
        return sum(s.confidence for s in self.segments) / len(self.segments) if self.segments else None


@dataclass(kw_only=True, slots=True, frozen=True)
class VisualFacts:
    """Measurements of a clip's frames that need no downloaded weights."""

    clip_id: str
    dominant_colors: list[str]
    """Named colours, most frequent first."""
    mean_brightness: float
    """0 (black) to 1 (white)."""
    motion: float
    """Mean absolute difference between sampled frames, 0 to 1."""
    scene_cuts_s: list[float] = field(default_factory=list)
    ocr_text: str = ""


@dataclass(kw_only=True, slots=True, frozen=True)
class CaptionEvent:
    """One span of a clip as the captioner describes it."""

    start_s: float
    end_s: float
    """Seconds from the clip start (both 0 for a still image)."""
    text: str
    """What happens, and who says what."""


@dataclass(kw_only=True, slots=True, frozen=True)
class ClipCaption:
    """The audio-visual captioner's time-stamped description of a clip, or why its reply was refused."""

    clip_id: str
    model_id: str
    events: list[CaptionEvent] = field(default_factory=list)
    """In time order; empty when refused."""
    refused: str = ""
    """Why the reply was refused (a bad time stamp, too long, not JSON, the endpoint down); empty when accepted."""

    def __post_init__(self) -> None:
        require(bool(self.events) != bool(self.refused), "refused", "a caption has events or a refusal, not both")


@dataclass(kw_only=True, slots=True, frozen=True)
class Fact:
    """A typed statement about a clip that a question can be grounded on."""

    fact_id: str
    clip_id: str
    kind: FactKind
    value: str
    source: FactSource
    confidence: float = 1.0
    start_s: float | None = None
    end_s: float | None = None
    """Span inside the clip (seconds from clip start) where the fact holds, when known."""


@dataclass(kw_only=True, slots=True, frozen=True)
class AnnotatedClip:
    """A clip with everything the annotate stage learnt about it."""

    clip: Clip
    facts: list[Fact]
    transcript: Transcript | None = None
    """None when the clip has no audio."""
    visual: VisualFacts | None = None
    """None for audio-only clips."""
    source_sha256: str = ""
