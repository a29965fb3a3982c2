"""Cost of orchestration: the curate flow's wall time vs the sum of each stage's kernel run alone, and 1 vs 2 Ray nodes.

Measured in one run on one synthesised corpus:
  kernels   every curator called serially in this process (probe, decode, ASR, visual facts, facts,
            planning + writing + filters, shard + catalog commit, report rendering): no Ray, no Prefect
  flow      the Prefect flow over a warm local Ray in this process (server start excluded, reported apart)
  nodes     the media stage from a driver on a Ray cluster of one node vs two nodes, one CPU (one pinned core)
            each
Kernels and flow alternate ``--repeat`` times on fresh outputs and the best of each counts, so a burst of
load from elsewhere on a shared machine does not decide the figure.
The last line is the orchestration overhead ratio: best flow wall time / best kernel sum.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def scratch(prefix: str) -> str:
    """A temporary directory removed when the bench exits (corpora, outputs, Prefect homes, Ray temp dirs)."""
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")  # short: Ray's socket paths live under it
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


os.environ.setdefault("PREFECT_HOME", scratch("bench-prefect-"))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def kernel_seconds(cfg) -> dict[str, float]:
    """Each stage's kernel alone, serially, on the same input."""
    from curators.asr import Transcriber
    from curators.decode import decode_asset
    from curators.dialogue_plan import plan_dialogues
    from curators.dialogue_write import make_writer
    from curators.facts import annotate_clip
    from curators.preference import answer_pool
    from curators.probe import probe_source
    from curators.sources import list_sources
    from curators.visual_facts import visual_facts
    from pipelines.dataset.writer import write_dataset
    from pipelines.dialogue_stage import curate_batch, deduplicate
    from pipelines.dataset.review_render import render_report
    from schemas.media import QuarantineRecord

    times: dict[str, float] = {}

    def timed(name, fn, *args, **kwargs):
        started = time.perf_counter()
        value = fn(*args, **kwargs)
        times[name] = times.get(name, 0.0) + time.perf_counter() - started
        return value

    work = Path(cfg.work_path)
    assets, quarantine = [], []
    for item in list_sources(cfg.input):
        result = timed("probe", probe_source, item.uri, cfg.probe, metadata=item.metadata)
        (quarantine if isinstance(result, QuarantineRecord) else assets).append(result)
    transcriber = timed("asr", Transcriber, cfg.asr)
    clips = []
    for asset in assets:
        decoded = timed("decode", decode_asset, asset, cfg.decode, work / "clips")
        if isinstance(decoded, QuarantineRecord):
            quarantine.append(decoded)
            continue
        for clip in decoded:
            transcript = timed("asr", transcriber.transcribe, clip) if clip.audio_path else None
            visual = timed("visual", visual_facts, clip, cfg.visual) if clip.kind != "audio" else None
            clips.append(timed("facts", annotate_clip, clip, transcript, visual, asset.metadata, asset.sha256))
    plans = timed("dialogues", plan_dialogues, clips, cfg.dialogue, cfg.seed)
    by_id = {c.clip.clip_id: c for c in clips}
    pool = timed("dialogues", answer_pool, {f.fact_id: f for c in clips for f in c.facts})
    batch = timed("dialogues", curate_batch, plans, by_id, cfg, make_writer(cfg.dialogue), pool)
    samples = timed("dialogues", deduplicate, batch.samples, batch.media_hashes)
    timed("commit", write_dataset, cfg.output, samples, quarantine, shard=cfg.shard, config_hash=cfg.config_hash(),
          seed=cfg.seed)
    timed("report", render_report, cfg.output)
    return times


def flow_seconds(cfg) -> float:
    """Wall time of one run of the curate flow in this process."""
    from flows.curate_flow import run_curate
    from pipelines.ray_runtime import ensure_ray

    ensure_ray(num_cpus=os.cpu_count())
    started = time.perf_counter()
    run_curate(cfg, progress=False)
    return time.perf_counter() - started


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _on_core(core: int):
    """Pin a process (and all it starts: raylet, workers, decoders, ffmpeg) to one core, so a one-CPU node has
    exactly one core whatever the machine; without it one node would already use every core of this box."""
    cores = sorted(os.sched_getaffinity(0))
    return lambda: os.sched_setaffinity(0, {cores[core % len(cores)]})


