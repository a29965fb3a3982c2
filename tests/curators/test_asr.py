"""ASR: the real tiny.en model on Piper speech; the hallucination guard on crafted segments."""

import wave

import numpy as np
import pytest
from media_fixtures import ffmpeg

from curators.asr import Transcriber, guard_segments, hallucination_reason, most_repeated_ngram
from curators.corpus_synth import Speaker
from schemas.config import AsrConfig
from schemas.media import Clip, TranscriptSegment

CFG = AsrConfig()


def segment(text="hello there", start=0.0, end=1.0, logprob=-0.2, no_speech=0.01, ratio=1.2) -> TranscriptSegment:
    return TranscriptSegment(text=text, start_s=start, end_s=end, avg_logprob=logprob, no_speech_prob=no_speech,
                             compression_ratio=ratio)


def test_guard_rejects_each_kind_of_hallucination():
    loud = 0.3 * np.sin(np.linspace(0, 2000, 32000)).astype(np.float32)
    quiet = np.concatenate([loud[:16000], np.zeros(16000, np.float32)])
    assert hallucination_reason(segment(), CFG, loud) is None
    assert "low confidence" in hallucination_reason(segment(logprob=-1.5), CFG)
    assert "no speech" in hallucination_reason(segment(no_speech=0.9), CFG)
    assert "compression" in hallucination_reason(segment(ratio=3.0), CFG)
    looping = "thank you for watching " * 3
    assert most_repeated_ngram(looping) == 3
    assert hallucination_reason(segment(text=looping, ratio=1.5), CFG) == "repeated n-grams"
    assert hallucination_reason(segment(start=1.0, end=2.0), CFG, quiet) == "text over silence"
    kept, rejected = guard_segments([segment(), segment(start=1.0, end=2.0)], CFG, quiet)
    assert len(kept) == 1 and rejected[0][1] == "text over silence"


@pytest.fixture(scope="module")
def spoken_clip(tmp_path_factory) -> Clip:
    folder = tmp_path_factory.mktemp("asr")
    raw = folder / "tts.wav"
    Speaker.load().speak("The secret password is dolphin.", raw)
    wav = folder / "audio.wav"
    # a second of silence before the speech: word times must come out shifted by it
    ffmpeg("-i", str(raw), "-af", "adelay=1000,apad=pad_dur=0.5", "-ac", "1", "-ar", "16000", str(wav))
    with wave.open(str(wav)) as w:
        seconds = w.getnframes() / 16000
    return Clip(clip_id="c", media_id="m", source_uri=str(raw), kind="audio", start_s=0.0, end_s=seconds,
                media_path=str(wav), audio_path=str(wav))


@pytest.mark.parametrize("batch_size", [1, 4])
def test_tiny_en_transcribes_piper_speech_with_word_times(spoken_clip: Clip, batch_size: int):
    transcriber = Transcriber(AsrConfig(batch_size=batch_size))
    transcript = transcriber.transcribe(spoken_clip)
    assert transcript.language == "en"
    assert "dolphin" in transcript.text.lower()
    assert transcript.model_id.endswith("tiny.en")
    words = [w for s in transcript.segments for w in s.words]
    dolphin = next(w for w in words if "dolphin" in w.word.lower())
    assert 1.0 < dolphin.start_s < dolphin.end_s <= spoken_clip.duration_s + 0.1
    assert words[0].start_s >= 0.5, "speech starts after the leading second of silence"
    assert all(s.avg_logprob > -1.0 and s.no_speech_prob < 0.6 for s in transcript.segments)
