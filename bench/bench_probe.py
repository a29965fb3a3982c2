"""Still images probed per second: our probe (in-process PyAV) vs. the ffprobe CLI on the same files; ratio last.

Ours is the whole preflight (stat, sha256, sniff, probe, policy) as the media stage runs it; the baseline is
only the ffprobe command the probe ran per file before, so ours does more work per file than it. The probe
forced through ffprobe (today's path for video and audio) is printed too, and must give the same records.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import curators.probe as probe
from curators.corpus_synth import synth_corpus
from schemas.config import ProbePolicy


def make_images(folder: Path, count: int) -> list[Path]:
    synth_corpus(folder, seed=0, videos=0, audio=0, images=count)
    return sorted(path for path in folder.iterdir() if path.suffix in (".png", ".jpg"))


def ffprobe_cli(path: Path) -> str:
    return subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
                           str(path)], capture_output=True, text=True, check=True).stdout


def ours(paths: list[Path], policy: ProbePolicy) -> list:
    return [probe.probe_source(str(path), policy) for path in paths]


def through_ffprobe(paths: list[Path], policy: ProbePolicy) -> list:
    in_process, probe.IN_PROCESS_FAMILIES = probe.IN_PROCESS_FAMILIES, frozenset()
    try:
        return ours(paths, policy)
    finally:
        probe.IN_PROCESS_FAMILIES = in_process


def best_of(repeats: int, fn) -> tuple[float, float, object]:
    """Best wall seconds, the CPU seconds (children included) of that run, and its result."""
    best, cpu, result = float("inf"), 0.0, None
    for _ in range(repeats):
        before_cpu, start = os.times(), time.perf_counter()
        result = fn()
        wall, after_cpu = time.perf_counter() - start, os.times()
        if wall < best:
            best = wall
            cpu = sum(after_cpu[:4]) - sum(before_cpu[:4])
    return best, cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    policy = ProbePolicy()
    with tempfile.TemporaryDirectory(prefix="bench-probe-") as tmp:
        images = make_images(Path(tmp), args.images)
        ours([images[0]], policy)  # PyAV's and the decoder list's one-time start, outside the timing
        ours_s, ours_cpu, ours_records = best_of(args.repeats, lambda: ours(images, policy))
        cli_s, cli_cpu, _ = best_of(args.repeats, lambda: [ffprobe_cli(path) for path in images])
        old_s, old_cpu, old_records = best_of(args.repeats, lambda: through_ffprobe(images, policy))
    assert ours_records == old_records, "in-process probing gave other records than ffprobe"
    n = len(images)
    print(f"images: {n} synth_corpus stills (png and jpg, 300x400 to 640x360)")
    print(f"ours (in-process PyAV, whole preflight): {n / ours_s:8.1f} files/s "
          f"({1000 * ours_s / n:.2f} ms, {1000 * ours_cpu / n:.2f} ms CPU per file)")
    print(f"ffprobe CLI alone:                       {n / cli_s:8.1f} files/s "
          f"({1000 * cli_s / n:.2f} ms, {1000 * cli_cpu / n:.2f} ms CPU per file)")
    print(f"our preflight through ffprobe:           {n / old_s:8.1f} files/s "
          f"({1000 * old_s / n:.2f} ms, {1000 * old_cpu / n:.2f} ms CPU per file)")
    print(f"ratio ours/ffprobe CLI files per second: {cli_s / ours_s:.1f}x")


if __name__ == "__main__":
    main()
