"""The same curate flow on a two-node Ray cluster (head + worker started here): work runs on both nodes."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from ports import free_port

from pipelines.dataset.validate import validate_dataset

RAY = str(Path(sys.executable).with_name("ray"))
STAGE_WORKERS = ("ray::DecodeActor", "ray::probe_task", "ray::visual_task", "ray::AsrActor")


def _cluster_processes(temp_dir: str, port: int) -> list[psutil.Process]:
    """The cluster's daemons name its temp dir; its Ray client server names only the head's port."""
    return [proc for proc in psutil.process_iter(["cmdline"])
            if any(temp_dir in part or part.endswith(f":{port}") for part in proc.info["cmdline"] or [])]


@pytest.fixture
def two_node_cluster(tmp_path):
    # a private temp dir names every process of this cluster, so teardown stops these and nothing else
    temp_dir = f"/tmp/ocs-{os.getpid()}"
    port = free_port()
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    common = ["--num-cpus=1", "--disable-usage-stats"]
    subprocess.run([RAY, "start", "--head", f"--port={port}", "--node-name=head-node", "--include-dashboard=false",
                    f"--temp-dir={temp_dir}", *common], env=env, check=True, capture_output=True, timeout=180)
    try:
        subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", "--node-name=worker-node", *common],
                       env=env, check=True, capture_output=True, timeout=180)
        raylets = {}
        for proc in _cluster_processes(temp_dir, port):
            cmd = " ".join(proc.cmdline())
            if "/raylet " in cmd or cmd.split()[0].endswith("/raylet"):
                name = "head-node" if "node-name=head-node" in cmd or "node_name=head-node" in cmd else "worker-node"
                raylets[proc.pid] = name
        assert sorted(raylets.values()) == ["head-node", "worker-node"], raylets
        yield f"127.0.0.1:{port}", raylets, env
    finally:
        procs = _cluster_processes(temp_dir, port)
        for proc in procs:
            for child in proc.children(recursive=True):
                child.kill()
            proc.kill()
        psutil.wait_procs(procs, timeout=10)


def test_curate_runs_on_head_and_worker_nodes(tmp_path, two_node_cluster):
    from curators.corpus_synth import synth_corpus

    address, raylets, env = two_node_cluster
    corpus, out = tmp_path / "corpus", tmp_path / "dataset"
    synth_corpus(corpus, seed=2, videos=2, audio=1, images=2)
    nodes_seen: set[str] = set()
    done = threading.Event()

    def watch():
        while not done.is_set():
            for proc in psutil.process_iter(["ppid", "cmdline"]):
                cmd = " ".join(proc.info["cmdline"] or [])
                if proc.info["ppid"] in raylets and cmd.startswith(STAGE_WORKERS):
                    nodes_seen.add(raylets[proc.info["ppid"]])
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    run_env = dict(env, PREFECT_HOME=str(tmp_path / "prefect"))
    try:
        result = subprocess.run([sys.executable, "-m", "flows.cli", "curate", "--input", str(corpus), "--out", str(out),
                                 "--ray-address", address, "--no-summary"], env=run_env, capture_output=True,
                                text=True, timeout=600, check=False)
    finally:
        done.set()
        watcher.join()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert nodes_seen == {"head-node", "worker-node"}
    assert validate_dataset(str(out)) == []
