"""Cost of orchestration: the whole `omnicurate curate` flow vs the sum of its kernels, and 2 Ray nodes vs 1.

Measured in one run on one synthesised corpus (``--images``, ``--videos``, ``--audio``):
  kernels   every curator called directly (probe, decode, ASR, visual facts, facts, media signatures +
            cross-partition dedup, dialogue planning + writing + filters, speech with ``--speech``, shard +
            catalog commit, report): no Ray, no Prefect. CPU seconds of the processes and the tools they run
            (ffmpeg, tesseract), in the flow's groups (four sources a decode group, its stills in one visual-facts
            call and one tesseract run). The media kernels run serially in this process, or with ``--kernel-processes``
            in that many at once, each over its share of the sources (the ASR model load counted once, as the
            flow's one ASR actor loads it); the rest serially here.
  flow      ``python -m flows.cli curate --config ...`` in a child process with ``partitions`` set: its own
            temporary Prefect server and local Ray, every process it starts counted (CPU seconds of the whole
            tree, sampled; see bench/process_tree.py). A warm-up flow on a four-file corpus runs first
            (Prefect's database, bytecode), then the same again: the fixed cost of a run. With
            ``--overhead-repeat N`` the flow and the kernels run N times each, alternating, and the least CPU-s
            of each side counts (as for the nodes: load from elsewhere on a shared machine must not decide the
            figure); every pair's own ratio is printed too. That is ``--flow cold``: a one-off command, paying to
            start a Prefect server and a Ray instance of its own. ``--flow warm`` measures the same command as a
            flow scheduled on a cluster runs it: joined (``RAY_ADDRESS``, ``PREFECT_API_URL``) to a Ray head over
            every core and a Prefect server that the bench started before and leaves running; counted are the
            command's tree and every process of the cluster and the server from the command's start to its end
            (their idle time included; their start not). ``--flow both`` (the default) measures each.
  nodes     the same flow from a driver joined to a Ray cluster of one one-CPU node vs two, each node (and
            everything it starts) pinned to its own core with sched_setaffinity; output and work on a
            ``file://`` URL, which the run treats as shared storage (as a bucket), so partition tasks may
            run on either node; the driver runs a warm-up flow first, then the timed one. 1-node and 2-node
            runs alternate ``--node-repeat`` times and the best of each counts (load from elsewhere on a
            shared machine must not decide the figure); each prints the CPU-s each node spent.
The ratios are printed last: flow CPU / kernel CPU (target <= 1.15x), the same beyond a run's fixed cost (flow
and kernels on the four-file warm-up corpus subtracted: what each further source costs) and 2-node / 1-node
throughput (target >= 1.6x on a CPU-bound corpus). Per-stage kernel CPU per source-hour, bytes staged per
source-hour and the per-partition figures are printed for the README's scale-on-paper table.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from process_tree import run_tree  # noqa: E402


def scratch(prefix: str) -> str:
    """A temporary directory removed when the bench exits (corpora, outputs, Prefect homes, Ray temp dirs)."""
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")  # short: Ray's socket paths live under it
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


os.environ.setdefault("PREFECT_HOME", scratch("bench-prefect-"))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def _cpu_now() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def stage_timer():
    """CPU seconds by stage, and the function that calls ``fn`` and adds its CPU seconds to ``name``'s."""
    times: dict[str, float] = defaultdict(float)

    def timed(name, fn, *args, **kwargs):
        started = _cpu_now()
        value = fn(*args, **kwargs)
        times[name] += _cpu_now() - started
        return value

    return times, timed


