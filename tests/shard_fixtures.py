"""Curated samples over tiny real media (jpg, mp4, flac made by PIL and ffmpeg) for the shard and catalog tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

from PIL import Image

from schemas.config import ShardConfig
from schemas.dialogue import (
    ContentPart,
    CuratedSample,
    Dialogue,
    Lineage,
    MediaItem,
    MemoryRef,
    Message,
    Sample,
    SourceSpan,
    TokenEstimate,
    Turn,
    Verdict,
)
from schemas.media import QuarantineRecord

SHA = "ab" * 32


def make_media(folder: Path) -> dict[str, str]:
    """One image, one 1 s video (H.264) and one 1 s audio clip (FLAC); {kind: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    jpg = folder / "still.jpg"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(jpg, quality=90)
    mp4 = folder / "clip.mp4"
    flac = folder / "tone.flac"
    speech = folder / "speech.flac"
    run = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    subprocess.run([*run, "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(mp4)], check=True)
    subprocess.run([*run, "-f", "lavfi", "-i", "sine=frequency=440:duration=1:sample_rate=16000", str(flac)],
                   check=True)
    subprocess.run([*run, "-f", "lavfi", "-i", "sine=frequency=660:duration=0.5:sample_rate=16000", str(speech)],
                   check=True)
    return {"image": str(jpg), "video": str(mp4), "audio": str(flac), "speech": str(speech)}


def _text(role: str, text: str, *media: tuple[str, str], speech: str | None = None) -> Message:
    parts = [ContentPart(kind=kind, member=member) for kind, member in media]
    return Message(role=role, parts=[*parts, ContentPart(kind="text", text=text)], speech_member=speech)


def make_curated(i: int, media: dict[str, str], *, kept: bool = True, seed: int = 7) -> CuratedSample:
    """Sample ``i``: image at turn 0, video + spoken question at turn 1, audio at turn 2, then memory questions."""
    key = f"s{i:05d}"
    turns = [
        Turn(index=0, question_type="current_media",
             user=_text("user", "What colour is the picture?", ("image", "m00.jpg")),
             assistant=_text("assistant", "It is red."), answer_key="red", fact_ids=[f"f{i}-0"]),
        Turn(index=1, question_type="current_media",
             user=_text("user", "What does the clip show?", ("video", "m01.mp4"), speech="t01.user.flac"),
             assistant=_text("assistant", "A test pattern."), answer_key="pattern"),
        Turn(index=2, question_type="no_context", user=_text("user", "What is two plus two?", ("audio", "m02.flac")),
             assistant=_text("assistant", "Four."), answer_key="four"),
        Turn(index=3, question_type="memory_media", user=_text("user", "What colour was the first picture?"),
             assistant=_text("assistant", "Red."), answer_key="red",
             memory_refs=[MemoryRef(turn=0, distance=3, member="m00.jpg")]),
        Turn(index=4, question_type="memory_text", user=_text("user", "What did I ask two turns ago?"),
             assistant=_text("assistant", "Two plus two."), answer_key="two plus two",
             memory_refs=[MemoryRef(turn=2, distance=2, text="What is two plus two?")]),
    ][: 3 + i % 3]
    dialogue = Dialogue(dialogue_id=f"d{i}", turns=turns, media=[
        MediaItem(member="m00.jpg", clip_id=f"c{i}a", kind="image", source_uri="/corpus/still.jpg", start_s=0,
                  end_s=0, turn=0, tiles=1),
        MediaItem(member="m01.mp4", clip_id=f"c{i}b", kind="video", source_uri="/corpus/clip.mp4", start_s=0,
                  end_s=1, turn=1, tiles=8),
        MediaItem(member="m02.flac", clip_id=f"c{i}c", kind="audio", source_uri="/corpus/tone.flac", start_s=0,
                  end_s=1, turn=2, tiles=1),
    ])
    verdicts = [Verdict(filter="grounding", passed=True, score=1.0),
                Verdict(filter="token_budget", passed=kept, code="" if kept else "over_budget",
                        detail="" if kept else "40000 tokens exceed the 32768 budget")]
    sample = Sample(key=key, schema_version=1, dialogue=dialogue,
                    lineage=Lineage(sources=[SourceSpan(uri="/corpus/clip.mp4", sha256=SHA, start_s=0, end_s=1),
                                             SourceSpan(uri="/corpus/still.jpg", sha256=SHA, start_s=0, end_s=0)],
                                    operators={"probe": "1", "decode": "1"}, models={"asr": "tiny.en"}, seed=seed,
                                    config_hash="cfg1"),
                    tokens=TokenEstimate(text=40 + i, image=66, video=514, audio=27), verdicts=verdicts)
    files = {"m00.jpg": media["image"], "m01.mp4": media["video"], "m02.flac": media["audio"],
             "t01.user.flac": media["speech"]}
    return CuratedSample(sample=sample, files=files)


def make_samples(n: int, media: dict[str, str], rejected_every: int = 0) -> list[CuratedSample]:
    return [make_curated(i, media, kept=not (rejected_every and i % rejected_every == rejected_every - 1))
            for i in range(n)]


QUARANTINE = [
    QuarantineRecord(uri="/corpus/empty.mp4", reason="empty", detail="zero bytes", stage="probe"),
    QuarantineRecord(uri="/corpus/cut.mp4", reason="truncated", detail="moov atom not found", stage="probe",
                     size_bytes=1234),
    QuarantineRecord(uri="/corpus/notes.mp4", reason="not_media", detail="invalid data", stage="probe",
                     size_bytes=20),
]


def small_shards() -> ShardConfig:
    return ShardConfig(max_bytes=120 * 1024, max_samples=3)
