"""Tiny real media (PIL jpg, ffmpeg mp4/flac) and WebDataset shards written per schemas/dataset_format.py."""

from __future__ import annotations

import hashlib
import io
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from schemas.dataset_format import MANIFEST_FILE, SCHEMA_VERSION, SHARDS_DIR, Manifest, ShardEntry, shard_index_name, \
    shard_name
from schemas.dialogue import (ContentPart, Dialogue, Lineage, MediaItem, MemoryRef, Message, PreferencePair, Sample,
                              SourceSpan, TokenEstimate, Turn)
from schemas.validation import to_json

AUDIO_SECONDS = 1.3
SPEECH_SECONDS = 0.7
VIDEO_FRAMES = 3
IMAGE_TILES = 3


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="session")
def media_bytes(tmp_path_factory) -> dict[str, bytes]:
    """{suffix kind: bytes}: a 600x300 jpg, a 1 s H.264+AAC mp4, a 1.3 s flac tone, a 0.7 s flac 'speech'."""
    folder = tmp_path_factory.mktemp("media")
    buf = io.BytesIO()
    Image.new("RGB", (600, 300), (200, 30, 30)).save(buf, "JPEG", quality=90)
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1", "-f", "lavfi", "-i",
            "sine=frequency=300:duration=1:sample_rate=16000", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
            "-shortest", str(folder / "clip.mp4"))
    _ffmpeg("-f", "lavfi", "-i", f"sine=frequency=440:duration={AUDIO_SECONDS}:sample_rate=44100",
            str(folder / "tone.flac"))
    _ffmpeg("-f", "lavfi", "-i", f"sine=frequency=660:duration={SPEECH_SECONDS}:sample_rate=22050",
            str(folder / "speech.flac"))
    return {"jpg": buf.getvalue(), "mp4": (folder / "clip.mp4").read_bytes(),
            "flac": (folder / "tone.flac").read_bytes(), "speech": (folder / "speech.flac").read_bytes()}


def _message(role: str, text: str, media: tuple[str, str] | None = None, speech: str | None = None) -> Message:
    parts = [ContentPart(kind=media[0], member=media[1])] if media else []
    return Message(role=role, parts=[*parts, ContentPart(kind="text", text=text)], speech_member=speech)


def make_sample(i: int, turns: int = 3, with_media: bool = True) -> Sample:
    """Dialogue ``i``: an image (3 tiles), a video (3 frames) with a spoken question, audio, then a memory question."""
    key = f"s{i:05d}"
    media = [("image", "m00.jpg"), ("video", "m01.mp4"), ("audio", "m02.flac")] if with_media else [None] * 3
    made = []
    for t in range(turns):
        m = media[t] if t < 3 else None
        if t == 3:
            made.append(Turn(index=t, question_type="memory_media",
                             user=_message("user", f"What colour was the picture {i}?"),
                             assistant=_message("assistant", f"Red, number {i}."),
                             memory_refs=[MemoryRef(turn=0, distance=3, member="m00.jpg")], answer_key="red"))
            continue
        made.append(Turn(index=t, question_type="current_media" if m else "no_context",
                         user=_message("user", f"Question {t} of dialogue {i}: what is shown?", m,
                                       speech="t01.user.flac" if t == 1 else None),
                         assistant=_message("assistant", f"Answer {t} for {i}: a thing.",
                                            speech="t00.assistant.flac" if t == 0 else None)))
    items = []
    if with_media:
        items = [MediaItem(member="m00.jpg", clip_id="c0", kind="image", source_uri="/c/a.jpg", start_s=0, end_s=0,
                           turn=0, tiles=IMAGE_TILES),
                 MediaItem(member="m01.mp4", clip_id="c1", kind="video", source_uri="/c/b.mp4", start_s=0, end_s=1,
                           turn=1, tiles=VIDEO_FRAMES),
                 MediaItem(member="m02.flac", clip_id="c2", kind="audio", source_uri="/c/c.flac", start_s=0,
                           end_s=AUDIO_SECONDS, turn=2)][:turns]
    return Sample(key=key, schema_version=SCHEMA_VERSION, dialogue=Dialogue(dialogue_id=f"d{i}", turns=made, media=items),
                  lineage=Lineage(sources=[SourceSpan(uri="/c/b.mp4", sha256="ab" * 32, start_s=0, end_s=1)],
                                  operators={"test": "1"}),
                  tokens=TokenEstimate(text=0, image=0, video=0, audio=0),
                  preference=PreferencePair(turn=turns - 1, chosen=f"Chosen answer {i}.",
                                            rejected=f"Rejected reply {i}, wrong.", rejected_source="other_item"))


def sample_members(sample: Sample, media: dict[str, bytes]) -> dict[str, bytes]:
    members = {"json": to_json(sample).encode()}
    for item in sample.dialogue.media:
        members[item.member] = media[item.member.split(".")[1]]
    for turn in sample.dialogue.turns:
        for message in (turn.user, turn.assistant):
            if message.speech_member:
                members[message.speech_member] = media["speech"]
    return members


def write_dataset(root: Path, samples: list[Sample], media: dict[str, bytes], per_shard: int,
                  extra: dict[str, dict[str, bytes]] | None = None) -> Path:
    """A committed dataset dir: shards/train-NNNNNN.tar written by webdataset's TarWriter, manifest.json last."""
    import webdataset as wds

    (root / SHARDS_DIR).mkdir(parents=True, exist_ok=True)
    entries = []
    for s, start in enumerate(range(0, len(samples), per_shard)):
        name = shard_name(s)
        path = root / SHARDS_DIR / name
        chunk = samples[start:start + per_shard]
        with wds.TarWriter(str(path)) as writer:
            for sample in chunk:
                members = sample_members(sample, media)
                members.update((extra or {}).get(sample.key, {}))
                writer.write({"__key__": sample.key, **members})
        entries.append(ShardEntry(name=name, sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                                  bytes=path.stat().st_size, samples=len(chunk), index=shard_index_name(name)))
    manifest = Manifest(schema_version=SCHEMA_VERSION, config_hash="test", seed=0,
                        counts={"samples": len(samples)}, shards=entries)
    (root / MANIFEST_FILE).write_text(to_json(manifest))
    return root


@pytest.fixture(scope="session")
def tokenizer():
    from training.tokenizer import load_tokenizer

    return load_tokenizer()


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory, media_bytes) -> Path:
    """12 dialogues of 2-4 turns with every media kind, 3 per shard."""
    samples = [make_sample(i, turns=2 + i % 3) for i in range(12)]
    return write_dataset(tmp_path_factory.mktemp("dataset"), samples, media_bytes, per_shard=3)
