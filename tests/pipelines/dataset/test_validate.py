"""validate_dataset: green on a good dataset; catches a flipped byte, a missing shard, orphan rows, bad members."""

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from shard_fixtures import QUARANTINE, make_media, make_samples, small_shards

from pipelines.dataset.validate import validate_dataset
from pipelines.dataset.writer import write_dataset


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    root = tmp_path_factory.mktemp("validate")
    media = make_media(root / "media")
    write_dataset(root / "ds", make_samples(7, media, rejected_every=5), QUARANTINE, shard=small_shards())
    return root / "ds"


@pytest.fixture
def copy(good, tmp_path):
    return shutil.copytree(good, tmp_path / "ds")


def test_good_dataset_is_valid(good):
    assert validate_dataset(good) == []


def test_flipped_byte_is_caught(copy):
    shard = copy / "shards" / "train-000001.tar"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    problems = validate_dataset(copy)
    assert any("train-000001.tar: sha256" in p for p in problems), problems


def test_missing_shard_is_caught(copy):
    (copy / "shards" / "train-000000.tar").unlink()
    problems = validate_dataset(copy)
    assert "train-000000.tar: listed in the manifest but missing" in problems
    assert any("kept sample s00000 is in no shard" in p for p in problems)


def test_catalog_row_without_a_sample_is_caught(copy):
    path = copy / "catalog" / "turns" / "all.parquet"
    turns = pq.read_table(path)
    orphan = turns.slice(0, 1).set_column(0, turns.schema.field("key"), pa.array(["ghost"], pa.string()))
    pq.write_table(pa.concat_tables([turns, orphan]), path)
    problems = validate_dataset(copy)
    assert problems == ["catalog: turns has rows for key ghost, which is not a sample"]


def test_turn_referring_to_a_missing_member_is_caught(copy):
    path = copy / "catalog" / "turns" / "all.parquet"
    turns = pq.read_table(path).to_pylist()
    turns[0]["user_media"] = ["m07.jpg"]
    pq.write_table(pa.Table.from_pylist(turns, schema=pq.read_schema(path)), path)
    problems = validate_dataset(copy)
    assert problems == ["train-000000.tar: turn 0 of s00000 refers to missing member s00000.m07.jpg"]


def test_missing_manifest_means_uncommitted(copy):
    (copy / "manifest.json").unlink()
    assert validate_dataset(copy)[0].startswith("manifest:")


def test_shard_missing_a_member_its_record_needs_is_caught(copy):
    import io
    import tarfile

    from pipelines.dataset.shard_index import iter_tar_members

    shard = copy / "shards" / "train-000000.tar"
    with open(shard, "rb") as f:
        members = [m for m in iter_tar_members(f) if m.name != "s00001.m02.flac"]
    with tarfile.open(shard, "w") as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.size = len(m.data)
            tar.addfile(info, io.BytesIO(m.data))
    problems = validate_dataset(copy)
    assert "train-000000.tar: record s00001.json refers to missing member s00001.m02.flac" in problems
    assert "train-000000.tar: media member s00001.m02.flac is missing" in problems
    assert any("train-000000.tar: sha256" in p for p in problems)


def test_energon_offsets_are_checked_against_the_tar(copy):
    import struct

    idx = copy / "shards" / "train-000000.tar.idx"
    offsets = list(struct.unpack(f"<{idx.stat().st_size // 8}Q", idx.read_bytes()))
    assert offsets[0] == 0 and len(offsets) == 4
    offsets[1] += 512
    idx.write_bytes(struct.pack(f"<{len(offsets)}Q", *offsets))
    assert validate_dataset(copy) == [
        "train-000000.tar: Energon tar index train-000000.tar.idx does not match the samples' positions"]


def test_catalog_db_whose_views_do_not_resolve_is_caught(copy):
    import duckdb

    (copy / "catalog.duckdb").unlink()
    con = duckdb.connect(str(copy / "catalog.duckdb"))
    con.execute("CREATE VIEW samples AS SELECT 1 AS n")
    con.close()
    assert validate_dataset(copy) == ["catalog: the samples view shows 1 rows, its files hold 7"]
