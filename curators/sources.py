"""Where source media come from: a directory tree, a manifest (csv, parquet, jsonl) or a bucket prefix."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path

from schemas.media import SourceItem
from schemas.validation import SchemaError

MANIFEST_SUFFIXES = (".csv", ".parquet", ".jsonl")
URI_COLUMNS = ("uri", "path", "url", "file")
# Files a corpus may carry beside its media that are not sources themselves.
SIDECAR_NAMES = frozenset({"facts.jsonl", "manifest.json"})


def is_remote(uri: str) -> bool:
    """True for fsspec URLs (``s3://...``), false for plain paths and ``file://``."""
    return "://" in uri and not uri.startswith("file://")


def list_sources(input: str) -> list[SourceItem]:
    """The items named by ``input`` (see ``iter_sources``), sorted by URI (equal URIs in listing order)."""
    return sorted(iter_sources(input), key=lambda item: item.uri)


def iter_sources(input: str) -> Iterator[SourceItem]:
    """The items named by ``input``, one at a time in listing order (not sorted), never all held at once.

    A directory is walked recursively (hidden files and known sidecars skipped; every other file is an
    item, so one of a foreign type is quarantined rather than ignored). A ``.csv``/``.parquet``/``.jsonl``
    file is a manifest with a ``uri`` (or ``path``/``url``/``file``) column, relative paths resolved
    against the manifest's folder, other columns kept as metadata. Anything with a protocol is listed
    through fsspec.
    """
    input = input.removeprefix("file://")
    if is_remote(input):
        if input.endswith(MANIFEST_SUFFIXES):
            return _read_manifest(input)
        return _list_bucket(input)
    path = Path(input)
    if path.is_dir():
        return _walk_directory(path)
    if path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
        return _read_manifest(str(path))
    if path.is_file():
        return iter([SourceItem(uri=str(path))])
    raise FileNotFoundError(f"input {input!r} is neither a directory, a manifest nor a bucket prefix")


def _walk_directory(root: Path) -> Iterator[SourceItem]:
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith(".") and name not in SIDECAR_NAMES:
                yield SourceItem(uri=str(Path(folder) / name))


LIST_PAGE_KEYS = 1000
"""Keys asked for per listing request of an S3 or GCS prefix (both APIs' most)."""


def _list_bucket(prefix: str) -> Iterator[SourceItem]:
    import fsspec

    fs, root = fsspec.core.url_to_fs(prefix)
    protocol = prefix.split("://", 1)[0]
    for key in _bucket_keys(fs, root):
        name = key.rsplit("/", 1)[-1]
        if name and not name.startswith(".") and name not in SIDECAR_NAMES:
            yield SourceItem(uri=f"{protocol}://{key.lstrip('/')}")


def _bucket_keys(fs, root: str) -> Iterator[str]:
    """Every key under ``root``: from S3 and GCS a page at a time as the listing API returns them (a prefix of
    10^8 objects never sits in memory); from other filesystems through ``fs.find``, which lists it whole. A
    root that names one object rather than a prefix is found by ``fs.find`` too."""
    pages = _key_pages(fs, root)
    found = False
    for page in pages or ():
        for key in page:
            found = True
            yield key
    if not found:
        yield from fs.find(root)


def _key_pages(fs, root: str) -> Iterator[list[str]] | None:
    """The keys under the ``root/`` prefix page by page, through s3fs' or gcsfs' one-page list call on their event
    loop; None for a filesystem that has neither."""
    from fsspec.asyn import sync

    bucket, _, key = root.strip("/").partition("/")
    prefix = key.rstrip("/") + "/" if key else ""
    if hasattr(fs, "_call_s3"):  # s3fs: ListObjectsV2, continued by token
        def page(token):
            out = sync(fs.loop, fs._call_s3, "list_objects_v2", Bucket=bucket, Prefix=prefix,
                       MaxKeys=LIST_PAGE_KEYS, **({"ContinuationToken": token} if token else {}))
            return ([f"{bucket}/{c['Key']}" for c in out.get("Contents", [])],
                    out.get("NextContinuationToken") if out.get("IsTruncated") else None)
    elif hasattr(fs, "_call_list_objects"):  # gcsfs: objects.list, continued by page token
        def page(token):
            out = sync(fs.loop, fs._call_list_objects, bucket, prefix=prefix, maxResults=LIST_PAGE_KEYS,
                       **({"pageToken": token} if token else {}))
            return [f"{bucket}/{item['name']}" for item in out.get("items", [])], out.get("nextPageToken")
    else:
        return None

    def pages() -> Iterator[list[str]]:
        token = None
        while True:
            keys, token = page(token)
            yield [k for k in keys if not k.endswith("/")]  # folder placeholders are not objects
            if not token:
                return

    return pages()


def _manifest_rows(uri: str) -> Iterator[dict]:
    import fsspec

    if uri.endswith(".parquet"):
        import pyarrow.parquet as pq

        with fsspec.open(uri, "rb") as fh:
            for batch in pq.ParquetFile(fh).iter_batches():
                yield from batch.to_pylist()
        return
    with fsspec.open(uri, "rt", encoding="utf-8") as fh:
        if uri.endswith(".csv"):
            yield from csv.DictReader(fh)
            return
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SchemaError(f"line {number}", f"not valid JSON: {exc}") from None
            if not isinstance(row, dict):
                raise SchemaError(f"line {number}", "must be a JSON object")
            yield row


def _read_manifest(uri: str) -> Iterator[SourceItem]:
    rows = _manifest_rows(uri)
    base = uri.rsplit("/", 1)[0] if is_remote(uri) else str(Path(uri).resolve().parent)
    for number, row in enumerate(rows, start=1):
        column = next((c for c in URI_COLUMNS if row.get(c)), None)
        if column is None:
            raise SchemaError(f"row {number}", f"needs one of the columns {', '.join(URI_COLUMNS)}")
        target = str(row[column])
        target = target.removeprefix("file://")
        if not is_remote(target) and not os.path.isabs(target):
            target = f"{base}/{target}" if is_remote(uri) else str(Path(base) / target)
        metadata = {k: str(v) for k, v in row.items() if k != column and v is not None and str(v) != ""}
        yield SourceItem(uri=target, metadata=metadata)


def local_copy(uri: str, cache_dir: str | Path | None) -> Path:
    """A local file holding ``uri``'s bytes: the path itself, or a copy of a remote object in ``cache_dir``."""
    if not is_remote(uri):
        return Path(uri.removeprefix("file://"))
    import fsspec

    target = _cache_path(uri, cache_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        partial = target.with_name(target.name + ".part")
        with fsspec.open(uri, "rb") as src, open(partial, "wb") as dst:
            dst.writelines(iter(lambda: src.read(1 << 20), b""))
        partial.replace(target)
    return target


def _cache_path(uri: str, cache_dir: str | Path | None) -> Path:
    import hashlib
    import tempfile

    folder = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "omnicurate-fetch"
    suffix = Path(uri.rsplit("/", 1)[-1]).suffix
    return folder / (hashlib.sha256(uri.encode()).hexdigest()[:24] + suffix)

