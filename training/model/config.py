"""Config dataclasses of the omni model's parts; each part is built from its sizes or loaded from a local HF checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.validation import require


@dataclass(kw_only=True, slots=True, frozen=True)
class VisionConfig:
    """InternViT-style encoder (transformers' InternVL vision model) + pixel shuffle + 2-layer MLP."""

    pretrained: str | None = None
    """Local HF directory of an InternVL vision model; its sizes then win over the fields below."""
    hidden_size: int = 1024
    layers: int = 24
    heads: int = 16
    intermediate_size: int = 4096
    tile_size: int = 448
    patch_size: int = 14
    """Patch side; (tile_size / patch_size) must be a multiple of 8 so each tile gives 64 tokens."""
    tokens_per_tile: int = 64

    def __post_init__(self) -> None:
        grid = self.tile_size // self.patch_size
        require(self.tile_size % self.patch_size == 0, "patch_size", "must divide tile_size")
        side = round(self.tokens_per_tile ** 0.5)
        require(side * side == self.tokens_per_tile and grid % side == 0, "tokens_per_tile",
                f"must be a square whose side divides the patch grid ({grid})")


@dataclass(kw_only=True, slots=True, frozen=True)
class AudioConfig:
    """Whisper encoder + pooling to ``tokens_per_second`` + 2-layer MLP."""

    pretrained: str | None = None
    """Local HF directory of a Whisper model (its encoder is used)."""
    d_model: int = 1280
    layers: int = 32
    heads: int = 20
    ffn_dim: int = 5120
    mel_bins: int = 128
    chunk_seconds: int = 30
    """Encoder window; Whisper's is 30 s (1500 positions at 50 Hz)."""
    tokens_per_second: int = 25

    def __post_init__(self) -> None:
        require(50 % self.tokens_per_second == 0, "tokens_per_second", "must divide Whisper's 50 Hz frame rate")


@dataclass(kw_only=True, slots=True, frozen=True)
class LLMConfig:
    """Qwen3 causal LM."""

    pretrained: str | None = None
    """Local HF directory of a Qwen3 checkpoint."""
    hidden_size: int = 2560
    layers: int = 36
    heads: int = 32
    kv_heads: int = 8
    head_dim: int = 128
    intermediate_size: int = 9728
    vocab_size: int = 151_936
    """At least the tokenizer's length; Qwen3 pads to 151,936."""
    max_position_embeddings: int = 40_960
    rope_theta: float = 1_000_000.0
    tie_word_embeddings: bool = True


@dataclass(kw_only=True, slots=True, frozen=True)
class SpeechDecoderConfig:
    """Speech-token LM fed text-token embeddings and LLM hidden states, interleaved text:speech."""

    pretrained: str | None = None
    """Local directory with ``speech_decoder.safetensors`` (saved by ``SpeechDecoder.save``) to start from."""
    hidden_size: int = 1024
    layers: int = 12
    heads: int = 16
    speech_vocab: int = 6561
    """Speech-token codebook size (CosyVoice2: 6561)."""
    text_chunk: int = 5
    speech_chunk: int = 25
    """Interleave ratio: ``text_chunk`` text positions, then ``speech_chunk`` speech tokens."""
    tokenizer: str = "units"
    """Speech tokenizer: ``units`` (a CPU frame quantiser, default) or a local CosyVoice2-style tokenizer path."""
    unit_frame_ms: int = 40
    """Frame hop of the unit tokenizer (25 Hz, as CosyVoice2)."""


@dataclass(kw_only=True, slots=True, frozen=True)
class ModelConfig:
    """The whole omni model; ``size`` picks the preset the part sizes start from."""

    vision: VisionConfig = field(default_factory=VisionConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    speech: SpeechDecoderConfig | None = None
    """None: no speech decoder."""


def tiny_model_config(vocab_size: int = 151_680, speech: bool = False) -> ModelConfig:
    """A random model that trains on a CPU in well under a second per step, with the real token counts per media."""
    return ModelConfig(
        vision=VisionConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64, patch_size=28),
        audio=AudioConfig(d_model=32, layers=1, heads=2, ffn_dim=64, chunk_seconds=30),
        llm=LLMConfig(hidden_size=64, layers=2, heads=4, kv_heads=2, head_dim=16, intermediate_size=128,
                      vocab_size=vocab_size, max_position_embeddings=65_536),
        speech=SpeechDecoderConfig(hidden_size=32, layers=1, heads=2, speech_vocab=64) if speech else None,
    )


def full_model_config() -> ModelConfig:
    """InternViT-300M, Whisper-large-v3 encoder, Qwen3-4B (the defaults), with a CosyVoice2-size speech LM."""
    return ModelConfig(speech=SpeechDecoderConfig())
