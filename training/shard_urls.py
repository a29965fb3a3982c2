"""Shard URLs: local paths, ``s3://``/``gs://`` via fsspec, brace ranges, dataset directories and their manifest."""

from __future__ import annotations

import posixpath
from pathlib import Path

from schemas.dataset_format import MANIFEST_FILE, SHARDS_DIR, Manifest
from schemas.validation import from_json

REMOTE_SCHEMES = ("s3://", "gs://", "gcs://", "memory://", "file://")


def is_remote(url: str) -> bool:
    return url.startswith(REMOTE_SCHEMES) and not url.startswith("file://")


def _join(base: str, *parts: str) -> str:
    return posixpath.join(base, *parts) if is_remote(base) else str(Path(base, *parts))


def _filesystem(url: str):
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


def read_bytes(url: str) -> bytes:
    if not is_remote(url):
        return Path(url.removeprefix("file://")).read_bytes()
    fs, path = _filesystem(url)
    try:
        return fs.cat_file(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{url} does not exist") from None


def open_stream(url: str):
    """A binary file object for sequential reading (a local file or an fsspec stream)."""
    if not is_remote(url):
        return open(url.removeprefix("file://"), "rb")
    fs, path = _filesystem(url)
    return fs.open(path, "rb", block_size=8 * 1024 * 1024, cache_type="readahead")


def _exists(url: str) -> bool:
    if not is_remote(url):
        return Path(url.removeprefix("file://")).exists()
    fs, path = _filesystem(url)
    return fs.exists(path)


def _is_dir(url: str) -> bool:
    if not is_remote(url):
        return Path(url.removeprefix("file://")).is_dir()
    fs, path = _filesystem(url)
    return fs.isdir(path)


def read_manifest(url: str) -> Manifest:
    return from_json(Manifest, read_bytes(url))


def manifest_shard_urls(manifest_url: str) -> list[str]:
    """The shards a committed dataset's manifest lists, in manifest order."""
    manifest = read_manifest(manifest_url)
    base = posixpath.dirname(manifest_url) if is_remote(manifest_url) else str(Path(manifest_url).parent)
    return [_join(base, SHARDS_DIR, entry.name) for entry in manifest.shards]


def expand_shard_urls(spec: str | list[str]) -> list[str]:
    """Every shard a spec names: a tar, a brace range (``train-{000000..000009}.tar``), a manifest, or a dataset dir.

    A list, or a spec joined with ``::``, names several; duplicates are dropped, order kept.
    """
    from braceexpand import braceexpand

    specs = spec if isinstance(spec, list) else spec.split("::")
    urls: list[str] = []
    for item in specs:
        item = item.strip()
        if not item:
            continue
        if item.endswith(MANIFEST_FILE):
            urls += manifest_shard_urls(item)
        elif "{" in item:
            urls += list(braceexpand(item))
        elif not item.endswith(".tar") and _is_dir(item):
            manifest = _join(item, MANIFEST_FILE)
            if not _exists(manifest):
                raise FileNotFoundError(f"{item} is a directory without {MANIFEST_FILE} (not a committed dataset)")
            urls += manifest_shard_urls(manifest)
        elif not item.endswith(".tar") and not _exists(item):
            raise FileNotFoundError(f"{item} does not exist (give a dataset directory, its {MANIFEST_FILE}, "
                                    "a .tar shard or a brace range)")
        else:
            urls.append(item)
    if not urls:
        raise FileNotFoundError(f"no shards in {spec!r}")
    return list(dict.fromkeys(urls))
