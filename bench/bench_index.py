"""Random access to one sample through the member index against a sequential scan of its shard; ratio last."""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from shard_fixtures import make_curated

from pipelines.dataset.shard_index import SampleReader, iter_tar_samples
from pipelines.dataset.shard_writer import ShardWriter
from schemas.config import ShardConfig


def build_shard(root: Path, samples: int, member_bytes: int) -> list[str]:
    files_dir = root / "files"
    files_dir.mkdir()
    media = {}
    members = (("m00.jpg", "image"), ("m01.mp4", "video"), ("m02.flac", "audio"), ("t01.user.flac", "speech"))
    for suffix, name in members:
        path = files_dir / suffix
        path.write_bytes(os.urandom(member_bytes))
        media[name] = str(path)
    keys = []
    with ShardWriter(str(root / "ds"), ShardConfig(max_bytes=10**12, max_samples=samples)) as writer:
        for i in range(samples):
            sample = make_curated(i, media)
            writer.add(sample)
            keys.append(sample.sample.key)
    return keys


def scan_for(shard: Path, key: str) -> dict[str, bytes]:
    """The baseline: read the shard from the start until the sample's members have all been seen."""
    with open(shard, "rb") as f:
        for k, parts in iter_tar_samples(f):
            if k == key:
                return parts
    raise KeyError(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--member-bytes", type=int, default=50_000)
    parser.add_argument("--lookups", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        root = Path(tmp)
        keys = build_shard(root, args.samples, args.member_bytes)
        shard = root / "ds" / "shards" / "train-000000.tar"
        print(f"shard: {args.samples} samples, {shard.stat().st_size / 1e6:.0f} MB")
        picks = random.Random(0).sample(keys, args.lookups)

        start = time.perf_counter()
        reader = SampleReader(str(root / "ds"))
        open_ms = (time.perf_counter() - start) * 1000
        indexed, scanned = [], []
        for key in picks:
            start = time.perf_counter()
            got = reader.read(key)
            indexed.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            expected = scan_for(shard, key)
            scanned.append((time.perf_counter() - start) * 1000)
            assert got == expected
        idx_ms, scan_ms = statistics.median(indexed), statistics.median(scanned)
        print(f"index load (once per shard): {open_ms:.1f} ms")
        print(f"one sample through the index: median {idx_ms:.2f} ms over {args.lookups} random keys")
        print(f"one sample by sequential scan: median {scan_ms:.1f} ms")
        print(f"index random access vs sequential scan: {scan_ms / idx_ms:.1f}x")


if __name__ == "__main__":
    main()
