"""Kill the run (the driver, or a Ray worker) and re-run: the dataset equals an uninterrupted run's, byte for byte."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from flows.cli import main

CURATE_FLAGS = ["--seed", "3", "--shard-max-samples", "1", "--no-summary"]


def _curate_args(corpus: Path, out: Path) -> list[str]:
    return ["curate", "--config", str(_config(corpus, out)), *CURATE_FLAGS]


def _config(corpus: Path, out: Path) -> Path:
    path = out.parent / f"{out.name}.yaml"
    # text only: speech (on by default) would multiply the runs' time here; test_curate_e2e covers a spoken run
    path.write_text(f"input: {corpus}\noutput: {out}\nbatch_size: 1\nspeech: {{enabled: false}}\n")
    return path


def _dataset_bytes(out: Path) -> dict[str, bytes]:
    files = {"manifest.json": (out / "manifest.json").read_bytes()}
    for tar in sorted((out / "shards").glob("*.tar")):
        files[tar.name] = tar.read_bytes()
    return files


def _spawn(corpus: Path, out: Path, home: Path) -> subprocess.Popen:
    env = dict(os.environ, PREFECT_HOME=str(home), PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS", None)
    with open(out.parent / f"{out.name}.{time.monotonic_ns()}.log", "w") as log:  # the child keeps its own fd
        return subprocess.Popen([sys.executable, "-m", "flows.cli", *_curate_args(corpus, out)], env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _kill_when(proc: subprocess.Popen, ready, timeout_s: float = 240) -> bool:
    """SIGKILL the driver's whole process group as soon as ``ready()``; False if the run ended first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("the run never reached the kill point")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from curators.corpus_synth import synth_corpus

    root = tmp_path_factory.mktemp("resume")
    synth_corpus(root / "corpus", seed=3, videos=2, audio=1, images=2)
    return root / "corpus"


@pytest.fixture(scope="module")
def reference(corpus, ray_local):
    out = corpus.parent / "reference"
    assert main(_curate_args(corpus, out)) == 0
    return _dataset_bytes(out)


def test_two_runs_give_byte_identical_shards_and_manifest(corpus, reference):
    out = corpus.parent / "second"
    assert main(_curate_args(corpus, out)) == 0
    assert _dataset_bytes(out) == reference
    assert len(reference) >= 3  # manifest and at least two shards were compared


def test_driver_killed_twice_then_resumed_equals_uninterrupted(corpus, reference, tmp_path):
    out = corpus.parent / "killed"
    home = tmp_path / "prefect"
    ledger = out / ".work" / "ledger"

    # 1: mid media stage, once the first batch is in the ledger
    assert _kill_when(_spawn(corpus, out, home), lambda: ledger.is_dir() and any(ledger.glob("*/*.jsonl")))
    assert not (out / "manifest.json").exists()
    batches_after_first_kill = len(list(ledger.glob("*/*.jsonl")))

    # 2: mid commit, once a shard is in place
    shards = out / "shards"
    assert _kill_when(_spawn(corpus, out, home), lambda: shards.is_dir() and any(shards.glob("train-*.tar")))
    assert not (out / "manifest.json").exists()
    visible = {p.name: p for p in shards.glob("*.tar") if not p.name.startswith(".")}
    assert visible
    expected = {s["name"]: s["sha256"] for s in json.loads(reference["manifest.json"])["shards"]}
    for name, path in visible.items():  # nothing partial is ever visible under a shard's name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == expected[name]
    stamps = {name: path.stat().st_mtime_ns for name, path in visible.items()}
    assert len(list(ledger.glob("*/*.jsonl"))) > batches_after_first_kill  # the media work resumed, not restarted

    # 3: run to the end
    assert main(_curate_args(corpus, out)) == 0
    assert _dataset_bytes(out) == reference
    for name, stamp in stamps.items():  # committed shards were kept, not written again
        assert (shards / name).stat().st_mtime_ns == stamp
    assert not [p for p in shards.iterdir() if p.name.startswith(".")]


def _ray_worker_doing(names: tuple[str, ...]) -> psutil.Process | None:
    me = os.getpid()
    for proc in psutil.process_iter(["cmdline", "pid"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if proc.info["pid"] != me and cmd.startswith("ray::") and any(n in cmd for n in names):
            return proc
    return None


def test_ray_worker_killed_mid_run_still_gives_the_same_dataset(corpus, reference):
    out = corpus.parent / "worker-killed"
    killed: list[str] = []
    stop = threading.Event()

    def assassin():
        while not stop.is_set():
            proc = _ray_worker_doing(("AsrActor", "DecodeActor"))
            if proc is not None:
                try:
                    killed.append(" ".join(proc.cmdline()))
                    proc.kill()
                except psutil.Error:
                    pass
                return
            time.sleep(0.01)

    thread = threading.Thread(target=assassin, daemon=True)
    thread.start()
    try:
        assert main(_curate_args(corpus, out)) == 0
    finally:
        stop.set()
        thread.join()
    assert killed, "no Ray worker was found to kill"
    assert _dataset_bytes(out) == reference