def media_kernels(cfg, items, clip_dir: str):
    """Probe, decode, ASR, visual facts and facts of ``items``, serially in this process: CPU seconds by stage (of
    this process and the tools it runs), the annotated clips and the refused sources."""
    from curators.asr import Transcriber
    from curators.decode import decode_asset
    from curators.facts import annotate_clip
    from curators.probe import probe_source
    from curators.visual_facts import frame_groups, visual_facts_many
    from pipelines.media_stage import VISUAL_FRAMES_PER_TASK, decode_group_end
    from schemas.media import QuarantineRecord

    times, timed = stage_timer()

    quarantine = []
    transcriber = None
    clips = []
    first = 0
    while first < len(items):  # the flow's groups: one decoder call, shared OCR runs
        decoded = []
        end = decode_group_end(items, first)
        sources, first = items[first:end], end
        for item in sources:
            asset = timed("probe", probe_source, item.uri, cfg.probe, metadata=item.metadata)
            if isinstance(asset, QuarantineRecord):
                quarantine.append(asset)
                continue
            value = timed("decode", decode_asset, asset, cfg.decode, clip_dir)
            if isinstance(value, QuarantineRecord):
                quarantine.append(value)
                continue
            for clip in value:
                transcript = None
                if clip.audio_path:
                    transcriber = transcriber or timed("asr_load", Transcriber, cfg.asr)
                    transcript = timed("asr", transcriber.transcribe, clip)
                decoded.append((asset, clip, transcript))
        framed = [i for i, (_, clip, _) in enumerate(decoded) if clip.kind != "audio"]
        visuals = {}
        for group in frame_groups([len(decoded[i][1].frame_paths) for i in framed], VISUAL_FRAMES_PER_TASK):
            members = [framed[g] for g in group]
            visuals.update(zip(members, timed("visual", visual_facts_many, [decoded[i][1] for i in members],
                                              cfg.visual)))
        for i, (asset, clip, transcript) in enumerate(decoded):
            clips.append(timed("facts", annotate_clip, clip, transcript, visuals.get(i), asset.metadata,
                               asset.sha256))
    return dict(times), clips, quarantine


