"""Shard writer: WebDataset round trip, bounds, determinism, atomic commit, index offsets, hostile members."""

import io
import json
import os
import tarfile
from pathlib import Path

import pytest
import webdataset as wds
from shard_fixtures import QUARANTINE, make_curated, make_media, make_samples, small_shards

from pipelines.dataset.writer import write_dataset
from pipelines.dataset.manifest import read_manifest
from pipelines.dataset.shard_index import SampleReader, iter_tar_members, iter_tar_samples, read_index
from pipelines.dataset.shard_writer import ShardWriter, sha256_file
from schemas import SchemaError, from_json
from schemas.config import ShardConfig
from schemas.dataset_format import shard_index_name
from schemas.dialogue import CuratedSample, Sample


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return make_media(tmp_path_factory.mktemp("media"))


def tar_urls(out):
    return sorted(str(p) for p in (out / "shards").glob("*.tar"))


def test_upstream_webdataset_reads_every_sample_and_member(tmp_path, media):
    samples = make_samples(7, media)
    with ShardWriter(str(tmp_path), small_shards()) as writer:
        for s in samples:
            writer.add(s)
    entries = writer.entries
    seen = {}
    for item in wds.WebDataset(tar_urls(tmp_path), shardshuffle=False, empty_check=False):
        seen[item["__key__"]] = item
    assert list(seen) == [s.sample.key for s in samples]
    for s in samples:
        item = seen[s.sample.key]
        assert from_json(Sample, item["json"]) == s.sample
        for suffix, path in s.files.items():
            with open(path, "rb") as f:
                assert item[suffix] == f.read()
    assert sum(e.samples for e in entries) == 7
    for e in entries:
        assert sha256_file(tmp_path / "shards" / e.name) == e.sha256
        assert os.path.getsize(tmp_path / "shards" / e.name) == e.bytes


def test_shards_respect_byte_and_sample_bounds(tmp_path, media):
    one = make_curated(0, media)
    per_sample = sum(os.path.getsize(p) for p in one.files.values())
    cfg = ShardConfig(max_bytes=int(per_sample * 2.6), max_samples=4)
    with ShardWriter(str(tmp_path / "by_bytes"), cfg) as w:
        for s in make_samples(9, media):
            w.add(s)
    assert all(e.bytes <= cfg.max_bytes for e in w.entries)
    assert [e.samples for e in w.entries] == [2, 2, 2, 2, 1]
    cfg = ShardConfig(max_bytes=10**9, max_samples=4)
    with ShardWriter(str(tmp_path / "by_count"), cfg) as w:
        for s in make_samples(9, media):
            w.add(s)
    assert [e.samples for e in w.entries] == [4, 4, 1]


def test_same_input_gives_byte_identical_shards(tmp_path, media):
    for name in ("a", "b"):
        write_dataset(tmp_path / name, make_samples(6, media), QUARANTINE, shard=small_shards(), seed=1)
    a, b = tar_urls(tmp_path / "a"), tar_urls(tmp_path / "b")
    assert len(a) == len(b) >= 2
    for x, y in zip(a, b):
        with open(x, "rb") as fx, open(y, "rb") as fy:
            assert fx.read() == fy.read()
    assert read_manifest(tmp_path / "a").shards == read_manifest(tmp_path / "b").shards


def test_a_failed_write_leaves_no_partial_shard_under_its_final_name(tmp_path, media):
    good = make_curated(0, media)
    broken = CuratedSample(sample=make_curated(1, media).sample,
                           files={**good.files, "m01.mp4": str(tmp_path / "gone.mp4")})
    with pytest.raises(FileNotFoundError), ShardWriter(str(tmp_path), ShardConfig(max_bytes=10**9,
                                                                                  max_samples=10)) as w:
        w.add(good)
        w.add(broken)
    assert os.listdir(tmp_path / "shards") == []


