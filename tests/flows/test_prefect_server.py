"""The temporary local Prefect API: a real server a flow run is recorded on, started without importing Prefect's
server into the calling process, reused by later runs, and not started when PREFECT_API_URL names one."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

FLOW_TWICE = """
import sys
import psutil
from prefect import flow, task
from prefect.client.orchestration import get_client
from flows.prefect_server import local_api

@task
def square(x):
    return x * x

@flow
def tiny():
    return sum(square(i) for i in range(3))

urls, runs = [], []
for _ in range(2):
    with local_api() as url:
        state = tiny(return_state=True)
        with get_client(sync_client=True) as client:
            runs.append(client.read_flow_run(state.state_details.flow_run_id).state.type.value)
        urls.append(url)
servers = [p for p in psutil.Process().children() if "uvicorn" in " ".join(p.cmdline())]
print(urls[0] == urls[1], runs, len(servers), "prefect.server.api.server" in sys.modules)
"""


def _python(code: str, tmp_path, **env) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {"PREFECT_HOME": str(tmp_path)} | env
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env | {"PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=300)


def test_runs_are_recorded_on_one_temporary_server_not_imported_here(tmp_path):
    done = _python(FLOW_TWICE, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "True ['COMPLETED', 'COMPLETED'] 1 False"
    assert "temporary Prefect server on http://127.0.0.1:" in done.stderr


def test_a_configured_api_url_is_used_and_nothing_is_started(tmp_path):
    code = ("import psutil\nfrom flows.prefect_server import local_api\n"
            "with local_api() as url:\n    print(url, len(psutil.Process().children()))\n")
    done = _python(code, tmp_path, PREFECT_API_URL="http://127.0.0.1:9/api")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["http://127.0.0.1:9/api", "0"]
