"""Sources: directory walk, csv/jsonl/parquet manifests with metadata, fsspec bucket prefixes."""

import json
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from media_fixtures import card_image

from curators.probe import probe_source
from curators.sources import list_sources
from schemas.config import ProbePolicy
from schemas.media import MediaAsset
from schemas.validation import SchemaError


def test_directory_walk_is_sorted_recursive_and_skips_hidden_and_sidecars(tmp_path: Path):
    (tmp_path / "b").mkdir()
    (tmp_path / ".cache").mkdir()
    for name in ["b/z.mp4", "a.wav", "notes.txt", ".hidden.mp4", ".cache/x.mp4", "facts.jsonl"]:
        (tmp_path / name).write_bytes(b"x")
    uris = [item.uri for item in list_sources(str(tmp_path))]
    assert uris == [str(tmp_path / "a.wav"), str(tmp_path / "b/z.mp4"), str(tmp_path / "notes.txt")]


def test_manifests_resolve_relative_paths_and_keep_metadata(tmp_path: Path):
    (tmp_path / "media").mkdir()
    card_image(tmp_path / "media" / "one.png")
    (tmp_path / "list.csv").write_text("uri,title,licence\nmedia/one.png,First,CC-BY\n/abs/two.mp4,,\n")
    (tmp_path / "list.jsonl").write_text(json.dumps({"path": "media/one.png", "title": "First"}) + "\n\n")
    pq.write_table(pa.table({"uri": ["media/one.png"], "title": ["First"]}), tmp_path / "list.parquet")
    csv_items = list_sources(str(tmp_path / "list.csv"))
    assert [(i.uri, i.metadata) for i in csv_items] == [
        ("/abs/two.mp4", {}), (str(tmp_path / "media" / "one.png"), {"title": "First", "licence": "CC-BY"})]
    for name in ("list.jsonl", "list.parquet"):
        [item] = list_sources(str(tmp_path / name))
        assert (item.uri, item.metadata) == (str(tmp_path / "media" / "one.png"), {"title": "First"})


def test_manifest_without_uri_column_names_the_row(tmp_path: Path):
    (tmp_path / "bad.jsonl").write_text(json.dumps({"name": "x"}) + "\n")
    with pytest.raises(SchemaError, match="row 1"):
        list_sources(str(tmp_path / "bad.jsonl"))


def test_bucket_prefix_lists_and_probes_through_fsspec(tmp_path: Path):
    image = card_image(tmp_path / "card.png")
    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/set/card.png", image.read_bytes())
    fs.pipe("/bucket/set/sub/other.png", image.read_bytes())
    items = list_sources("memory://bucket/set")
    assert [i.uri for i in items] == ["memory://bucket/set/card.png", "memory://bucket/set/sub/other.png"]
    asset = probe_source(items[0].uri, ProbePolicy(), cache_dir=tmp_path / "fetch")
    assert isinstance(asset, MediaAsset)
    assert asset.uri == "memory://bucket/set/card.png" and asset.kind == "image"
    [fetched] = list((tmp_path / "fetch").iterdir())
    assert fetched.read_bytes() == image.read_bytes()


def test_missing_input_is_an_error():
    with pytest.raises(FileNotFoundError):
        list_sources("/no/such/place")


def test_s3_prefix_is_listed_page_by_page(monkeypatch: pytest.MonkeyPatch):
    """A bucket prefix is read a listing page at a time (moto's S3 on 127.0.0.1): an object written after the first
    page was read still turns up, which a listing held whole could not show; sidecars, hidden names and keys
    outside the prefix are left out, and a URI naming one object lists that object."""
    from object_stores import s3_emulator

    import curators.sources as sources

    monkeypatch.setattr(sources, "LIST_PAGE_KEYS", 3)
    with s3_emulator("bucket"):
        fs = fsspec.filesystem("s3")
        fs.pipe({f"bucket/set/k{i}.png": b"x" for i in range(7)})
        fs.pipe({"bucket/set/sub/deep.png": b"x", "bucket/set/facts.jsonl": b"x", "bucket/set/.hidden.png": b"x",
                 "bucket/setter/outside.png": b"x"})
        listing = sources.iter_sources("s3://bucket/set")
        first = next(listing)
        fs.pipe("bucket/set/z-late.png", b"x")
        rest = [item.uri for item in listing]
        assert [first.uri, *rest] == [*(f"s3://bucket/set/k{i}.png" for i in range(7)), "s3://bucket/set/sub/deep.png",
                                      "s3://bucket/set/z-late.png"]
        assert [i.uri for i in list_sources("s3://bucket/set/k3.png")] == ["s3://bucket/set/k3.png"]
        assert list_sources("s3://bucket/empty") == []


def test_gcs_prefix_is_listed_through_the_page_call():
    """The same listing from a GCS emulator on 127.0.0.1 (it answers in one page whatever the page size, so only
    the S3 test shows the paging itself)."""
    from object_stores import gcs_emulator

    with gcs_emulator("bucket"):
        fs = fsspec.filesystem("gs")
        for name in ("set/a.png", "set/sub/b.png", "set/manifest.json", "other.png"):
            fs.pipe(f"bucket/{name}", b"x")
        assert [i.uri for i in list_sources("gs://bucket/set")] == ["gs://bucket/set/a.png", "gs://bucket/set/sub/b.png"]
        assert [i.uri for i in list_sources("gs://bucket/set/a.png")] == ["gs://bucket/set/a.png"]