def test_open_shard_is_invisible_until_closed(tmp_path, media):
    w = ShardWriter(str(tmp_path), ShardConfig(max_bytes=10**9, max_samples=10))
    w.add(make_curated(0, media))
    names = os.listdir(tmp_path / "shards")
    assert names and all(n.startswith(".") and n.endswith(".tmp") for n in names)
    w.close()
    assert sorted(os.listdir(tmp_path / "shards")) == ["train-000000.index.parquet", "train-000000.tar",
                                                       "train-000000.tar.idx"]


def test_index_offsets_point_at_member_bytes(tmp_path, media):
    with ShardWriter(str(tmp_path), small_shards()) as w:
        for s in make_samples(4, media):
            w.add(s)
    entry = w.entries[0]
    index = read_index(str(tmp_path), entry.name)
    assert entry.index == shard_index_name(entry.name)
    data = (tmp_path / "shards" / entry.name).read_bytes()
    with tarfile.open(tmp_path / "shards" / entry.name) as tar:
        expected = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    rows = index.to_pylist()
    assert [r["member"] for r in rows] == list(expected)
    for r in rows:
        assert data[r["offset"]:r["offset"] + r["size"]] == expected[r["member"]]
    reader = SampleReader(str(tmp_path))
    sample = reader.read("s00002")
    assert json.loads(sample["json"])["key"] == "s00002"
    assert sample["m02.flac"] == Path(media["audio"]).read_bytes()


def test_writer_refuses_rejected_duplicate_badly_keyed_and_incomplete_samples(tmp_path, media):
    w = ShardWriter(str(tmp_path), small_shards())
    with pytest.raises(ValueError, match="rejected"):
        w.add(make_curated(0, media, kept=False))
    w.add(make_curated(1, media))
    with pytest.raises(ValueError, match="duplicate"):
        w.add(make_curated(1, media))
    s = make_curated(2, media)
    with pytest.raises(SchemaError, match="without files"):
        w.add(CuratedSample(sample=s.sample, files={k: v for k, v in s.files.items() if k != "m00.jpg"}))
    with pytest.raises(SchemaError, match="unsafe"):
        w.add(CuratedSample(sample=s.sample, files={**s.files, "../evil.jpg": media["image"]}))
    with pytest.raises(SchemaError, match="unknown member suffix"):
        w.add(CuratedSample(sample=s.sample, files={**s.files, "m05.exe": media["image"]}))
    object.__setattr__(s.sample, "key", "bad.key/x")  # a record whose key was damaged after validation
    with pytest.raises(SchemaError, match="invalid sample key"):
        w.add(s)
    w.abort()


def _tar_with(name: str, kind: bytes = tarfile.REGTYPE) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.size = 0 if kind != tarfile.REGTYPE else 3
        if kind == tarfile.SYMTYPE:
            info.linkname = "/etc/passwd"
        tar.addfile(info, io.BytesIO(b"abc") if kind == tarfile.REGTYPE else None)
    buf.seek(0)
    return buf


@pytest.mark.parametrize("name,kind", [("../s1.json", tarfile.REGTYPE), ("/etc/s1.json", tarfile.REGTYPE),
                                       ("dir/s1.json", tarfile.REGTYPE), ("s1.m00.exe", tarfile.REGTYPE),
                                       ("S1.json", tarfile.REGTYPE), ("s1.json", tarfile.SYMTYPE),
                                       ("s1", tarfile.DIRTYPE)])
def test_reader_refuses_hostile_members(name, kind):
    with pytest.raises(SchemaError):
        list(iter_tar_members(_tar_with(name, kind)))


def test_reader_groups_members_by_key(tmp_path, media):
    with ShardWriter(str(tmp_path), ShardConfig(max_bytes=10**9, max_samples=10)) as w:
        for s in make_samples(3, media):
            w.add(s)
    with open(tmp_path / "shards" / "train-000000.tar", "rb") as f:
        grouped = list(iter_tar_samples(f))
    assert [k for k, _ in grouped] == ["s00000", "s00001", "s00002"]
    assert sorted(grouped[0][1]) == ["json", "m00.jpg", "m01.mp4", "m02.flac", "t01.user.flac"]
