"""The loader reads a dataset from an object store on 127.0.0.1 (moto's S3 server through ``s3://``, a GCS emulator
through ``gs://``) exactly as from a local dir."""

import os
import subprocess
import sys
from pathlib import Path

import fsspec
import pytest
import torch
from object_stores import gcs_emulator, s3_emulator

from training.loader import DataSource, LoaderConfig, ShardDataset

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gcs_endpoint():
    with gcs_emulator("shards") as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def s3_endpoint():
    with s3_emulator("shards") as endpoint:
        yield endpoint


STORES = {"s3": "s3_endpoint", "gs": "gcs_endpoint"}


def batches(tokenizer, url):
    config = LoaderConfig(sources=[DataSource(url=url)], max_tokens=4096, shuffle_buffer=4, epochs=1, seed=2)
    return list(ShardDataset(config, tokenizer))


def names(batch_list):
    return [[k.split("/")[-1] for k in b.sample_ids] for b in batch_list]


@pytest.fixture(scope="module")
def local_dataset(tmp_path_factory, media_bytes):
    from conftest import make_sample, write_dataset

    return write_dataset(tmp_path_factory.mktemp("gcs") / "ds", [make_sample(i, turns=1 + i % 3) for i in range(4)],
                         media_bytes, per_shard=1)


@pytest.mark.parametrize("scheme", STORES)
def test_a_bucket_dataset_reads_like_the_local_one(scheme, request, local_dataset, tokenizer):
    request.getfixturevalue(STORES[scheme])
    fs = fsspec.filesystem(scheme)
    fs.put(str(local_dataset) + "/", "shards/ds1/", recursive=True)
    assert fs.exists("shards/ds1/manifest.json")
    local = batches(tokenizer, str(local_dataset))
    assert sum(len(b.sample_ids) for b in local) == 4
    for url in (f"{scheme}://shards/ds1/manifest.json", f"{scheme}://shards/ds1/shards/train-{{000000..000003}}.tar",
                f"{scheme}://shards/ds1"):
        remote = batches(tokenizer, url)
        assert names(remote) == names(local)
        assert all(r.sample_ids[0].startswith(f"{scheme}://shards/ds1/shards/") for r in remote)
        assert all(torch.equal(r.input_ids, x.input_ids) and torch.equal(r.labels, x.labels)
                   and torch.equal(r.pixel_values, x.pixel_values) for r, x in zip(remote, local))


@pytest.mark.parametrize("scheme", STORES)
@pytest.mark.parametrize("path", ["shards/nothing-here", "shards/nothing-here/manifest.json"])
def test_a_missing_bucket_dataset_is_a_clear_error(scheme, path, request, tokenizer):
    request.getfixturevalue(STORES[scheme])
    with pytest.raises(FileNotFoundError, match="shards/nothing-here"):
        batches(tokenizer, f"{scheme}://{path}")


def test_a_fresh_process_reaches_the_emulator_through_the_documented_environment(gcs_endpoint, local_dataset):
    """STORAGE_EMULATOR_HOST, FSSPEC_GCS_TOKEN and GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT (README) are all it takes."""
    fs = fsspec.filesystem("gs")
    fs.put(str(local_dataset) + "/", "shards/ds2/", recursive=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FSSPEC_", "GOOGLE_", "GCSFS_"))}
    env.update(STORAGE_EMULATOR_HOST=gcs_endpoint, GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT="false",
               FSSPEC_GCS_TOKEN="anon", PYTHONPATH=str(REPO))
    script = ("import sys\nfrom training.shard_urls import expand_shard_urls, read_bytes\n"
              "for url in expand_shard_urls(sys.argv[1]):\n    print(url, len(read_bytes(url)))\n")
    done = subprocess.run([sys.executable, "-c", script, "gs://shards/ds2/manifest.json"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    local = sorted((local_dataset / "shards").glob("*.tar"))
    assert done.stdout.split() == [x for p in local for x in (f"gs://shards/ds2/shards/{p.name}", str(p.stat().st_size))]