def cluster_seconds(corpus: Path, out: Path, nodes: int) -> float:
    """Seconds of the media stage (the heavy one) run from a driver on a cluster of ``nodes`` one-CPU nodes,
    each pinned to its own core, once it is warm: a first pass starts the workers, decoders and ASR model
    (kept), the second is timed. Process and cluster start are outside the timed span."""
    ray = str(Path(sys.executable).with_name("ray"))
    temp_dir = scratch("bench-ray-")
    port = _free_port()
    env = dict(os.environ, PREFECT_HOME=scratch("bench-prefect-"))
    base = ["--num-cpus=1", "--disable-usage-stats"]
    subprocess.run([ray, "start", "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp_dir}",
                    *base], env=env, check=True, capture_output=True, preexec_fn=_on_core(0))
    driver = (
        "import sys, time, ray\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})\n"
        f"ray.init(address='127.0.0.1:{port}')\n"
        "from pipelines.media_stage import run_media_stage\n"
        "from schemas.config import CurateConfig\n"
        f"run_media_stage(CurateConfig(input={str(corpus)!r}, output={str(out / 'warm-up')!r}), progress=False,\n"
        "                keep_actors=True)\n"
        f"cfg = CurateConfig(input={str(corpus)!r}, output={str(out / 'timed')!r})\n"
        "started = time.perf_counter()\n"
        "run_media_stage(cfg, progress=False)\n"
        "print('SECONDS', time.perf_counter() - started)\n")
    try:
        for node in range(1, nodes):
            subprocess.run([ray, "start", f"--address=127.0.0.1:{port}", *base], env=env, check=True,
                           capture_output=True, preexec_fn=_on_core(node))
        done = subprocess.run([sys.executable, "-c", driver], env=env, check=True, capture_output=True, text=True,
                              preexec_fn=_on_core(0))
        return float(done.stdout.rsplit("SECONDS", 1)[1])
    finally:
        import psutil

        # the cluster's daemons name its temp dir; its client server names only the head's port
        procs = [p for p in psutil.process_iter(["cmdline"])
                 if any(temp_dir in arg or arg.endswith(f":{port}") for arg in p.info["cmdline"] or [])]
        for proc in procs:
            for child in proc.children(recursive=True):
                child.kill()
            proc.kill()
        psutil.wait_procs(procs, timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--audio", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="alternating kernel and flow runs; the best counts")
    parser.add_argument("--skip-nodes", action="store_true", help="skip the 1 vs 2 node comparison")
    args = parser.parse_args()

    from curators.corpus_synth import synth_corpus
    from schemas.config import CurateConfig

    root = Path(scratch("bench-orchestration-"))
    corpus = root / "corpus"
    synth_corpus(corpus, seed=0, videos=args.videos, audio=args.audio, images=args.images)
    def config(name: str) -> CurateConfig:
        return CurateConfig(input=str(corpus), output=str(root / name))

    cold = flow_seconds(config("flow-cold"))  # starts Prefect's temporary server and Ray's first workers
    kernel_runs, flow_runs = [], []
    for rep in range(args.repeat):
        kernel_runs.append(kernel_seconds(config(f"kernels-{rep}")))
        flow_runs.append(flow_seconds(config(f"flow-{rep}")))
    kernels = min(kernel_runs, key=lambda times: sum(times.values()))
    kernel_total = sum(kernels.values())
    warm = min(flow_runs)
    print("stage kernels alone, best run (s): " + ", ".join(f"{k} {v:.2f}" for k, v in kernels.items())
          + f"; sum {kernel_total:.2f} (runs: {', '.join(f'{sum(t.values()):.2f}' for t in kernel_runs)})")
    print(f"flow wall time, best warm run: {warm:.2f}s (runs: {', '.join(f'{t:.2f}' for t in flow_runs)}; "
          f"{cold:.2f}s for the first run, with the Prefect server start)")
    if not args.skip_nodes:
        one = cluster_seconds(corpus, root / "one-node", 1)
        two = cluster_seconds(corpus, root / "two-nodes", 2)
        print(f"media stage on a Ray cluster of one-core nodes: 1 node {one:.2f}s, 2 nodes {two:.2f}s; "
              f"throughput 2 nodes / 1 node = {one / two:.2f}x")
    print(f"orchestration overhead: flow / kernel sum = {warm / kernel_total:.2f}x "
          f"(target <= 1.15x; {os.cpu_count()} cores, Ray runs stages in parallel)")


if __name__ == "__main__":
    main()
