"""A dataset written to and read from a GCS bucket (a GCS emulator on 127.0.0.1) through fsspec's ``gs://``."""

import json
from pathlib import Path

import fsspec
import pytest
from gcs_emulator import gcs_emulator
from shard_fixtures import QUARANTINE, make_media, make_samples, small_shards

from pipelines.catalog import query
from pipelines.dataset_validate import validate_dataset
from pipelines.dataset_writer import write_dataset
from pipelines.manifest import read_manifest
from pipelines.shard_index import SampleReader


@pytest.fixture(scope="module")
def gcs_bucket():
    with gcs_emulator("corpus"):
        yield "gs://corpus"


def test_dataset_round_trip_through_a_gcs_bucket(gcs_bucket, tmp_path):
    media = make_media(tmp_path / "media")
    samples = make_samples(6, media, rejected_every=3)
    url = f"{gcs_bucket}/runs/ds1"
    manifest = write_dataset(url, samples, QUARANTINE, shard=small_shards(), seed=5)
    fs = fsspec.filesystem("gs")
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
