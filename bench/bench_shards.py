"""Shard writing throughput (MB/s) of ShardWriter against GNU tar packing the same files; ratio to tar last."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from shard_fixtures import make_curated

from pipelines.dataset.shard_writer import ShardWriter
from schemas.config import ShardConfig


def make_payload(folder: Path, samples: int, sizes: dict[str, int]) -> list[dict[str, str]]:
    """Incompressible member files per sample, named as they will be inside the tar (for tar's baseline)."""
    folder.mkdir(parents=True)
    out = []
    for i in range(samples):
        files = {}
        for suffix, size in sizes.items():
            path = folder / f"s{i:05d}.{suffix}"
            path.write_bytes(os.urandom(size))
            files[suffix] = str(path)
        out.append(files)
    return out


def time_writer(out: Path, payload: list[dict[str, str]], cfg: ShardConfig) -> tuple[float, int]:
    media = {"image": "", "video": "", "audio": "", "speech": ""}
    samples = []
    for i, files in enumerate(payload):
        base = make_curated(i, media)
        samples.append(type(base)(sample=base.sample, files=files))
    start = time.perf_counter()
    with ShardWriter(str(out), cfg) as writer:
        for s in samples:
            writer.add(s)
    elapsed = time.perf_counter() - start
    return elapsed, sum(e.bytes for e in writer.entries)


def time_tar(out: Path, payload: list[dict[str, str]], per_shard: int) -> tuple[float, int]:
    """GNU tar writes the same member files in the same shard grouping, then each tar is fsynced like ours."""
    out.mkdir()
    folder = Path(next(iter(payload[0].values()))).parent
    start = time.perf_counter()
    total = 0
    for n, first in enumerate(range(0, len(payload), per_shard)):
        names = [Path(p).name for files in payload[first:first + per_shard] for p in sorted(files.values())]
        tar_path = out / f"train-{n:06d}.tar"
        subprocess.run(["tar", "-cf", str(tar_path), "-C", str(folder), *names], check=True)
        fd = os.open(tar_path, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        total += tar_path.stat().st_size
    return time.perf_counter() - start, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sizes = {"m00.jpg": 150_000, "m01.mp4": 1_500_000, "m02.flac": 400_000, "t01.user.flac": 120_000}
    per_shard = 40
    cfg = ShardConfig(max_bytes=10**12, max_samples=per_shard)
    with tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp:
        root = Path(tmp)
        payload = make_payload(root / "files", args.samples, sizes)
        ours, theirs = [], []
        for r in range(args.repeats):
            t, size = time_writer(root / f"ours{r}", payload, cfg)
            ours.append(size / t / 1e6)
            t, tar_size = time_tar(root / f"tar{r}", payload, per_shard)
            theirs.append(tar_size / t / 1e6)
            shutil.rmtree(root / f"ours{r}")
            shutil.rmtree(root / f"tar{r}")
        print(f"payload: {args.samples} samples, {size / 1e6:.0f} MB in {-(-args.samples // per_shard)} shards")
        print(f"ShardWriter (sha256 + index + fsync + rename): best {max(ours):.0f} MB/s  "
              f"runs {', '.join(f'{x:.0f}' for x in ours)}")
        print(f"GNU tar (+ fsync): best {max(theirs):.0f} MB/s  runs {', '.join(f'{x:.0f}' for x in theirs)}")
        print(f"shard writing vs tar: {max(ours) / max(theirs):.2f}x")


if __name__ == "__main__":
    main()
