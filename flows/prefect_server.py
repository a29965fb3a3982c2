"""The temporary local Prefect API a run uses when no PREFECT_API_URL is set.

It is Prefect's own server app under uvicorn in a child process, as Prefect's ephemeral mode starts it, but
started from here: Prefect's launcher lives in its server package, and importing that into the driver costs
about 2 CPU-s a run for nothing the driver uses. One server serves every run of a process and stops when the
process exits.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

_SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
_started: tuple[subprocess.Popen, str] | None = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(port: int) -> subprocess.Popen:
    from prefect.settings import get_current_settings

    packages = Path(importlib.util.find_spec("prefect").origin).parents[1]
    env = {**os.environ, **_SERVER_ENV, **get_current_settings().to_environment_variables(exclude_unset=True)}
    return subprocess.Popen([sys.executable, "-m", "uvicorn", "--app-dir", str(packages), "--factory",
                             "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port),
                             "--log-level", "error", "--lifespan", "on"], env=env)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_server(timeout_s: float, attempts: int = 3) -> tuple[subprocess.Popen, str]:
    """A started server and its API URL; a port taken between choosing and binding it gets another try."""
    import httpx
    from prefect.logging import get_logger

    for _ in range(attempts):
        port = _free_port()
        process, url = _launch(port), f"http://127.0.0.1:{port}/api"
        deadline = time.monotonic() + timeout_s
        with httpx.Client() as client:
            while process.poll() is None:
                try:
                    if client.get(f"{url}/health").status_code == 200:
                        get_logger().info("temporary Prefect server on %s (set PREFECT_API_URL to use your own)", url)
                        return process, url
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    _stop(process)
                    raise RuntimeError(f"the temporary Prefect server on port {port} did not answer in "
                                       f"{timeout_s:.0f} s (PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)")
                time.sleep(0.1)
        if process.returncode != 3:  # uvicorn's exit code when it cannot bind
            break
    raise RuntimeError(f"the temporary Prefect server exited with code {process.returncode} before answering")


@contextmanager
def local_api():
    """Within it, Prefect talks to PREFECT_API_URL if set, else to this process's temporary server."""
    global _started
    from prefect.settings import (PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
                                  PREFECT_UI_URL, temporary_settings)

    if PREFECT_API_URL.value():
        yield PREFECT_API_URL.value()
        return
    if _started is None or _started[0].poll() is not None:
        _started = start_server(float(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()))
        atexit.register(_stop, _started[0])
    # no "View at" links: the temporary server serves no UI and stops with the process
    with temporary_settings(updates={PREFECT_API_URL: _started[1], PREFECT_UI_URL: ""}):
        yield _started[1]
