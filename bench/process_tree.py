"""Measure a process tree: wall time, CPU seconds by role, and the root's peak RSS.

``run_tree`` makes this process a child subreaper (Linux ``PR_SET_CHILD_SUBREAPER``), so every descendant of
the command, orphaned or not (Ray's daemons and workers, decoders, ffmpeg, tesseract, the Prefect server),
stays in its process tree, and samples that tree from ``/proc`` every ``interval`` seconds. ``TreeSampler``
does the counting for any set of processes: each process's own CPU time, plus what the children it reaped
spent (``cutime``: this catches processes too short-lived to be sampled, such as one tesseract call), where
that is more than its sampled children that vanished had spent when last seen (so none counts twice, and a
reaper that keeps no ``cutime`` -- Ray's raylet -- loses nothing that was sampled). ``RUSAGE_CHILDREN``
alone is no good here: Ray's processes reach it with most of their time lost (a local Ray run of 10 CPU-s
read as 2.5). What a process spends in its last ``interval``, if nothing reaps it with accounting, is missed.
The root's peak RSS is its kernel high-water mark (``VmHWM``), read until it exits.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

PR_SET_CHILD_SUBREAPER = 36


@dataclass(slots=True)
class TreeUsage:
    wall_s: float
    cpu_s: float
    """User + system seconds of the command and every process it started (sampled, see the module doc)."""
    root_peak_rss: int
    """Bytes: the high-water mark of the command's own process (not its children)."""
    cpu_by_role: dict[str, float] = field(default_factory=dict)
    cpu_by_ray_task: dict[str, float] = field(default_factory=dict)
    """Ray workers' CPU (and what they reaped: tesseract, ffmpeg) by the task or actor their process title named
    when sampled (``ray::visual_task``, ``ray::DecodeActor.decode``, ``ray::IDLE``): sampled, approximate."""
    stdout: str = ""
    stderr: str = ""
    returncode: int = 0


@dataclass(slots=True)
class _Seen:
    role: str
    ppid: int
    own: float
    reaped: float
    last: int
    """The sampling tick it was last seen at."""
    cmdline: list[str]


class TreeSampler:
    """CPU seconds of sampled processes by role, none counted twice (see the module doc).

    ``classify(process, cmdline)`` names a process's role (its first non-empty command line is kept).
    """

    def __init__(self, classify: Callable[[object, list[str]], str]):
        self.classify = classify
        self.seen: dict[int, _Seen] = {}
        self.by_ray_task: defaultdict[str, float] = defaultdict(float)
        self.tick = 0

    def sample(self, processes: Iterable) -> None:
        import psutil

        self.tick += 1
        for p in processes:
            try:
                with p.oneshot():
                    times = p.cpu_times()
                    ppid = p.ppid()
                    title = p.cmdline()
                    known = self.seen.get(p.pid)
                    cmdline = known.cmdline if known and known.cmdline else title
                    name = self.classify(p, cmdline)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            own, reaped = times.user + times.system, times.children_user + times.children_system
            if title and title[0].startswith("ray::"):
                self.by_ray_task[title[0].split(" ")[0]] += own + reaped - (known.own + known.reaped if known else 0)
            self.seen[p.pid] = _Seen(role=name, ppid=ppid, own=own, reaped=reaped, last=self.tick, cmdline=cmdline)

    def cpu_by_role(self) -> dict[str, float]:
        vanished: defaultdict[int, list[int]] = defaultdict(list)
        for pid, p in self.seen.items():
            parent = self.seen.get(p.ppid)
            if parent is not None and p.last < parent.last:  # gone while its parent lived on
                vanished[p.ppid].append(pid)
        by_role: defaultdict[str, float] = defaultdict(float)

        def subtree(pid: int) -> float:
            p = self.seen[pid]
            children = sum(subtree(c) for c in vanished[pid])
            by_role[p.role] += p.own + max(0.0, p.reaped - children)
            return p.own + max(p.reaped, children)

        folded = {c for kids in vanished.values() for c in kids}
        for pid in self.seen:
            if pid not in folded:
                subtree(pid)
        return dict(by_role)


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def role(cmdline: list[str], root: bool) -> str:
    """What a process of a curate run is, by its command line."""
    if root:
        return "driver"
    text = " ".join(cmdline)
    if "prefect" in text or "uvicorn" in text:
        return "prefect server"
    if text.startswith("ray::") or "default_worker.py" in text:
        return "ray workers"
    if any(name in text for name in ("gcs_server", "raylet", "dashboard", "log_monitor", "monitor.py",
                                     "runtime_env", "ray_client_server", "plasma")):
        return "ray daemons"
    return "media subprocesses"


def _hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_tree(cmd: list[str], *, env: dict | None = None, preexec_fn=None, timeout_s: float = 3600,
             interval: float = 0.2, linger_s: float = 30, also: Callable[[], list] | None = None) -> TreeUsage:
    """Run ``cmd`` to completion, reap every process it left, and measure the tree (see the module doc).

    ``also`` lists processes outside the tree that work for the command (a running Ray cluster's, a Prefect
    server's): what they spend from the command's start to its end counts too, by role; they are left running."""
    import psutil

    become_subreaper()
    # this process's own children from before (a multiprocessing resource tracker) are not the command's
    before = {p.pid for p in psutil.Process().children(recursive=True)}

    outside = also or list

    def tree(theirs: list) -> list:  # the command's own: ``also``'s (this process may be their subreaper) are not
        skip = before | {p.pid for p in theirs}
        return [p for p in psutil.Process().children(recursive=True) if p.pid not in skip]

    proc = None
    # forks of the driver (same command line) count as the driver
    sampler = TreeSampler(lambda p, cmdline: role(cmdline, (proc is not None and p.pid == proc.pid)
                                                  or cmdline == list(cmd)))
    sampler.sample(outside())
    spent_before = sampler.cpu_by_role()
    sampler.by_ray_task.clear()  # what their workers had spent before
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, preexec_fn=preexec_fn, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _hwm(proc.pid))
            theirs = outside()
            sampler.sample([*tree(theirs), *theirs])
            stop.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    wall = time.perf_counter() - started
    left = tree(outside())
    _, alive = psutil.wait_procs(left, timeout=linger_s)  # Ray's daemons exit a little after the driver
    for p in alive:
        p.kill()
    psutil.wait_procs(alive, timeout=10)
    while True:  # zombies handed to us and never listed as children
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                break
        except ChildProcessError:
            break
    stop.set()
    thread.join()
    sampler.sample(outside())
    by_role = {name: cpu - spent_before.get(name, 0.0) for name, cpu in sampler.cpu_by_role().items()}
    return TreeUsage(wall_s=wall, cpu_s=sum(by_role.values()), root_peak_rss=peak, cpu_by_role=by_role,
                     cpu_by_ray_task=dict(sampler.by_ray_task), stdout=stdout, stderr=stderr,
                     returncode=proc.returncode)
