"""A two-node Ray cluster on this machine for tests: a head, and a worker node in its own mount namespace where a
tmpfs hides the driver's private directories (what a second machine sees); plus a watch of which nodes ran work."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from ports import free_port

RAY = str(Path(sys.executable).with_name("ray"))
HEAD, WORKER = "head-node", "worker-node"
STAGE_WORKER = re.compile(r"^ray::\S*(probe|decode|asr|visual|caption|partition|media|dialogue|writer|speech|shard)",
                          re.IGNORECASE)
"""A Ray worker process busy with a curation stage (its title names the task or actor); idle ones are ``ray::IDLE``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TwoNodeCluster:
    address: str
    """``host:port`` of the head's GCS, for ``--ray-address``."""
    raylets: dict[int, str]
    """Raylet pid -> node name; the Ray workers of a node are its raylet's children."""
    env: dict[str, str]
    """The environment the nodes were started with; a driver on the head's machine runs with it."""


@contextmanager
def two_node_cluster(*, hidden: Path, env: dict[str, str], private_dirs: tuple[Path, ...] = ()
                     ) -> Iterator[TwoNodeCluster]:
    """Start a head (1 CPU) and a worker node (1 CPU) whose processes see an empty tmpfs over ``hidden``.

    ``private_dirs`` (under ``hidden``) exist on the host for the head and are made afresh on the worker's tmpfs, so
    a variable such as ``HOME`` or ``TMPDIR`` pointing there names a node-local directory on each node. The tmpfs is
    mounted in a private mount namespace (nothing propagates to the host) and goes when its last process exits.
    """
    # a private Ray temp dir names every daemon of this cluster, so teardown stops these and nothing else
    temp_dir = f"/tmp/ocs-{os.getpid()}"
    port = free_port()
    env = dict(env, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ADDRESS", None)
    common = ["--num-cpus=1", "--object-store-memory=200000000", "--disable-usage-stats", f"--temp-dir={temp_dir}"]
    for folder in private_dirs:
        folder.mkdir(parents=True, exist_ok=True)
    sentinel = hidden / f".hidden-from-{WORKER}"
    sentinel.write_text("the worker node must not see this\n")
    try:
        _ray_start([RAY, "start", "--head", f"--port={port}", f"--node-name={HEAD}", "--include-dashboard=false",
                    *common], env)
        prepare = " && ".join(["mount -t tmpfs -o size=1g,mode=0755 omnicurate-hidden \"$0\"",
                               *(f"mkdir -p '{folder}'" for folder in private_dirs), "exec \"$@\""])
        _ray_start(["unshare", "--mount", "--propagation", "private", "sh", "-c", prepare, str(hidden),
                    RAY, "start", f"--address=127.0.0.1:{port}", f"--node-name={WORKER}", *common], env)
        raylets = _raylets(temp_dir, port)
        assert sorted(raylets.values()) == [HEAD, WORKER], raylets
        worker_raylet = next(pid for pid, name in raylets.items() if name == WORKER)
        _check_hidden(worker_raylet, hidden, sentinel, private_dirs)
        assert not os.path.ismount(hidden), f"{hidden} is mounted on the host"
        yield TwoNodeCluster(address=f"127.0.0.1:{port}", raylets=raylets, env=env)
    finally:
        stop(processes_naming(temp_dir, f":{port}"))
        shutil.rmtree(temp_dir, ignore_errors=True)


def _ray_start(cmd: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, f"{' '.join(cmd[:8])} ... failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"


def processes_naming(temp_dir: str, port_suffix: str = "") -> list[psutil.Process]:
    """A Ray's daemons name its temp dir in their command lines; a cluster's Ray client server names only the head's
    port (``port_suffix``, ``:PORT``). Their Ray workers are retitled ``ray::...``: find them as the daemons' children."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        parts = proc.info["cmdline"] or []
        if any(temp_dir in part or (port_suffix and part.endswith(port_suffix)) for part in parts):
            found.append(proc)
    return found


def stop(procs: list[psutil.Process]) -> None:
    """Kill these processes and all their descendants."""
    doomed = []
    for proc in procs:
        try:
            doomed += [*proc.children(recursive=True), proc]
        except psutil.NoSuchProcess:
            continue
    for proc in doomed:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(doomed, timeout=10)


def _raylets(temp_dir: str, port: int) -> dict[int, str]:
    raylets = {}
    for proc in processes_naming(temp_dir, f":{port}"):
        cmd = proc.cmdline()
        if cmd and Path(cmd[0]).name == "raylet":
            raylets[proc.pid] = next((name for name in (HEAD, WORKER) if any(name in part for part in cmd)), "?")
    return raylets


def _check_hidden(pid: int, hidden: Path, sentinel: Path, private_dirs: tuple[Path, ...]) -> None:
    """The worker's raylet is in another mount namespace where ``hidden`` is its own: the host's file is absent,
    the private dirs exist, and what it writes there stays off the host."""
    assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt"), "worker node shares our mounts"
    enter = ["nsenter", f"--mount=/proc/{pid}/ns/mnt", "--"]
    leak = hidden / f".written-by-{WORKER}"
    checks = [f"test ! -e '{sentinel}'", *(f"test -d '{folder}'" for folder in private_dirs), f"touch '{leak}'"]
    subprocess.run([*enter, "sh", "-c", " && ".join(checks)], check=True, capture_output=True, timeout=30)
    assert sentinel.exists() and not leak.exists(), "the worker node's tmpfs is not private to it"


@dataclass(slots=True)
class NodeActivity:
    """Which nodes ran stage work: Ray worker processes, children of a node's raylet, titled after a stage."""

    raylets: dict[int, str]
    seen: dict[str, set[str]] = field(default_factory=dict)
    """Node name -> the stage worker titles seen on it."""
    _done: threading.Event = field(default_factory=threading.Event)

    @contextmanager
    def watching(self, interval_s: float = 0.1) -> Iterator[NodeActivity]:
        thread = threading.Thread(target=self._watch, args=(interval_s,), daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._done.set()
            thread.join()

    def _watch(self, interval_s: float) -> None:
        while not self._done.is_set():
            for proc in psutil.process_iter(["ppid", "cmdline"]):
                node = self.raylets.get(proc.info["ppid"])
                title = " ".join(proc.info["cmdline"] or [])
                if node and STAGE_WORKER.match(title):
                    self.seen.setdefault(node, set()).add(title.split()[0])
            time.sleep(interval_s)
