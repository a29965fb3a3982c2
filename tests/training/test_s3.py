"""The loader reads a dataset from an S3-compatible server (moto on 127.0.0.1) exactly as from a local dir."""

import fsspec
import pytest
import torch

from training.loader import DataSource, LoaderConfig, ShardDataset


@pytest.fixture(scope="module")
def s3_endpoint():
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket="shards")
    saved = dict(fsspec.config.conf)
    fsspec.config.conf["s3"] = {"endpoint_url": endpoint, "key": "testing", "secret": "testing",
                                "skip_instance_cache": True}
    try:
        yield endpoint
    finally:
        fsspec.config.conf.clear()
        fsspec.config.conf.update(saved)
        server.stop()


def batches(tokenizer, url):
    config = LoaderConfig(sources=[DataSource(url=url)], max_tokens=4096, shuffle_buffer=4, epochs=1, seed=2)
    return list(ShardDataset(config, tokenizer))


def test_s3_dataset_reads_like_the_local_one(s3_endpoint, media_bytes, tmp_path, tokenizer):
    from conftest import make_sample, write_dataset

    dataset_dir = write_dataset(tmp_path / "ds", [make_sample(i, turns=1 + i % 3) for i in range(4)], media_bytes,
                                per_shard=1)
    fs = fsspec.filesystem("s3")
    fs.put(str(dataset_dir) + "/", "shards/ds1/", recursive=True)
    assert fs.exists("shards/ds1/manifest.json")
    local = batches(tokenizer, str(dataset_dir))
    assert sum(len(b.sample_ids) for b in local) == 4
    for url in ("s3://shards/ds1", "s3://shards/ds1/shards/train-{000000..000003}.tar"):
        remote = batches(tokenizer, url)
        assert [[k.split("/")[-1] for k in b.sample_ids] for b in remote] == \
               [[k.split("/")[-1] for k in b.sample_ids] for b in local]
        assert all(r.sample_ids[0].startswith("s3://shards/ds1/shards/") for r in remote)
        assert all(torch.equal(r.input_ids, x.input_ids) and torch.equal(r.pixel_values, x.pixel_values)
                   for r, x in zip(remote, local))
