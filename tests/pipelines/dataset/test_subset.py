"""review subset: a SQL-selected subset becomes a valid dataset whose members are the source's bytes."""

import pytest
from shard_fixtures import QUARANTINE, make_media, make_samples, small_shards

from pipelines.dataset.catalog import query
from pipelines.dataset.validate import validate_dataset
from pipelines.dataset.writer import write_dataset
from pipelines.dataset.manifest import read_manifest
from pipelines.dataset.shard_index import SampleReader
from pipelines.dataset.subset import subset_dataset


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("subset")
    media = make_media(root / "media")
    write_dataset(root / "src", make_samples(9, media, rejected_every=4), QUARANTINE, shard=small_shards())
    return root / "src"


def test_subset_copies_selected_members_byte_for_byte(source, tmp_path):
    out = tmp_path / "memory"
    where = "key IN (SELECT key FROM turns WHERE question_type = 'memory_text')"
    manifest = subset_dataset(source, where, out, max_samples=1)
    expected = sorted(query(source, f"SELECT key FROM samples WHERE kept AND ({where})")["key"].to_pylist())
    assert expected == ["s00002", "s00005", "s00008"]
    assert manifest.total_samples == 3 and len(manifest.shards) == 3
    assert read_manifest(out) == manifest
    assert validate_dataset(out) == []
    src, dst = SampleReader(source), SampleReader(out)
    assert sorted(dst.keys_in_order()) == expected
    for key in expected:
        assert dst.read(key) == src.read(key)
    assert query(out, "SELECT count(*) AS n FROM turns").to_pylist() == [{"n": 15}]
    assert query(out, "SELECT DISTINCT shard FROM samples ORDER BY 1")["shard"].to_pylist() == [
        "train-000000.tar", "train-000001.tar", "train-000002.tar"]
    assert query(out, "SELECT \"where\" FROM subset_origin").to_pylist() == [{"where": where}]


def test_subset_never_takes_rejected_samples(source, tmp_path):
    manifest = subset_dataset(source, "num_turns = 3 OR NOT kept", tmp_path / "three")
    assert sorted(SampleReader(tmp_path / "three").keys_in_order()) == ["s00000", "s00006"]
    assert manifest.counts["samples"] == 2


def test_subset_refuses_a_predicate_that_smuggles_statements(source, tmp_path):
    with pytest.raises(ValueError, match="exactly one SQL statement"):
        subset_dataset(source, "true); DROP VIEW samples; SELECT (1", tmp_path / "evil")
    assert not (tmp_path / "evil").exists()
    assert query(source, "SELECT count(*) AS n FROM samples").to_pylist() == [{"n": 9}]