def kernel_seconds(cfg, processes: int = 1) -> tuple[dict[str, float], float]:
    """CPU seconds of each stage's kernels alone, no Ray, no Prefect; and their wall time. The media kernels run in
    ``processes`` processes at once, each serially over its share of the sources (1: in this process); the rest
    runs serially here. Measured on 2 cores, one process vs two (before OCR runs were shared): 2,000 images 311.8 vs
    312.8 CPU-s (visual facts 298.6 both), 200 videos 245.2 vs 239.6."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from curators.media_dedup import clip_signature, duplicates_among, merge_duplicates, signature_bands
    from curators.sources import list_sources
    from pipelines.dataset.review_render import render_report
    from pipelines.dataset.writer import write_dataset
    from pipelines.dialogue_stage import run_dialogue_stage, speak_samples
    from pipelines.partitions import partition_count, partition_of
    from schemas.media import QuarantineRecord

    times, timed = stage_timer()

    wall = time.perf_counter()
    work = Path(cfg.work_path)
    items = timed("probe", list_sources, cfg.input)
    clip_dir = str(work / "clips")
    if processes == 1:
        shares = [media_kernels(cfg, items, clip_dir)]
    else:
        with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
            shares = list(pool.map(media_kernels, [cfg] * processes, [items[i::processes] for i in range(processes)],
                                   [clip_dir] * processes))
    clips, quarantine = [], []
    loads = [share[0].pop("asr_load") for share in shares if "asr_load" in share[0]]
    if loads:  # the flow's ASR actor loads its model once: so does the kernels' count, however many processes
        times["asr"] += sum(loads) / len(loads)
    for share_times, share_clips, share_quarantine in shares:
        for name, seconds in share_times.items():
            times[name] += seconds
        clips.extend(share_clips)
        quarantine.extend(share_quarantine)
    clips.sort(key=lambda c: (c.clip.source_uri, c.clip.start_s, c.clip.clip_id))

    def dedup():
        count = partition_count(cfg, len(items))
        bands = defaultdict(list)
        for c in clips:
            sig = clip_signature(c.clip, partition_of(c.clip.source_uri, count))
            for band in signature_bands(sig):
                bands[band].append(sig)
        found = merge_duplicates(d for group in bands.values() if len(group) > 1 for d in duplicates_among(group))
        dropped = {d.clip_id for d in found}
        return ([c for c in clips if c.clip.clip_id not in dropped],
                [QuarantineRecord(uri=c.clip.source_uri, reason="duplicate", stage="dedup", sha256=c.source_sha256,
                                  detail=c.clip.clip_id) for c in clips if c.clip.clip_id in dropped])

    kept, duplicates = timed("dedup", dedup)
    text_only = replace(cfg, speech=replace(cfg.speech, enabled=False))
    samples = timed("dialogues", run_dialogue_stage, kept, text_only, None, scratch=work / "dialogues")
    if cfg.speech.enabled:
        from curators.speech import RoundTripAsr, make_speaker

        speaker = timed("speech", make_speaker, cfg.speech.backend)
        asr = timed("speech", RoundTripAsr, cfg.asr.model_path, cfg.asr.device, cfg.asr.compute_type)
        samples = timed("speech", speak_samples, samples, {c.clip.clip_id: c for c in kept}, cfg, speaker, asr,
                        work / "speech")
    timed("commit", write_dataset, cfg.output, samples, [*quarantine, *duplicates], shard=cfg.shard,
          config_hash=cfg.config_hash(), seed=cfg.seed)
    timed("report", render_report, cfg.output)
    return dict(times), time.perf_counter() - wall


def write_config(path: Path, corpus: Path, output: str, args) -> Path:
    config = {"input": str(corpus), "output": output, "partitions": args.partitions,
              "visual": {"ocr": not args.no_ocr}, "speech": {"enabled": args.speech}}
    path.write_text(json.dumps(config))  # YAML reads JSON
    return path


def flow_usage(config: Path, cluster: RunningCluster | None = None):
    """The whole `curate` command in a child process, its process tree measured; with ``cluster``, a command that
    joins that running Ray cluster and Prefect API, whose processes' CPU during the run counts too."""
    env = dict(os.environ, PYTHONPATH=str(REPO), **(cluster.env if cluster else {}))
    usage = run_tree([sys.executable, "-m", "flows.cli", "curate", "--config", str(config), "--no-summary"],
                     env=env, linger_s=30, also=cluster.processes if cluster else None)
    if usage.returncode != 0:
        raise SystemExit(f"the curate flow failed ({usage.returncode}):\n{usage.stderr[-4000:]}")
    return usage


class RunningCluster:
    """A local Ray head over every core and a Prefect API, started once and left running, as a flow scheduled on
    a real cluster finds them: a run pays for joining them, its own workers and their idle time, not for starting
    them (``env`` points a curate command at both; ``processes`` lists theirs)."""

    def __init__(self) -> None:
        from flows.prefect_env import prepare_prefect_env
        from flows.prefect_server import start_server

        self.temp_dir, self.port = scratch("bench-ray-"), _free_port()
        ray = str(Path(sys.executable).with_name("ray"))
        subprocess.run([ray, "start", "--head", f"--port={self.port}", f"--num-cpus={os.cpu_count()}",
                        f"--temp-dir={self.temp_dir}", "--disable-usage-stats"], env=_cluster_env(), check=True,
                       capture_output=True)
        prepare_prefect_env()
        self.server, api_url = start_server(180)
        self.env = {"RAY_ADDRESS": f"127.0.0.1:{self.port}", "PREFECT_API_URL": api_url}

    def processes(self) -> list:
        import psutil

        roots = [psutil.Process(self.server.pid), *_cluster_roots(self.temp_dir, self.port)]
        found = {}
        for root in roots:
            try:
                found.update((p.pid, p) for p in [root, *root.children(recursive=True)])
            except psutil.NoSuchProcess:
                pass
        return list(found.values())

    def stop(self) -> None:
        _kill(self.processes())


