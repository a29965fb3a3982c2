"""Peak RSS of the `curate` driver process itself at 1x and 10x corpus size; ratio and per-clip growth last.

The driver is the ``python -m flows.cli curate`` process (not its Ray workers, nor the Prefect server it starts):
its kernel high-water mark (``VmHWM``), read until it exits (bench/process_tree.py). Each scale is one whole
run of the command in a child process with its own temporary Prefect server and local Ray.

The sources are tiny distinct images (32x32 random-noise PNGs, so no two are near-duplicates), cheap to
decode, with OCR and speech off: the work per source is small and the driver's bookkeeping is what grows. Partitions
follow ``partition_sources`` (default 2,000 sources each): 1 partition at 1x, 10 at 10x. The 1x run is timed
first and the 10x run's time estimated from it; the 10x run is skipped when the estimate passes
``--budget-minutes``. Target: 10x peak <= 1.05 x the 1x peak.

``--listing N`` measures the listing alone instead: the Python heap's peak (tracemalloc) while the driver stages
the partitions of a jsonl manifest of N and of 10 N sources (no media; ``partition_sources`` each), against
holding the sorted listing of 10 N sources whole, as staging did before it streamed.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from process_tree import run_tree  # noqa: E402


def scratch(prefix: str) -> str:
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def tiny_images(folder: Path, count: int, seed: int) -> None:
    """``count`` distinct 32x32 noise PNGs (their dHashes are random, so none is a near-duplicate)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"img_{i:06d}.png")


def run_scale(corpus: Path, out: Path, partition_sources: int, prefect_home: str) -> dict:
    config = out.with_suffix(".json")
    config.write_text(json.dumps({"input": str(corpus), "output": str(out), "partition_sources": partition_sources,
                                  "visual": {"ocr": False}, "speech": {"enabled": False}}))
    env = dict(os.environ, PYTHONPATH=str(REPO), PREFECT_HOME=prefect_home, RAY_USAGE_STATS_ENABLED="0")
    usage = run_tree([sys.executable, "-m", "flows.cli", "curate", "--config", str(config), "--no-summary"], env=env)
    if usage.returncode != 0:
        raise SystemExit(f"curate failed on {corpus} ({usage.returncode}):\n{usage.stderr[-4000:]}")
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    shutil.rmtree(out, ignore_errors=True)
    return {"peak_rss": usage.root_peak_rss, "clips": counts["clips"], "sources": counts["sources"],
            "partitions": counts["partitions"], "samples": counts["samples"], "wall_s": usage.wall_s,
            "cpu_s": usage.cpu_s}


def listing_memory(sources: int, scale: int, partition_sources: int) -> None:
    import tracemalloc

    from curators.sources import list_sources
    from pipelines.dataset.location import as_location
    from pipelines.media_stage import may_carry_sound  # noqa: F401 - imported by staging: not in its peak
    from pipelines.partitions import stage_partitions
    from schemas.config import CurateConfig

    def traced_peak(fn, *args, **kwargs) -> int:
        tracemalloc.start()
        try:
            fn(*args, **kwargs)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    root = Path(scratch("bench-listing-"))
    peaks = {}
    for count in (sources, sources * scale):
        manifest = root / f"list-{count}.jsonl"
        with manifest.open("w") as f:  # out of URI order, as a real manifest may be
            f.writelines(json.dumps({"uri": f"s3://corpus/media/{(n * 7919) % count:09d}.mp4", "title": f"clip {n}"})
                         + "\n" for n in range(count))
        cfg = CurateConfig(input=str(manifest), output=str(root / f"out-{count}"), partition_sources=partition_sources)
        peaks[count] = traced_peak(stage_partitions, cfg, as_location(str(root / f"work-{count}")))
        print(f"staging {count:,} sources in {-(-count // partition_sources)} partitions: peak Python heap "
              f"{peaks[count] / 2**20:.1f} MiB", flush=True)
    whole = traced_peak(list_sources, str(manifest))
    big = sources * scale
    print(f"the sorted listing of {big:,} sources held whole: {whole / 2**20:.1f} MiB ({whole / big:.0f} B per source)")
    print(f"ratio staging peak {scale}x/1x: {peaks[big] / peaks[sources]:.3f}x; staging {big:,} sources holds "
          f"{peaks[big] / whole:.3f}x of the whole listing")


def describe(name: str, stats: dict) -> str:
    return (f"{name}: {stats['sources']} sources in {stats['partitions']} partition(s), {stats['clips']} clips, "
            f"{stats['samples']} samples; driver peak RSS {stats['peak_rss'] / 2**20:.1f} MiB; "
            f"{stats['wall_s']:.0f} s wall, {stats['cpu_s']:.0f} CPU-s (whole tree)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=2000, help="sources at 1x (default 2,000)")
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--partition-sources", type=int, default=2000)
    parser.add_argument("--budget-minutes", type=float, default=30.0,
                        help="skip the large run when its estimated time passes this")
    parser.add_argument("--listing", type=int, default=0, metavar="N",
                        help="measure staging the listing of N and scale x N sources instead of curate runs")
    args = parser.parse_args()
    if args.listing:
        listing_memory(args.listing, args.scale, args.partition_sources)
        return

    root = Path(scratch("bench-driver-mem-"))
    prefect_home = scratch("bench-prefect-")
    warm = root / "warm"
    tiny_images(warm, 8, seed=1)
    run_scale(warm, root / "out-warm", args.partition_sources, prefect_home)  # Prefect's database, bytecode
    small = root / "x1"
    tiny_images(small, args.sources, seed=2)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    one = run_scale(small, root / "out-x1", args.partition_sources, prefect_home)
    print(describe("1x", one), flush=True)
    estimate = one["wall_s"] * args.scale / 60
    print(f"{args.scale}x estimated at {estimate:.0f} min from the 1x run", flush=True)
    if estimate > args.budget_minutes:
        print(f"{args.scale}x skipped: over --budget-minutes {args.budget_minutes:g}")
        return
    shutil.rmtree(small)
    big = root / f"x{args.scale}"
    tiny_images(big, args.sources * args.scale, seed=3)
    many = run_scale(big, root / f"out-x{args.scale}", args.partition_sources, prefect_home)
    print(describe(f"{args.scale}x", many))
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    growth = (many["peak_rss"] - one["peak_rss"]) / max(1, many["clips"] - one["clips"])
    print(f"driver peak RSS growth: {growth:.0f} bytes per clip")
    print(f"ratio driver peak RSS {args.scale}x/1x: {many['peak_rss'] / one['peak_rss']:.3f}x (target <= 1.05x)")


if __name__ == "__main__":
    main()
