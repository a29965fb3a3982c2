"""Run a decoder in its own process under a time budget, so a native hang or crash costs one file, not the run."""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from schemas.config import DecodeConfig, ProbePolicy
from schemas.media import Clip, MediaAsset, QuarantineRecord
from schemas.validation import from_dict, to_dict

DEFAULT_DECODER = "curators.decode:decode_asset"
DEFAULT_PROBER = "curators.probe:probe_file"
HASH_BYTES_PER_S = 64 * 1024**2
"""A probe reads and hashes the whole file; its budget allows a second per this many bytes on top of its timeouts."""
REPO_ROOT = Path(__file__).resolve().parents[1]


class IsolatedCallError(RuntimeError):
    """The isolated decoder raised a Python exception: a programming error, not bad media."""


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def probe_budget_s(policy: ProbePolicy, size_bytes: int) -> float:
    """How long an isolated probe may take: twice its own ffprobe / PyAV timeout, plus time to hash the file."""
    return 2 * policy.probe_timeout_s + size_bytes / HASH_BYTES_PER_S


class IsolatedDecoder:
    """A long-lived child process that probes or decodes one file per request.

    ``prober(path, policy, uri=, metadata=)`` and ``decoder(asset, cfg, work_dir, cache_dir)`` run in the
    child. Past its budget the child and everything it started are killed (``timeout``); a child killed by a
    signal (segfault, abort, out of memory) is ``crashed``. Either way the next request starts a fresh child.
    ``decoder`` and ``prober`` are ``module:function``.
    """

    def __init__(self, decoder: str = DEFAULT_DECODER, extra_pythonpath: tuple[str, ...] = (),
                 prober: str = DEFAULT_PROBER):
        self.decoder = decoder
        self.prober = prober
        self.extra_pythonpath = extra_pythonpath
        self._process: subprocess.Popen | None = None
        self._stderr = None
        self._pending = b""

    def _start(self) -> subprocess.Popen:
        env = dict(os.environ)
        paths = [*self.extra_pythonpath, str(REPO_ROOT), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(paths).rstrip(os.pathsep)
        # one thread per decoder: parallelism comes from running many isolated decoders
        env.setdefault("OMP_NUM_THREADS", "1")
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the child
        self._pending = b""
        self._process = subprocess.Popen([sys.executable, "-m", "pipelines.isolation", self.decoder, self.prober],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env,
                                         start_new_session=True)
        return self._process

    def _stderr_tail(self, lines: int = 15) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return "\n".join(self._stderr.read().decode(errors="replace").strip().splitlines()[-lines:])

    def _read_line(self, process: subprocess.Popen, deadline: float) -> bytes | None:
        """One reply line, or None when the deadline passes first; b"" when the child died."""
        fd = process.stdout.fileno()
        while b"\n" not in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b""
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line

    def close(self) -> None:
        if self._process is not None:
            _kill_group(self._process)
            self._process = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _call(self, request: dict, budget_s: float, refuse):
        """Send one request; the reply's payload, its quarantine row, or ``refuse(reason, detail)`` when the child
        hung or died."""
        worker, key = {"probe": ("prober", "asset"), "decode": ("decoder", "clips")}[request["op"]]
        process = self._process if self._process is not None and self._process.poll() is None else self._start()
        deadline = time.monotonic() + budget_s
        try:
            process.stdin.write((json.dumps(request) + "\n").encode())
            process.stdin.flush()
        except BrokenPipeError:
            pass
        line = self._read_line(process, deadline)
        if line is None:
            self.close()
            return refuse("timeout", f"{request['op']} ran past its budget of {budget_s:.1f}s and was killed")
        if not line:
            process.wait()
            tail = self._stderr_tail()
            self.close()
            if process.returncode < 0:
                return refuse("crashed", f"{worker} process died of {_signal_name(process.returncode)}")
            return refuse("crashed", f"{worker} process exited ({process.returncode}) without a result: "
                                     f"{tail[-300:]}")
        reply = json.loads(line)
        if "error" in reply:
            raise IsolatedCallError(f"isolated {request['op']} failed on {request['uri']}:\n{reply['error']}")
        if "quarantine" in reply:
            return from_dict(QuarantineRecord, reply["quarantine"])
        return reply[key]

    def probe(self, path: str | Path, policy: ProbePolicy, *, uri: str | None = None,
              metadata: dict[str, str] | None = None) -> MediaAsset | QuarantineRecord:
        """Probe a local file (``uri`` names it in the records when it was fetched from elsewhere)."""
        uri = uri or str(path)
        try:
            size = os.stat(path).st_size
        except OSError:
            size = 0  # the probe itself says why it cannot read the file

        def refuse(reason: str, detail: str) -> QuarantineRecord:
            return QuarantineRecord(uri=uri, reason=reason, detail=detail, stage="probe", size_bytes=size)

        request = {"op": "probe", "uri": uri, "path": str(path), "policy": to_dict(policy),
                   "metadata": metadata}
        reply = self._call(request, probe_budget_s(policy, size), refuse)
        return reply if isinstance(reply, QuarantineRecord) else from_dict(MediaAsset, reply)

    def decode(self, asset: MediaAsset, cfg: DecodeConfig, work_dir: str, budget_s: float, *,
               cache_dir: str | None = None) -> list[Clip] | QuarantineRecord:
        def refuse(reason: str, detail: str) -> QuarantineRecord:
            return QuarantineRecord(uri=asset.uri, reason=reason, detail=detail, stage="decode",
                                    size_bytes=asset.size_bytes, sha256=asset.sha256)

        request = {"op": "decode", "uri": asset.uri, "asset": to_dict(asset), "cfg": to_dict(cfg),
                   "work_dir": str(work_dir), "cache_dir": cache_dir}
        reply = self._call(request, budget_s, refuse)
        return reply if isinstance(reply, QuarantineRecord) else [from_dict(Clip, clip) for clip in reply]


def decode_isolated(asset: MediaAsset, cfg: DecodeConfig, work_dir: str, budget_s: float, *,
                    cache_dir: str | None = None, decoder: str = DEFAULT_DECODER,
                    extra_pythonpath: tuple[str, ...] = ()) -> list[Clip] | QuarantineRecord:
    """One decode in a fresh isolated child (see IsolatedDecoder)."""
    isolated = IsolatedDecoder(decoder, extra_pythonpath)
    try:
        return isolated.decode(asset, cfg, work_dir, budget_s, cache_dir=cache_dir)
    finally:
        isolated.close()


def _exit_with_parent(parent: int, poll_s: float = 1.0) -> None:
    """Leave when the parent dies, even while a decode hangs in native code."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def _load(name: str):
    module_name, _, attr = name.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def _answer(request: dict, decoder_name: str, prober_name: str) -> dict:
    if request["op"] == "probe":
        result = _load(prober_name)(request["path"], from_dict(ProbePolicy, request["policy"]), uri=request["uri"],
                                    metadata=request["metadata"])
        key = "asset"
    else:
        result = _load(decoder_name)(from_dict(MediaAsset, request["asset"]), from_dict(DecodeConfig, request["cfg"]),
                                     request["work_dir"], request["cache_dir"])
        key = "clips"
    return {"quarantine" if isinstance(result, QuarantineRecord) else key: to_dict(result)}


def _serve(decoder_name: str, prober_name: str) -> None:
    """Answer one JSON request per input line until stdin closes."""
    _exit_with_parent(os.getppid())
    # replies go to a private copy of stdout; anything a native library prints lands on stderr
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    for line in sys.stdin:
        try:
            reply = _answer(json.loads(line), decoder_name, prober_name)
        except Exception:  # noqa: BLE001 - sent back whole; the parent raises IsolatedCallError
            reply = {"error": traceback.format_exc(limit=8)}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2])
