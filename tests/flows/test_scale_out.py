"""The curate flow on two Ray nodes whose worker node cannot see the driver's local directories (as a second machine
could not), reading sources from and writing the dataset to an ``s3://`` bucket: no source fails, both nodes work, and
the dataset is byte-identical to a one-node run of the same input, config and seed."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import fsspec
import pytest
from object_stores import s3_emulator
from ray_cluster import HEAD, WORKER, NodeActivity, processes_naming, stop, two_node_cluster

from flows.curate_flow import REPORT_FILE
from pipelines.dataset.manifest import read_manifest
from pipelines.dataset.validate import validate_dataset
from schemas.dataset_format import CATALOG_DB, CATALOG_SQL

REPO = Path(__file__).resolve().parents[2]
BUCKET = "omnicurate"
NOT_COMPARED = {REPORT_FILE, CATALOG_DB, CATALOG_SQL}
"""Rendered views whose bytes may differ between runs (the report's plots, DuckDB's file, the views naming the
dataset's URL); the data they show is in the compared Parquet and tars."""
WORK_DIR = ".work/"
"""The run's ledger and staging beside the dataset: bookkeeping of how the run went, not the dataset."""
CURATE_CONFIG = "partitions: 2\nspeech: {enabled: false}\n"
"""Fixed partitions, so the output cannot depend on how many nodes ran it; text only, so two runs fit the time
(test_curate_e2e covers a spoken run)."""


@pytest.fixture
def s3_endpoint():
    with s3_emulator(BUCKET) as endpoint:
        yield endpoint


@pytest.fixture
def driver_env(tmp_path, s3_endpoint):
    """The head machine's environment: node-local HOME and TMPDIR (so default scratch such as ``~/.cache`` and
    fetched copies land there), and the S3 server for fsspec. The worker node gets the same variables, so its HOME
    and TMPDIR are the same paths on its own, empty tmpfs."""
    return dict(os.environ, HOME=str(tmp_path / "home"), TMPDIR=str(tmp_path / "tmp"),
                PREFECT_HOME=str(tmp_path / "prefect"), FSSPEC_S3_ENDPOINT_URL=s3_endpoint,
                AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")


@pytest.fixture
def cluster(tmp_path, driver_env):
    """Head and worker node; the worker's view of ``tmp_path`` (the driver's every local file) is an empty tmpfs."""
    with two_node_cluster(hidden=tmp_path, env=driver_env,
                          private_dirs=(Path(driver_env["HOME"]), Path(driver_env["TMPDIR"]))) as started:
        yield started


def _upload_corpus(tmp_path: Path) -> str:
    from curators.corpus_synth import synth_corpus

    corpus = tmp_path / "corpus"
    synth_corpus(corpus, seed=2, videos=2, audio=1, images=2)
    fs = fsspec.filesystem("s3")
    for path in sorted(corpus.iterdir()):
        fs.put_file(str(path), f"{BUCKET}/corpus/{path.name}")
    return f"s3://{BUCKET}/corpus"


def _curate(env: dict[str, str], config: Path, source: str, out: str, address: str | None) -> str:
    """Run ``omnicurate curate`` in a fresh process; returns its output."""
    cmd = [sys.executable, "-m", "flows.cli", "curate", "--config", str(config), "--input", source, "--out", out,
           "--no-summary", *(["--ray-address", address] if address else [])]
    result = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def _dataset_digests(url: str) -> dict[str, str]:
    """sha256 of every object of the dataset at ``url`` but the work dir and the rendered views, by relative name."""
    fs = fsspec.filesystem("s3")
    root = url.removeprefix("s3://").rstrip("/") + "/"
    digests = {}
    for key in fs.find(root):
        name = key.removeprefix(root)
        if name.startswith(WORK_DIR) or name in NOT_COMPARED:
            continue
        digests[name] = hashlib.sha256(fs.cat_file(key)).hexdigest()
    return digests


def _assert_committed_whole(url: str, log: str) -> None:
    manifest = read_manifest(url)
    failures = "\n".join([line for line in log.splitlines() if "failed" in line][:10])
    assert manifest.counts.get("failed_sources") == 0, f"{manifest.counts}\n{failures}"
    assert manifest.total_samples > 0, manifest.counts
    assert validate_dataset(url) == []


def test_two_nodes_make_the_one_node_dataset(tmp_path, driver_env, cluster):
    source = _upload_corpus(tmp_path)
    config = tmp_path / "curate.yaml"
    config.write_text(CURATE_CONFIG)
    two_node, one_node = f"s3://{BUCKET}/two-node", f"s3://{BUCKET}/one-node"

    with NodeActivity(cluster.raylets).watching() as activity:
        log = _curate(cluster.env, config, source, two_node, cluster.address)
    assert set(activity.seen) == {HEAD, WORKER}, activity.seen
    _assert_committed_whole(two_node, log)

    # a local Ray in the driver, under a short temp root of its own (TMPDIR's would overflow a socket path)
    local_ray = f"/tmp/ocs-{os.getpid()}-local"
    try:
        log = _curate(driver_env | {"RAY_TMPDIR": local_ray}, config, source, one_node, None)
    finally:
        stop(processes_naming(local_ray))
        shutil.rmtree(local_ray, ignore_errors=True)
    _assert_committed_whole(one_node, log)

    two, one = _dataset_digests(two_node), _dataset_digests(one_node)
    assert sorted(two) == sorted(one)
    assert [name for name in sorted(two) if two[name] != one[name]] == []
