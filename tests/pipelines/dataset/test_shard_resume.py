"""A resumed write keeps the shards already committed and rewrites only what differs."""

import dataclasses
import os

import pytest

from pipelines.dataset.writer import write_dataset
from pipelines.dataset.shard_writer import ShardWriter
from schemas.config import ShardConfig
from shard_fixtures import QUARANTINE, make_media, make_samples


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return make_media(tmp_path_factory.mktemp("media"))


def _write(out, samples, reuse):
    with ShardWriter(str(out), ShardConfig(max_samples=2), reuse_committed=reuse) as writer:
        for s in samples:
            writer.add(s)
    return writer


def _stamps(out):
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted((out / "shards").glob("*.tar"))}


def test_committed_shards_are_not_written_again(tmp_path, media):
    samples = make_samples(5, media)
    first = _write(tmp_path, samples, reuse=False)
    before = _stamps(tmp_path)
    again = _write(tmp_path, samples, reuse=True)
    assert again.reused == [e.name for e in first.entries]
    assert again.entries == first.entries
    assert _stamps(tmp_path) == before  # same bytes, and not even touched


def test_a_changed_sample_rewrites_only_its_shard(tmp_path, media):
    samples = make_samples(5, media)
    first = _write(tmp_path, samples, reuse=False)
    before = _stamps(tmp_path)
    changed = list(samples)
    old = changed[2]
    changed[2] = dataclasses.replace(old, sample=dataclasses.replace(old.sample, verdicts=[]))
    again = _write(tmp_path, changed, reuse=True)
    after = _stamps(tmp_path)
    assert again.reused == [first.entries[0].name, first.entries[2].name]
    assert after[first.entries[1].name] != before[first.entries[1].name]
    assert again.entries[1].sha256 != first.entries[1].sha256


def test_an_index_that_outlived_its_tar_is_not_trusted(tmp_path, media):
    samples = make_samples(4, media)
    _write(tmp_path, samples, reuse=False)
    # a run died after writing a new index but before renaming its tar into place
    other = make_samples(4, media)
    other = [dataclasses.replace(s, sample=dataclasses.replace(s.sample, verdicts=[])) for s in other]
    tar0 = tmp_path / "shards" / "train-000000.tar"
    kept = tar0.read_bytes()
    _write(tmp_path, other, reuse=False)
    tar0.write_bytes(kept)  # old tar, new index
    again = _write(tmp_path, other, reuse=True)
    assert "train-000000.tar" not in again.reused
    assert tar0.read_bytes() != kept


def test_write_dataset_resume_gives_the_same_manifest(tmp_path, media):
    samples = make_samples(5, media)
    first = write_dataset(str(tmp_path), samples, QUARANTINE, shard=ShardConfig(max_samples=2))
    os.remove(tmp_path / "manifest.json")  # as if the run died before its commit point
    again = write_dataset(str(tmp_path), samples, QUARANTINE, shard=ShardConfig(max_samples=2), reuse_committed=True)
    assert again == first
