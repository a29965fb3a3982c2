"""The synthetic corpus: deterministic bytes for a seed, files that match their facts.jsonl."""

import hashlib
import json
from pathlib import Path

from curators.corpus_synth import FACTS_FILE, synth_corpus
from curators.probe import probe_source
from schemas.config import ProbePolicy
from schemas.media import MediaAsset


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_same_bytes_and_facts_describe_the_files(tmp_path: Path):
    facts = synth_corpus(tmp_path / "a", seed=7, videos=1, audio=1, images=2)
    synth_corpus(tmp_path / "b", seed=7, videos=1, audio=1, images=2)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    other = synth_corpus(tmp_path / "c", seed=8, videos=0, audio=0, images=2)
    assert [f["keyword"] for f in other] != [f["keyword"] for f in facts if f["kind"] == "image"]
    rows = [json.loads(line) for line in (tmp_path / "a" / FACTS_FILE).read_text().splitlines()]
    assert rows == facts
    assert sorted(f["kind"] for f in facts) == ["audio", "image", "image", "video"]
    for row in facts:
        asset = probe_source(str(tmp_path / "a" / row["file"]), ProbePolicy())
        assert isinstance(asset, MediaAsset), asset
        assert asset.kind == row["kind"]
        if row["kind"] == "video":
            assert (asset.video_codec, asset.audio_codec) == ("h264", "aac")
            assert 3.0 <= asset.duration_s <= 6.5
            assert abs(asset.duration_s - row["duration_s"]) < 0.2
            assert row["keyword"] in row["spoken"] and row["on_screen_text"] == row["keyword"].upper()
        if row["kind"] == "image":
            assert (asset.width, asset.height) == (row["width"], row["height"])


def test_espeak_fallback_speaks(tmp_path: Path):
    import wave

    import numpy as np

    [row] = synth_corpus(tmp_path, seed=1, videos=0, audio=1, images=0, tts="espeak-ng")
    with wave.open(str(tmp_path / row["file"])) as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), np.int16)
        seconds = wav.getnframes() / wav.getframerate()
    assert 1.0 < seconds < 8.0 and abs(seconds - row["duration_s"]) < 0.1
    assert np.abs(samples).max() > 3000, "espeak-ng wrote silence"