def _cluster_env() -> dict:
    """The environment a cluster's nodes start in, as the README advises: idle workers kept as long as a local run
    keeps them."""
    from pipelines.ray_runtime import IDLE_WORKER_KEEP_MS

    return dict(os.environ, RAY_idle_worker_killing_time_threshold_ms=str(IDLE_WORKER_KEEP_MS))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _on_core(core: int):
    """Pin a process (and all it starts: raylet, workers, decoders, ffmpeg) to one core, so a one-CPU node has
    exactly one core whatever the machine; without it one node would already use every core of this box."""
    cores = sorted(os.sched_getaffinity(0))
    return lambda: os.sched_setaffinity(0, {cores[core % len(cores)]})


CLUSTER_DRIVER = """
import json, sys, threading, time
import psutil
from flows.curate_flow import run_curate
from process_tree import TreeSampler
from schemas.config import load_config

marks = sys.argv[3:]
me = psutil.Process()

def node_of(process, cmdline):
    # the cluster's processes by the core they are pinned to, i.e. by node; the driver's tree apart
    if process.pid == me.pid or me.pid in {p.pid for p in process.parents()}:
        return "driver"
    return f"node on core {min(process.cpu_affinity())}"

def cluster_processes():
    # the driver's tree (driver, Prefect server) and the cluster's: those naming its port or temp dir, and all
    # they started
    found = {p.pid: p for p in [me, *me.children(recursive=True)]}
    for root in psutil.process_iter(["cmdline"]):
        if root.pid not in found and any(m in arg for arg in root.info["cmdline"] or [] for m in marks):
            try:
                found.update((p.pid, p) for p in [root, *root.children(recursive=True)])
            except psutil.NoSuchProcess:
                pass
    return found.values()

sampler = TreeSampler(node_of)

def sample(stop):
    while not stop.wait(0.3):
        sampler.sample(cluster_processes())

run_curate(load_config(sys.argv[1]), progress=False)
cfg = load_config(sys.argv[2])
sampler.sample(cluster_processes())
before = sampler.cpu_by_role()
stop = threading.Event()
thread = threading.Thread(target=sample, args=(stop,), daemon=True)
thread.start()
started = time.perf_counter()
run_curate(cfg, progress=False)
seconds = time.perf_counter() - started
stop.set()
thread.join()
sampler.sample(cluster_processes())
cpu = {k: round(v - before.get(k, 0.0), 1) for k, v in sampler.cpu_by_role().items()}
print("RESULT", json.dumps({"seconds": seconds, "cpu": cpu}))
"""


def cluster_run(warm_config: Path, config: Path, nodes: int) -> dict:
    """Seconds of the curate flow run from a driver on a cluster of ``nodes`` one-CPU nodes, each pinned to its own
    core, after a warm-up flow on a small corpus in the same driver (Prefect server, imports, first workers); and
    the CPU-s each node (and the driver with its Prefect server) spent in the timed run, sampled every 0.3 s as
    bench/process_tree.py counts."""
    ray = str(Path(sys.executable).with_name("ray"))
    temp_dir = scratch("bench-ray-")
    port = _free_port()
    env = dict(_cluster_env(), PREFECT_HOME=scratch("bench-prefect-"), PYTHONPATH=f"{REPO}:{REPO / 'bench'}",
               RAY_ADDRESS=f"127.0.0.1:{port}")
    base = ["--num-cpus=1", "--disable-usage-stats"]
    try:
        subprocess.run([ray, "start", "--head", f"--port={port}", "--include-dashboard=false",
                        f"--temp-dir={temp_dir}", *base], env=env, check=True, capture_output=True,
                       preexec_fn=_on_core(0))
        for node in range(1, nodes):
            subprocess.run([ray, "start", f"--address=127.0.0.1:{port}", *base], env=env, check=True,
                           capture_output=True, preexec_fn=_on_core(node))
        done = subprocess.run([sys.executable, "-c", CLUSTER_DRIVER, str(warm_config), str(config), temp_dir,
                               f"127.0.0.1:{port}"], env=env, capture_output=True, text=True,
                              preexec_fn=_on_core(0), cwd=REPO)
        if done.returncode != 0:
            raise SystemExit(f"the cluster flow failed:\n{done.stderr[-4000:]}")
        return json.loads(done.stdout.rsplit("RESULT", 1)[1])
    finally:
        _kill(_cluster_roots(temp_dir, port))


