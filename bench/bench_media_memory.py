"""Peak RSS of the media stage (driver + local Ray + workers + decoders) at 1x and 10x corpus size; ratio last.

Each scale runs in a fresh process with its own local Ray; a sampler sums the RSS of that process and
all its descendants every 100 ms. The 10x corpus holds ten distinct copies (re-muxed, so different
bytes) of every 1x file. Target: 10x peak <= 1.2 x the 1x peak.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def tree_rss(root: int) -> int:
    import psutil

    try:
        proc = psutil.Process(root)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def distinct_copy(src: Path, dst: Path, tag: int) -> None:
    """Same media, different bytes (and so a different content address)."""
    if src.suffix in (".jpg", ".png"):
        from PIL import Image

        with Image.open(src) as image:
            image = image.convert("RGB")
            image.putpixel((0, 0), (tag % 256, tag // 256 % 256, 7))
            image.save(dst)
        return
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-map", "0", "-c", "copy",
                    "-metadata", f"comment=copy {tag}", str(dst)], check=True)


def measure(corpus: str, work: str) -> dict:
    import ray

    from curators.sources import list_sources
    from pipelines.media_actors import release_media_actors, start_media_actors
    from pipelines.media_stage import run_media_stage
    from pipelines.ray_runtime import ensure_ray
    from schemas.config import CurateConfig, DecodeConfig, VisualConfig

    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss(os.getpid()))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    cfg = CurateConfig(input=corpus, output=work, decode=DecodeConfig(frames_per_clip=4),
                       visual=VisualConfig(ocr=False))
    ensure_ray(num_cpus=2)
    actors = start_media_actors(cfg, ray.cluster_resources())
    try:
        result = run_media_stage(cfg, list_sources(cfg.input), actors)
    finally:
        release_media_actors()
    seconds = time.perf_counter() - started
    stop.set()
    sampler.join()
    return {"peak_rss": peak, "clips": len(result.clips), "seconds": seconds}


def run_scale(corpus: Path, work: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--measure", str(corpus), str(work)], capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"the stage failed on {corpus}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videos", type=int, default=1)
    parser.add_argument("--audio", type=int, default=1)
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--measure", nargs=2, metavar=("CORPUS", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        print(json.dumps(measure(*args.measure)))
        return
    from curators.corpus_synth import FACTS_FILE, synth_corpus

    with tempfile.TemporaryDirectory(prefix="bench-mem-") as tmp:
        base = Path(tmp) / "x1"
        synth_corpus(base, seed=11, videos=args.videos, audio=args.audio, images=args.images)
        (base / FACTS_FILE).unlink()
        big = Path(tmp) / f"x{args.scale}"
        big.mkdir()
        for tag in range(args.scale):
            for src in sorted(base.iterdir()):
                distinct_copy(src, big / f"{src.stem}_{tag:03d}{src.suffix}", tag)
        small_stats = run_scale(base, Path(tmp) / "w1")
        shutil.rmtree(Path(tmp) / "w1", ignore_errors=True)
        big_stats = run_scale(big, Path(tmp) / "w10")
    mib = 1024 * 1024
    files = args.videos + args.audio + args.images
    print(f"1x:  {files} files, {small_stats['clips']} clips, peak RSS {small_stats['peak_rss'] / mib:.0f} MiB "
          f"({small_stats['seconds']:.1f}s)")
    print(f"{args.scale}x: {files * args.scale} files, {big_stats['clips']} clips, peak RSS "
          f"{big_stats['peak_rss'] / mib:.0f} MiB ({big_stats['seconds']:.1f}s)")
    print(f"ratio peak RSS {args.scale}x/1x: {big_stats['peak_rss'] / small_stats['peak_rss']:.2f}x")


if __name__ == "__main__":
    main()
