"""Check a committed dataset end to end: shard hashes, tar contents = indexes = manifest = catalog, turn members."""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections import defaultdict
from pathlib import Path

import duckdb
import pyarrow as pa

from pipelines.dataset.catalog import query, read_catalog_table
from pipelines.dataset.location import DatasetLocation, as_location
from pipelines.dataset.energon_meta import INFO_FILE, read_sample_offsets, sample_offsets_name
from pipelines.dataset.manifest import read_manifest
from pipelines.dataset.shard_index import iter_tar_members, read_index
from pipelines.dataset.shard_writer import referenced_members
from schemas import SchemaError, from_json
from schemas.catalog_tables import SCHEMAS
from schemas.dataset_format import (
    CATALOG_DB,
    CATALOG_SQL,
    CATALOG_TABLES,
    NV_META_DIR,
    SAMPLE_JSON,
    SHARDS_DIR,
    Manifest,
    ShardEntry,
)
from schemas.dialogue import Sample


class _HashingReader:
    """Hashes every byte read through it, so one pass both parses and re-hashes a shard."""

    def __init__(self, raw):
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.sha256.update(data)
        self.bytes += len(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def _check_shard(location: DatasetLocation, entry: ShardEntry, problems: list[str]) -> dict[str, set[str]]:
    """Re-hash one shard and compare it with its index; returns {key: {suffix}} of what it holds."""
    held: dict[str, set[str]] = defaultdict(set)
    referenced: dict[str, set[str]] = {}
    if not location.exists(SHARDS_DIR, entry.name):
        problems.append(f"{entry.name}: listed in the manifest but missing")
        return held
    members = []
    sample_starts: list[int] = []
    end_of_data = 0
    with location.open(SHARDS_DIR, entry.name) as raw:
        reader = _HashingReader(raw)
        try:
            for m in iter_tar_members(reader):
                if m.suffix == SAMPLE_JSON:
                    try:
                        sample = from_json(Sample, m.data)
                        if sample.key != m.key:
                            problems.append(f"{entry.name}: {m.name} holds the record of key {sample.key}")
                        referenced[m.key] = referenced_members(sample)
                    except SchemaError as exc:
                        problems.append(f"{entry.name}: {m.name} is not a valid sample record: {exc}")
                if m.key not in held:
                    sample_starts.append(m.header_offset)
                held[m.key].add(m.suffix)
                members.append((m.key, m.name, m.offset, len(m.data)))
                end_of_data = m.offset + -(-len(m.data) // 512) * 512
        except (SchemaError, tarfile.TarError, OSError) as exc:
            problems.append(f"{entry.name}: unreadable tar: {exc}")
        reader.drain()
    for key, needed in referenced.items():
        for suffix in sorted(needed - held[key]):
            problems.append(f"{entry.name}: record {key}.json refers to missing member {key}.{suffix}")
    if reader.sha256.hexdigest() != entry.sha256:
        problems.append(f"{entry.name}: sha256 {reader.sha256.hexdigest()[:16]}... differs from the manifest's "
                        f"{entry.sha256[:16]}...")
    if reader.bytes != entry.bytes:
        problems.append(f"{entry.name}: {reader.bytes} bytes, the manifest says {entry.bytes}")
    if len(held) != entry.samples:
        problems.append(f"{entry.name}: holds {len(held)} samples, the manifest says {entry.samples}")
    if not location.exists(SHARDS_DIR, entry.index):
        problems.append(f"{entry.name}: member index {entry.index} is missing")
    else:
        index = read_index(location, entry.name)
        rows = list(zip(*(index[c].to_pylist() for c in ("key", "member", "offset", "size"))))
        if rows != members:
            problems.append(f"{entry.name}: member index {entry.index} does not match the tar's members")
    if not location.exists(SHARDS_DIR, sample_offsets_name(entry.name)):
        problems.append(f"{entry.name}: Energon tar index {sample_offsets_name(entry.name)} is missing")
    elif read_sample_offsets(location, entry.name) != [*sample_starts, end_of_data]:
        problems.append(f"{entry.name}: Energon tar index {sample_offsets_name(entry.name)} does not match "
                        "the samples' positions")
    return held


def _read_catalog_table(location: DatasetLocation, name: str, problems: list[str]):
    try:
        table = read_catalog_table(location, name)
    except FileNotFoundError:
        problems.append(f"catalog: table {name} is missing")
        return None
    except pa.ArrowInvalid:
        problems.append(f"catalog: table {name} has fragments of different schemas")
        return None
    if not table.schema.remove_metadata().equals(SCHEMAS[name].remove_metadata()):
        problems.append(f"catalog: table {name} does not match schemas.catalog_tables")
        return None
    return table


def _check_catalog(location: DatasetLocation, manifest: Manifest, held: dict[str, set[str]],
                   shard_of: dict[str, str], problems: list[str]) -> None:
    if not location.exists(CATALOG_DB):
        problems.append(f"catalog: {CATALOG_DB} is missing")
    if not location.exists(CATALOG_SQL):
        problems.append(f"catalog: {CATALOG_SQL} is missing")
    tables = {name: _read_catalog_table(location, name, problems) for name in CATALOG_TABLES}
    samples = tables["samples"]
    if samples is None:
        return
    all_keys = samples["key"].to_pylist()
    if location.exists(CATALOG_DB):
        try:
            viewed = query(location, "SELECT count(*) AS n FROM samples")["n"][0].as_py()
            if viewed != len(all_keys):
                problems.append(f"catalog: the samples view shows {viewed} rows, its files hold {len(all_keys)}")
        except duckdb.Error as exc:
            problems.append(f"catalog: {CATALOG_DB} views do not resolve: {exc}")
    if len(set(all_keys)) != len(all_keys):
        problems.append("catalog: samples has duplicate keys")
    kept = {k: s for k, s, ok in zip(all_keys, samples["shard"].to_pylist(), samples["kept"].to_pylist()) if ok}
    if len(kept) != manifest.total_samples:
        problems.append(f"catalog: {len(kept)} kept samples, the manifest's shards hold {manifest.total_samples}")
    for key in sorted(set(kept) - set(held))[:20]:
        problems.append(f"catalog: kept sample {key} is in no shard")
    for key in sorted(set(held) - set(kept))[:20]:
        problems.append(f"{shard_of[key]}: sample {key} is not in the catalog as kept")
    for key, shard in kept.items():
        if key in shard_of and shard != shard_of[key]:
            problems.append(f"catalog: sample {key} is catalogued in {shard} but stored in {shard_of[key]}")
    known = set(all_keys)
    for name in ("turns", "media", "verdicts", "lineage"):
        table = tables[name]
        if table is None:
            continue
        orphans = sorted(set(table["key"].to_pylist()) - known)
        for key in orphans[:20]:
            problems.append(f"catalog: {name} has rows for key {key}, which is not a sample")
    turns = tables["turns"]
    if turns is not None:
        columns = {c: turns[c].to_pylist() for c in
                   ("key", "turn", "user_media", "user_speech", "assistant_speech", "memory_members")}
        for i, key in enumerate(columns["key"]):
            if key not in kept or key not in held:
                continue
            refs = [*columns["user_media"][i], *columns["memory_members"][i],
                    *(m for m in (columns["user_speech"][i], columns["assistant_speech"][i]) if m)]
            for member in refs:
                if member not in held[key]:
                    problems.append(f"{shard_of[key]}: turn {columns['turn'][i]} of {key} refers to "
                                    f"missing member {key}.{member}")
    media = tables["media"]
    if media is not None:
        for key, member in zip(media["key"].to_pylist(), media["member"].to_pylist()):
            if key in kept and key in held and member not in held[key]:
                problems.append(f"{shard_of[key]}: media member {key}.{member} is missing")


def validate_dataset(dataset: str | Path | DatasetLocation) -> list[str]:
    """Every problem found, one line each; an empty list means the dataset is sound."""
    location = as_location(dataset)
    problems: list[str] = []
    try:
        manifest = read_manifest(location)
    except (FileNotFoundError, SchemaError) as exc:
        return [f"manifest: {exc}"]
    held: dict[str, set[str]] = {}
    shard_of: dict[str, str] = {}
    for entry in manifest.shards:
        for key, suffixes in _check_shard(location, entry, problems).items():
            if key in held:
                problems.append(f"{entry.name}: key {key} is also in {shard_of[key]}")
            held[key] = suffixes
            shard_of[key] = entry.name
    listed = {n for e in manifest.shards for n in (e.name, e.index, sample_offsets_name(e.name))}
    for name in location.listdir(SHARDS_DIR):
        if name not in listed and not name.startswith("."):
            problems.append(f"{name}: in shards/ but not in the manifest")
    if manifest.counts.get("samples", manifest.total_samples) != manifest.total_samples:
        problems.append(f"manifest: counts.samples = {manifest.counts['samples']}, shards hold "
                        f"{manifest.total_samples}")
    _check_catalog(location, manifest, held, shard_of, problems)
    if location.exists(NV_META_DIR, INFO_FILE):
        info = json.loads(location.read_bytes(NV_META_DIR, INFO_FILE))
        expected = {f"{SHARDS_DIR}/{e.name}": e.samples for e in manifest.shards}
        if info.get("shard_counts") != expected:
            problems.append(f"{NV_META_DIR}/{INFO_FILE}: shard counts differ from the manifest")
    return problems