def _cluster_roots(temp_dir: str, port: int) -> list:
    """A local Ray cluster's processes: its daemons name its temp dir, its client server only the head's port."""
    import psutil

    return [p for p in psutil.process_iter(["cmdline"])
            if any(temp_dir in arg or arg.endswith(f":{port}") for arg in p.info["cmdline"] or [])]


def _kill(processes: list) -> None:
    import psutil

    for proc in processes:
        try:
            for child in proc.children(recursive=True):
                child.kill()
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(processes, timeout=10)


SYNTH_MAX_VIDEOS = 20
"""synth_corpus makes at most this many videos (one keyword each); more go in further folders, other seeds."""


def make_corpus(corpus: Path, *, videos: int, audio: int, images: int) -> None:
    """A synth corpus of any size: folders of up to 20 videos (and as many audio clips), each its own seed."""
    from curators.corpus_synth import synth_corpus

    chunks = max(1, -(-max(videos, audio) // SYNTH_MAX_VIDEOS))
    for chunk in range(chunks):
        share = lambda n: n // chunks + (chunk < n % chunks)  # noqa: E731
        synth_corpus(corpus / f"part{chunk:02d}", seed=chunk, videos=share(videos), audio=share(audio),
                     images=images if chunk == 0 else 0)


def corpus_hours(corpus: Path) -> float:
    """Hours of audio and video in a synth corpus (its facts files)."""
    from curators.corpus_synth import FACTS_FILE

    rows = [json.loads(line) for facts in corpus.rglob(FACTS_FILE) for line in facts.read_text().splitlines()
            if line]
    return sum(r["duration_s"] for r in rows) / 3600


def tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


FLOW_MODES = {"cold": "a one-off command starting its own Prefect server and Ray",
              "warm": "a run joining a running Ray cluster and Prefect API"}


def overhead(args, root: Path, corpus: Path, warm: Path, sources: int, hours: float) -> list[str]:
    """The flow (in each of ``args.flow``'s modes) vs the sum of its kernels, alternating; returns the figures."""
    from schemas.config import load_config

    modes = ["cold", "warm"] if args.flow == "both" else [args.flow]
    cluster = RunningCluster() if "warm" in modes else None
    try:
        small: dict[str, object] = {}
        for mode in modes:
            on = cluster if mode == "warm" else None
            first = flow_usage(write_config(root / f"{mode}-first.yaml", warm, str(root / f"{mode}-first"), args), on)
            small[mode] = flow_usage(write_config(root / f"{mode}-again.yaml", warm, str(root / f"{mode}-again"),
                                                  args), on)
            print(f"{mode} flow ({FLOW_MODES[mode]}) on 4 images: {first.cpu_s:.1f} CPU-s the first time (Prefect's "
                  f"database, bytecode), then {small[mode].cpu_s:.1f} CPU-s, {small[mode].wall_s:.1f} s wall (a run's "
                  "fixed cost)", flush=True)
        flows: dict[str, list] = {mode: [] for mode in modes}
        kernel_runs, pairs = [], {mode: [] for mode in modes}
        for rep in range(args.overhead_repeat):  # alternate, so a spell of load elsewhere hits every side
            for mode in modes:
                out = root / f"{mode}-{rep}"
                usage = flow_usage(write_config(root / f"{mode}-{rep}.yaml", corpus, str(out), args),
                                   cluster if mode == "warm" else None)
                print(f"{mode} flow CPU-s by process (sampled): " + ", ".join(
                    f"{k} {v:.1f}" for k, v in sorted(usage.cpu_by_role.items())))
                print(f"{mode} flow, Ray workers' CPU-s by task, with the tools they ran (sampled): " + ", ".join(
                    f"{k.removeprefix('ray::')} {v:.1f}" for k, v in sorted(usage.cpu_by_ray_task.items(),
                                                                             key=lambda kv: -kv[1]) if v >= 0.05))
                print(f"{mode} flow: {usage.cpu_s:.1f} CPU-s, {usage.wall_s:.1f} s wall, driver peak RSS "
                      f"{usage.root_peak_rss / 2**20:.0f} MiB (load average {os.getloadavg()[0]:.2f})", flush=True)
                flows[mode].append(usage)
            kernels, kernel_wall = kernel_seconds(load_config(write_config(
                root / f"kernels-{rep}.yaml", corpus, str(root / f"kernels-{rep}"), args)), args.kernel_processes)
            print("kernel CPU-s by stage: " + ", ".join(f"{k} {v:.2f}" for k, v in kernels.items())
                  + f"; sum {sum(kernels.values()):.2f} CPU-s ({kernel_wall:.1f} s wall; media kernels in "
                  f"{args.kernel_processes} process(es) at once; load average {os.getloadavg()[0]:.2f})", flush=True)
            kernel_runs.append(kernels)
            for mode in modes:
                pairs[mode].append(flows[mode][-1].cpu_s / sum(kernels.values()))
            if args.overhead_repeat > 1:
                print(f"run {rep + 1} of {args.overhead_repeat}: " + ", ".join(
                    f"{mode} flow / kernels = {pairs[mode][-1]:.2f}x" for mode in modes), flush=True)
    finally:
        if cluster is not None:
            cluster.stop()
    kernels = min(kernel_runs, key=lambda k: sum(k.values()))
    kernel_cpu = sum(kernels.values())
    small_kernels, _ = kernel_seconds(load_config(write_config(root / "warm-kernels.yaml", warm,
                                                               str(root / "warm-kernels"), args)))
    small_kernel_cpu = sum(small_kernels.values())
    staged = tree_bytes(root / f"{modes[0]}-0" / ".work" / "media")
    figures = []
    for mode in modes:
        usage = min(flows[mode], key=lambda u: u.cpu_s)
        if args.overhead_repeat > 1:
            print(f"best of {args.overhead_repeat}: {mode} flow {usage.cpu_s:.1f} CPU-s, kernels {kernel_cpu:.1f} CPU-s "
                  "(each side's least: what the work costs when nothing else on the machine adds to it)")
        print(f"per source: {mode} flow {usage.cpu_s / sources:.3f} CPU-s, kernels {kernel_cpu / sources:.3f} CPU-s")
        print(f"per partition ({sources / args.partitions:.0f} sources): {mode} flow "
              f"{usage.cpu_s / args.partitions:.1f} CPU-s, staged {staged / args.partitions / 2**20:.1f} MiB")
        if hours:
            print("kernel CPU-s per source-hour: " + ", ".join(f"{k} {v / hours:.0f}" for k, v in kernels.items())
                  + f"; all {kernel_cpu / hours:.0f}; {mode} flow {usage.cpu_s / hours:.0f}; staged "
                  f"{staged / hours / 2**30:.2f} GiB per source-hour")
        print(f"the 4-image corpus: {mode} flow {small[mode].cpu_s:.1f} CPU-s, kernels {small_kernel_cpu:.1f} CPU-s; "
              f"beyond it, {mode} flow {usage.cpu_s - small[mode].cpu_s:.1f} vs kernels "
              f"{kernel_cpu - small_kernel_cpu:.1f} CPU-s")
        best = (f" (best of {len(pairs[mode])} each; pairs {min(pairs[mode]):.2f}x-{max(pairs[mode]):.2f}x)"
                if len(pairs[mode]) > 1 else "")
        figures.append(f"orchestration overhead, {mode} ({FLOW_MODES[mode]}): flow CPU / kernel CPU = "
                       f"{usage.cpu_s / kernel_cpu:.2f}x{best} (target <= 1.15x)")
        figures.append(f"{mode}, per source beyond a run's fixed cost: (flow - flow on 4 images) / (kernels - kernels "
                       f"on 4 images) = {(usage.cpu_s - small[mode].cpu_s) / (kernel_cpu - small_kernel_cpu):.2f}x")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--audio", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the flow (default 4)")
    parser.add_argument("--no-ocr", action="store_true", help="visual facts without tesseract")
    parser.add_argument("--speech", action="store_true", help="speak the user turns (off by default here: TTS "
                        "would dominate every figure)")
    parser.add_argument("--kernel-processes", type=int, default=1,
                        help="processes the media kernels run in at once, each over its share of the sources "
                        "(default 1: serially; 2 on 2 cores halves the bench's wall time for about the same CPU-s)")
    parser.add_argument("--overhead-repeat", type=int, default=1,
                        help="alternating flow and kernel runs; the least CPU-s of each counts")
    parser.add_argument("--skip-overhead", action="store_true", help="skip the flow vs kernels comparison")
    parser.add_argument("--flow", choices=["cold", "warm", "both"], default="both",
                        help="the flow measured against the kernels: cold (the command starts its own Prefect "
                        "server and Ray), warm (it joins a running Ray cluster and Prefect API), or both (default)")
    parser.add_argument("--skip-nodes", action="store_true", help="skip the 1 vs 2 node comparison")
    parser.add_argument("--node-repeat", type=int, default=1,
                        help="alternating 1-node and 2-node runs; the best of each counts")
    args = parser.parse_args()

    from curators.corpus_synth import synth_corpus

    root = Path(scratch("bench-orchestration-"))
    corpus, warm = root / "corpus", root / "warm-corpus"
    make_corpus(corpus, videos=args.videos, audio=args.audio, images=args.images)
    synth_corpus(warm, seed=1, videos=0, audio=0, images=4)
    sources = args.videos + args.audio + args.images
    hours = corpus_hours(corpus)
    print(f"corpus: {args.videos} videos, {args.audio} audio, {args.images} images ({hours * 3600:.0f} s of "
          f"audio/video); partitions {args.partitions}; OCR {'off' if args.no_ocr else 'on'}; "
          f"speech {'on' if args.speech else 'off'}; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    figures = []
    if not args.skip_overhead:
        figures += overhead(args, root, corpus, warm, sources, hours)
    if not args.skip_nodes:
        cluster_warm = write_config(root / "cluster-warm.yaml", warm, (root / "cluster-warm").as_uri(), args)
        runs: dict[int, list[dict]] = {1: [], 2: []}
        for rep in range(args.node_repeat):
            for nodes in (1, 2):
                out = (root / f"nodes-{nodes}-{rep}").as_uri()
                run = cluster_run(cluster_warm, write_config(root / f"nodes-{nodes}-{rep}.yaml", corpus, out, args),
                                  nodes)
                print(f"curate flow on {nodes} one-core node(s): {run['seconds']:.1f} s; CPU-s in the timed run: "
                      + ", ".join(f"{k} {v:.1f}" for k, v in sorted(run["cpu"].items()))
                      + f" (load average {os.getloadavg()[0]:.2f})", flush=True)
                runs[nodes].append(run)
        one, two = (min(r["seconds"] for r in runs[n]) for n in (1, 2))
        print(f"best of {args.node_repeat}: 1 node {one:.1f} s, 2 nodes {two:.1f} s")
        figures.append(f"throughput 2 nodes / 1 node = {one / two:.2f}x (target >= 1.6x)")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    for line in figures:
        print(line)


if __name__ == "__main__":
    main()
