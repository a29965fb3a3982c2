"""A run whose sources fail never looks finished: past max_failed_fraction it commits nothing and exits 1;
under it, it commits, keeps the failures in the ledger, and `retry --failed` completes them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.dataset.catalog import query


@pytest.fixture(scope="module")
def sound_corpus(tmp_path_factory):
    from curators.corpus_synth import synth_corpus

    root = tmp_path_factory.mktemp("failing")
    synth_corpus(root / "corpus", seed=8, videos=1, audio=2, images=1)
    return root


def _curate(root: Path, name: str, *extra: str, command: str = "curate", **config) -> subprocess.CompletedProcess:
    out = root / name
    # one source per batch: a failure costs its own source only
    lines = [f"input: {root / 'corpus'}", f"output: {out}", "batch_size: 1", *(f"{k}: {json.dumps(v)}" for k, v in config.items())]
    (root / f"{name}.yaml").write_text("\n".join(lines) + "\n")
    return subprocess.run([sys.executable, "-m", "flows.cli", command, "--config", str(root / f"{name}.yaml"),
                           "--no-summary", *extra], capture_output=True, text=True, timeout=600, check=False)


def test_a_run_whose_sources_all_fail_exits_nonzero_and_commits_nothing(sound_corpus):
    # an ASR model that is not there: every source with sound fails after its retries (not quarantined)
    done = _curate(sound_corpus, "all-failed", asr={"model_path": str(sound_corpus / "no-such-model")},
                   max_failed_fraction=0.0)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-3000:]
    assert not (sound_corpus / "all-failed" / "manifest.json").exists()
    [message] = [line for line in done.stderr.splitlines() if line.startswith("omnicurate curate: failed:")]
    assert message.startswith("omnicurate curate: failed: 3 of 4 sources failed"), message
    assert "First error: " in message and "no-such-model" in message, message
    assert "Flow run" in done.stdout + done.stderr and "Failed" in done.stdout + done.stderr  # the Prefect state


def test_failures_under_the_limit_commit_and_retry_completes_them(sound_corpus):
    # no speech: its round-trip ASR would load the same missing model
    broken = {"asr": {"model_path": str(sound_corpus / "no-such-model")}, "max_failed_fraction": 1.0,
              "speech": {"enabled": False}}
    done = _curate(sound_corpus, "partial", **broken)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((sound_corpus / "partial" / "manifest.json").read_text())
    assert (manifest["counts"]["sources"], manifest["counts"]["failed_sources"]) == (4, 3)
    failed = query(sound_corpus / "partial", "SELECT count(*) AS n FROM ledger WHERE status = 'failed'")
    assert failed["n"].to_pylist() == [3]

    done = _curate(sound_corpus, "partial", "--failed", command="retry", max_failed_fraction=1.0,
                   speech={"enabled": False})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "retrying 3 failed source(s)" in done.stdout
    manifest = json.loads((sound_corpus / "partial" / "manifest.json").read_text())
    assert manifest["counts"]["failed_sources"] == 0 and manifest["counts"]["clips"] > 1
    statuses = query(sound_corpus / "partial", "SELECT status, count(*) AS n FROM ledger GROUP BY ALL ORDER BY 1")
    assert statuses.to_pylist() == [{"status": "done", "n": 4}]


def test_the_failure_limit_counts_failed_sources_against_all_sources():
    from pipelines.curate_run import CurateFailed, MediaTotals, check_failures
    from pipelines.media_resume import PartitionMedia
    from schemas.config import CurateConfig

    def totals(*parts):
        return MediaTotals(partitions=[PartitionMedia(partition=i, sources=n, failed=f, first_error=e)
                                       for i, (n, f, e) in enumerate(parts)])

    cfg = CurateConfig(input="in", output="out", max_failed_fraction=0.1)
    check_failures(cfg, totals((10, 1, "a: OSError: x"), (10, 1, "b: OSError: y")))  # 2 of 20: at the limit
    with pytest.raises(CurateFailed, match=r"3 of 20 sources failed .* First error: b: OSError: y"):
        check_failures(cfg, totals((10, 0, ""), (10, 3, "b: OSError: y")))
    with pytest.raises(CurateFailed, match="no sources found in in"):
        check_failures(cfg, totals())
