"""Near-duplicate media across partitions on Ray: each partition stages its band rows, one task per band bucket
compares them, and each partition reads back the clips it drops.

Everything lives under ``dedup/`` of the work location (a directory or an ``s3://`` / ``gs://`` prefix)::

    dedup/signatures/p00003.parquet   one row per (band, signature) of partition 3, sorted by bucket
    dedup/duplicates/b0007.parquet    the duplicates bucket 7 found, sorted by the dropped clip's partition
    dedup/duplicates/_done.json       written last: the bucket count and partitions of the finished pass

The driver sends partition numbers and receives counts; no index of the corpus is ever held in one place.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import fields

import pyarrow as pa
import pyarrow.parquet as pq
import ray

from curators.media_dedup import (MAX_HAMMING, Duplicate, MediaSignature, duplicates_among, merge_duplicates,
                                  signature_bands)
from pipelines.dataset.location import DatasetLocation

DEDUP_DIR = "dedup"
SIGNATURES_DIR = "signatures"
DUPLICATES_DIR = "duplicates"
DONE_MARKER = "_done.json"
ROW_GROUP_ROWS = 1024
"""Rows per Parquet row group: a reader filtering one bucket fetches the footer and the few groups whose
bucket range holds it, not the whole file."""
BUCKETS_KEY = b"omnicurate.dedup.buckets"
"""Schema metadata of a signature file: the bucket count its ``bucket`` column was computed for."""

SIGNATURE_SCHEMA = pa.schema([
    ("bucket", pa.int32()),
    ("band", pa.string()),
    ("clip_id", pa.string()),
    ("partition", pa.int32()),
    ("source_uri", pa.string()),
    ("start_s", pa.float64()),
    ("kind", pa.string()),
    ("media_id", pa.string()),
    ("picture_hash", pa.uint64()),
    ("picture_colour", pa.uint32()),
])
DUPLICATE_SCHEMA = pa.schema([
    ("partition", pa.int32()),
    ("clip_id", pa.string()),
    ("source_uri", pa.string()),
    ("start_s", pa.float64()),
    ("duplicate_of", pa.string()),
    ("kept_partition", pa.int32()),
    ("kept_source_uri", pa.string()),
    ("kept_start_s", pa.float64()),
    ("distance", pa.int32()),
    ("reason", pa.string()),
])
_SIGNATURE_FIELDS = tuple(f.name for f in fields(MediaSignature))
_DUPLICATE_FIELDS = tuple(f.name for f in fields(Duplicate))


def signatures_name(partition: int) -> str:
    return f"p{partition:05d}.parquet"


def duplicates_name(bucket: int) -> str:
    return f"b{bucket:04d}.parquet"


def band_bucket(band: str, buckets: int) -> int:
    """The bucket of a band key, the same in every process and on every machine (unlike ``hash()``)."""
    return int.from_bytes(hashlib.blake2b(band.encode(), digest_size=8).digest(), "big") % buckets


def write_signatures(location: DatasetLocation, partition: int, signatures: list[MediaSignature], buckets: int) -> None:
    """Stage one partition's signatures as band rows, atomically; a partition without media writes an empty file,
    so the pass can tell it from one that never finished."""
    if buckets < 1:
        raise ValueError(f"buckets: must be at least 1, got {buckets}")
    strays = sorted({s.partition for s in signatures} - {partition})
    if strays:
        raise ValueError(f"signatures of partitions {strays} handed to partition {partition}")
    rows = sorted(((band_bucket(band, buckets), band, sig) for sig in signatures for band in signature_bands(sig)),
                  key=lambda r: (r[0], r[1], r[2].order))
    columns: dict[str, list] = {"bucket": [r[0] for r in rows], "band": [r[1] for r in rows]}
    for name in _SIGNATURE_FIELDS:
        columns[name] = [getattr(r[2], name) for r in rows]
    table = pa.Table.from_pydict(columns, schema=SIGNATURE_SCHEMA.with_metadata({BUCKETS_KEY: str(buckets)}))
    with location.atomic_writer(DEDUP_DIR, SIGNATURES_DIR, signatures_name(partition)) as f:
        pq.write_table(table, f, row_group_size=ROW_GROUP_ROWS, compression="zstd")


def _read_filtered(location: DatasetLocation, parts: tuple[str, ...], column: str, value: int) -> pa.Table:
    return pq.read_table(location.path(*parts), filesystem=location.fs, filters=[(column, "=", value)])


def _bucket_signatures(location: DatasetLocation, partition: int, bucket: int, buckets: int) -> pa.Table:
    parts = (DEDUP_DIR, SIGNATURES_DIR, signatures_name(partition))
    table = _read_filtered(location, parts, "bucket", bucket)
    written_for = int((table.schema.metadata or {}).get(BUCKETS_KEY, b"0"))
    if written_for != buckets:
        raise ValueError(f"{location.path(*parts)} was written for {written_for} buckets, the pass runs {buckets}")
    return table


@ray.remote(num_cpus=0.5)
def find_bucket_duplicates(location: DatasetLocation, partitions: list[int], bucket: int, buckets: int,
                           max_hamming: int) -> int:
    """Compare the members of every band of one bucket across all partitions; stage what it finds."""
    groups: dict[str, list[MediaSignature]] = defaultdict(list)
    for partition in partitions:
        table = _bucket_signatures(location, partition, bucket, buckets)
        columns = [table[name].to_pylist() for name in _SIGNATURE_FIELDS]
        clips: dict[tuple, MediaSignature] = {}  # a clip's row repeats for each of its bands in the bucket
        for band, row in zip(table["band"].to_pylist(), zip(*columns)):
            sig = clips.get(row)
            if sig is None:
                sig = clips[row] = MediaSignature(**dict(zip(_SIGNATURE_FIELDS, row)))
            groups[band].append(sig)
    # a band with one member holds no pair
    found = merge_duplicates(dup for band in sorted(groups) if len(groups[band]) > 1
                             for dup in duplicates_among(groups[band], max_hamming))
    table = pa.Table.from_pydict({name: [getattr(d, name) for d in found] for name in _DUPLICATE_FIELDS},
                                 schema=DUPLICATE_SCHEMA)
    with location.atomic_writer(DEDUP_DIR, DUPLICATES_DIR, duplicates_name(bucket)) as f:
        pq.write_table(table, f, row_group_size=ROW_GROUP_ROWS, compression="zstd")
    return len(found)


@ray.remote(num_cpus=0.5)
def count_partition_duplicates(location: DatasetLocation, partition: int) -> int:
    return len(duplicates_for(location, partition))


def find_duplicates(location: DatasetLocation, partitions: list[int], buckets: int, *,
                    max_hamming: int = MAX_HAMMING, task_options: dict | None = None) -> int:
    """Find the near-duplicate media across ``partitions`` (their signatures staged with ``write_signatures`` for the
    same ``buckets``) in ``buckets`` Ray tasks; returns how many clips are to be dropped.

    Which copy is kept depends on the signatures only, never on ``buckets`` or on the cluster. A previous pass's
    results are removed first; ``duplicates_for`` reads this pass's once its marker is written.
    """
    from pipelines.ray_runtime import ensure_ray

    if buckets < 1:
        raise ValueError(f"buckets: must be at least 1, got {buckets}")
    if not 0 <= max_hamming <= MAX_HAMMING:
        raise ValueError(f"max_hamming: must be 0..{MAX_HAMMING}, got {max_hamming}")
    ensure_ray()
    partitions = sorted(set(partitions))
    location.remove(DEDUP_DIR, DUPLICATES_DIR)
    options = task_options or {}  # e.g. pinned to the node that sees a local work dir
    ray.get([find_bucket_duplicates.options(**options).remote(location, partitions, b, buckets, max_hamming)
             for b in range(buckets)])
    marker = {"buckets": buckets, "partitions": partitions, "max_hamming": max_hamming}
    location.write_bytes((DEDUP_DIR, DUPLICATES_DIR, DONE_MARKER), json.dumps(marker).encode())
    # a clip met in several buckets counts once: each partition merges its own reports
    return sum(ray.get([count_partition_duplicates.options(**options).remote(location, p) for p in partitions]))


def partition_signatures(location: DatasetLocation, partition: int) -> list[MediaSignature]:
    """One partition's clip signatures as its media stage staged them (one per clip, by keep order)."""
    table = pq.read_table(location.path(DEDUP_DIR, SIGNATURES_DIR, signatures_name(partition)), filesystem=location.fs,
                          columns=list(_SIGNATURE_FIELDS))
    unique = {row["clip_id"]: MediaSignature(**row) for row in table.to_pylist()}
    return sorted(unique.values(), key=lambda s: s.order)


def duplicates_for(location: DatasetLocation, partition: int) -> dict[str, Duplicate]:
    """The clips ``partition`` drops, by clip id, each naming the earliest kept copy any bucket reported."""
    marker_parts = (DEDUP_DIR, DUPLICATES_DIR, DONE_MARKER)
    if not location.exists(*marker_parts):
        raise FileNotFoundError(f"no finished dedup pass under {location.path(DEDUP_DIR)}")
    marker = json.loads(location.read_bytes(*marker_parts))
    if partition not in marker["partitions"]:
        raise ValueError(f"partition {partition} was not part of the dedup pass under {location.path(DEDUP_DIR)}")
    reports = []
    for bucket in range(marker["buckets"]):
        table = _read_filtered(location, (DEDUP_DIR, DUPLICATES_DIR, duplicates_name(bucket)), "partition", partition)
        reports += [Duplicate(**row) for row in table.to_pylist()]
    return {dup.clip_id: dup for dup in merge_duplicates(reports)}
