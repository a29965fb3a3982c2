"""``omnicurate deploy`` serves the curate flow on a cron schedule against a real Prefect server on 127.0.0.1."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ports import free_port

from flows.cli import main

PREFECT = str(Path(sys.executable).with_name("prefect"))


def _wait(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def prefect_server(tmp_path):
    port = free_port()
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "server-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    server = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    try:
        import httpx

        _wait(lambda: _healthy(httpx, url), 180, "the Prefect server")
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _unless_busy(response):
    """The response, or None while the server says it is busy (503, 429)."""
    return None if response.status_code in (429, 503) else response


def _healthy(httpx, url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_bad_cron_is_named(tmp_path, capsys):
    code = main(["deploy", "--input", str(tmp_path), "--out", str(tmp_path / "o"), "--cron", "61 * * *"])
    assert code == 2
    assert "cron" in capsys.readouterr().err


def test_deploy_registers_a_cron_deployment_and_serves_its_runs(tmp_path, prefect_server):
    import httpx

    from curators.corpus_synth import synth_corpus

    corpus, out = tmp_path / "corpus", tmp_path / "dataset"
    synth_corpus(corpus, seed=4, videos=1, audio=1, images=1)
    env = dict(os.environ, PREFECT_API_URL=prefect_server, PREFECT_HOME=str(tmp_path / "client-home"))
    served = subprocess.Popen([sys.executable, "-m", "flows.cli", "deploy", "--input", str(corpus), "--out", str(out),
                               "--cron", "0 3 * * *", "--name", "nightly-test"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        def deployment():
            r = httpx.get(f"{prefect_server}/deployments/name/curate/nightly-test", timeout=5)
            return r.json() if r.status_code == 200 else None

        found = _wait(deployment, 180, "the deployment")
        assert [s["schedule"]["cron"] for s in found["schedules"]] == ["0 3 * * *"]
        assert found["parameters"]["config"]["input"] == str(corpus)
        # a busy server answers 503 (its SQLite is locked by the serving process); Prefect's own client retries
        # those, and so do we
        run = _wait(lambda: _unless_busy(httpx.post(f"{prefect_server}/deployments/{found['id']}/create_flow_run",
                                                    json={}, timeout=10)), 120, "the server to accept the run")
        assert run.status_code in (200, 201), run.text
        run_id = run.json()["id"]

        def finished():
            response = _unless_busy(httpx.get(f"{prefect_server}/flow_runs/{run_id}", timeout=5))
            state = response.json()["state"] if response is not None else None
            return state if state and state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

        state = _wait(finished, 420, "the served flow run")
        assert state["type"] == "COMPLETED", state
        assert (out / "manifest.json").is_file()
    finally:
        os.killpg(served.pid, signal.SIGTERM)
        try:
            served.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(served.pid, signal.SIGKILL)
