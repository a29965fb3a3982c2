"""A dataset written to and read from a bucket through fsspec: S3 (moto's server) and GCS (an emulator), both
on 127.0.0.1."""

import json
from pathlib import Path

import fsspec
import pytest
from object_stores import gcs_emulator, s3_emulator
from shard_fixtures import QUARANTINE, make_media, make_samples, small_shards

from pipelines.dataset.catalog import query
from pipelines.dataset.validate import validate_dataset
from pipelines.dataset.writer import write_dataset
from pipelines.dataset.manifest import read_manifest
from pipelines.dataset.shard_index import SampleReader


@pytest.fixture(scope="module")
def s3_bucket():
    with s3_emulator("corpus"):
        yield "s3://corpus"


@pytest.fixture(scope="module")
def gcs_bucket():
    with gcs_emulator("corpus"):
        yield "gs://corpus"


@pytest.mark.parametrize("bucket_fixture", ["s3_bucket", "gcs_bucket"])
def test_dataset_round_trip_through_a_bucket(bucket_fixture, request, tmp_path):
    bucket = request.getfixturevalue(bucket_fixture)
    media = make_media(tmp_path / "media")
    samples = make_samples(6, media, rejected_every=3)
    url = f"{bucket}/runs/ds1"
    manifest = write_dataset(url, samples, QUARANTINE, shard=small_shards(), seed=5)
    fs = fsspec.filesystem(bucket.split("://")[0])
    listed = sorted(p.rsplit("/", 1)[1] for p in fs.ls("corpus/runs/ds1/shards", detail=False))
    assert listed == sorted(n for e in manifest.shards for n in (e.name, e.index, e.name + ".idx"))
    assert not any(".tmp" in p for p in fs.find("corpus/runs/ds1"))
    assert read_manifest(url) == manifest
    assert validate_dataset(url) == []
    kept = [s for s in samples if s.kept]
    assert query(url, "SELECT count(*) AS n FROM samples WHERE kept").to_pylist() == [{"n": len(kept)}]
    got = SampleReader(url).read(kept[-1].sample.key)
    assert json.loads(got["json"])["key"] == kept[-1].sample.key
    assert got["m01.mp4"] == Path(media["video"]).read_bytes()
    with fs.open(f"corpus/runs/ds1/shards/{manifest.shards[0].name}", "rb") as f:
        tar_head = f.read(512)
    assert tar_head.startswith(f"{kept[0].sample.key}.json".encode())
