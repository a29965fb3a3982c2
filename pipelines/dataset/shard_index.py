"""Read shards safely: stream members with checked names, or fetch one sample through the member index."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyarrow.parquet as pq

from pipelines.dataset.location import DatasetLocation, as_location
from schemas.catalog_tables import SHARD_INDEX
from schemas.dataset_format import SHARDS_DIR, shard_index_name, split_member
from schemas.validation import SchemaError


@dataclass(slots=True, frozen=True)
class TarMember:
    name: str
    key: str
    suffix: str
    offset: int
    """Offset of the member's data in the tar."""
    data: bytes
    header_offset: int = 0
    """Offset of the member's first header block (its pax header, when it has one)."""


def iter_tar_members(fileobj: BinaryIO) -> Iterator[TarMember]:
    """Stream the members of a tar, refusing anything but flat regular files with known member names.

    Names are never used as paths: a directory, a link, ``../x`` or ``/etc/x`` raises SchemaError.
    """
    with tarfile.open(fileobj=fileobj, mode="r|") as tar:
        for info in tar:
            if not info.isreg():
                raise SchemaError("member", f"{info.name!r:.120} is not a regular file (type {info.type!r})")
            key, suffix = split_member(info.name)
            f = tar.extractfile(info)
            assert f is not None
            yield TarMember(info.name, key, suffix, info.offset_data, f.read(), info.offset)


def iter_tar_samples(fileobj: BinaryIO) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Group consecutive members by key: (key, {suffix: bytes}). A key that comes back later is an error."""
    seen: set[str] = set()
    key: str | None = None
    parts: dict[str, bytes] = {}
    for m in iter_tar_members(fileobj):
        if m.key != key:
            if key is not None:
                yield key, parts
            if m.key in seen:
                raise SchemaError("member", f"key {m.key} appears in two places of the shard")
            seen.add(m.key)
            key, parts = m.key, {}
        if m.suffix in parts:
            raise SchemaError("member", f"member {m.name} appears twice")
        parts[m.suffix] = m.data
    if key is not None:
        yield key, parts


def read_index(dataset: str | Path | DatasetLocation, shard: str):
    """The member index of ``shard`` (a pyarrow Table with key, member, offset, size)."""
    location = as_location(dataset)
    with location.open(SHARDS_DIR, shard_index_name(shard)) as f:
        table = pq.read_table(f)
    if not table.schema.remove_metadata().equals(SHARD_INDEX.remove_metadata()):
        raise SchemaError("index", f"{shard_index_name(shard)} does not have the shard index schema")
    return table


class SampleReader:
    """Random access to samples by key through the shard indexes, reading only the members' bytes."""

    def __init__(self, dataset: str | Path | DatasetLocation, shards: list[str] | None = None):
        self.location = as_location(dataset)
        if shards is None:
            shards = [n.removesuffix(".index.parquet") + ".tar"
                      for n in self.location.listdir(SHARDS_DIR) if n.endswith(".index.parquet")]
        self._where: dict[str, tuple[str, list[tuple[str, int, int]]]] = {}
        for shard in shards:
            index = read_index(self.location, shard)
            for key, member, offset, size in zip(*(index[c].to_pylist() for c in ("key", "member", "offset", "size"))):
                entry = self._where.setdefault(key, (shard, []))
                if entry[0] != shard:
                    raise SchemaError("index", f"key {key} is indexed in {entry[0]} and {shard}")
                entry[1].append((member, offset, size))

    def __contains__(self, key: str) -> bool:
        return key in self._where

    def keys_in_order(self) -> list[str]:
        """Every indexed key, in shard order and in order within each shard."""
        return list(self._where)

    def shard_of(self, key: str) -> str:
        return self._where[key][0]

    def members(self, key: str) -> list[tuple[str, int, int]]:
        """(member name, data offset, size) of each member of ``key``."""
        return list(self._where[key][1])

    def read(self, key: str) -> dict[str, bytes]:
        """{suffix: bytes} of one sample, read by seeking to each member's data."""
        if key not in self._where:
            raise KeyError(f"sample {key} is not in any shard index")
        shard, members = self._where[key]
        out: dict[str, bytes] = {}
        with self.location.open(SHARDS_DIR, shard) as f:
            for member, offset, size in members:
                member_key, suffix = split_member(member)
                if member_key != key:
                    raise SchemaError("index", f"index row {member} does not belong to key {key}")
                f.seek(offset)
                data = f.read(size)
                if len(data) != size:
                    raise EOFError(f"{shard}: member {member} is cut short")
                out[suffix] = data
        return out
