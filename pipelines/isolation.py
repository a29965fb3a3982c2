"""Run a decoder in its own process under a time budget, so a native hang or crash costs one file, not the run."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from schemas.config import DecodeConfig
from schemas.media import Clip, MediaAsset, QuarantineRecord
from schemas.validation import from_dict, to_dict

DEFAULT_DECODER = "curators.decode:decode_asset"
REPO_ROOT = Path(__file__).resolve().parents[1]


class IsolatedCallError(RuntimeError):
    """The isolated decoder raised a Python exception: a programming error, not bad media."""


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def decode_isolated(asset: MediaAsset, cfg: DecodeConfig, work_dir: str, budget_s: float, *,
                    cache_dir: str | None = None, decoder: str = DEFAULT_DECODER,
                    extra_pythonpath: tuple[str, ...] = ()) -> list[Clip] | QuarantineRecord:
    """``decoder(asset, cfg, work_dir, cache_dir)`` in a child process.

    Past ``budget_s`` the child and everything it started are killed (``timeout``); a child killed by a
    signal (segfault, abort, out of memory) is ``crashed``. ``decoder`` is ``module:function``.
    """
    request = json.dumps({"decoder": decoder, "asset": to_dict(asset), "cfg": to_dict(cfg),
                          "work_dir": str(work_dir), "cache_dir": cache_dir})
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*extra_pythonpath, str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    # one thread per decoder: parallelism comes from running many isolated decoders
    env.setdefault("OMP_NUM_THREADS", "1")

    def refuse(reason: str, detail: str) -> QuarantineRecord:
        return QuarantineRecord(uri=asset.uri, reason=reason, detail=detail, stage="decode",
                                size_bytes=asset.size_bytes, sha256=asset.sha256)

    process = subprocess.Popen([sys.executable, "-m", "pipelines.isolation"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True,
                               text=True)
    try:
        out, err = process.communicate(request, timeout=budget_s)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        return refuse("timeout", f"decode ran past its budget of {budget_s:g}s and was killed")
    if process.returncode < 0:
        name = signal.Signals(-process.returncode).name if -process.returncode in signal.Signals._value2member_map_ \
            else str(-process.returncode)
        return refuse("crashed", f"decoder process died of {name}")
    if process.returncode != 0:
        tail = "\n".join(err.strip().splitlines()[-15:])
        raise IsolatedCallError(f"isolated decoder failed on {asset.uri} (exit {process.returncode}):\n{tail}")
    try:
        reply = json.loads(out.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return refuse("crashed", f"decoder process gave no result: {err.strip()[-300:]}")
    if "quarantine" in reply:
        return from_dict(QuarantineRecord, reply["quarantine"])
    return [from_dict(Clip, clip) for clip in reply["clips"]]


def _serve_one() -> None:
    request = json.loads(sys.stdin.read())
    module_name, _, attr = request["decoder"].partition(":")
    decoder = getattr(importlib.import_module(module_name), attr)
    result = decoder(from_dict(MediaAsset, request["asset"]), from_dict(DecodeConfig, request["cfg"]),
                     request["work_dir"], request["cache_dir"])
    if isinstance(result, QuarantineRecord):
        reply = {"quarantine": to_dict(result)}
    else:
        reply = {"clips": to_dict(result)}
    sys.stdout.write("\n" + json.dumps(reply) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    _serve_one()
