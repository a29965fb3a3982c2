"""Make a new dataset from the samples a SQL predicate selects, copying tar members byte for byte."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.dataset.catalog import fill_storage_columns, query, read_catalog_table, write_catalog
from pipelines.dataset.location import DatasetLocation, as_location
from pipelines.dataset.energon_meta import write_energon_meta
from pipelines.dataset.manifest import read_manifest, write_manifest
from pipelines.dataset.shard_index import SampleReader
from pipelines.dataset.shard_writer import ShardWriter, prune_shards
from schemas.catalog_tables import SCHEMAS
from schemas.config import ShardConfig
from schemas.dataset_format import MANIFEST_FILE, SCHEMA_VERSION, Manifest


def select_keys(dataset: str | Path | DatasetLocation, where: str) -> set[str]:
    """Keys of the kept samples for which ``where`` (SQL over the ``samples`` view) holds."""
    table = query(dataset, f"SELECT key FROM samples WHERE kept AND ({where})")
    return set(table["key"].to_pylist())


def subset_dataset(src: str | Path | DatasetLocation, where: str, out: str | Path | DatasetLocation, *,
                   max_bytes: int | None = None, max_samples: int | None = None) -> Manifest:
    """Write the selected samples to ``out`` as a committed dataset (shards, indexes, catalog, manifest).

    Samples keep their source order; media are copied as stored, never decoded. Shard bounds default
    to the source's largest shard size and sample count.
    """
    source = as_location(src)
    target = as_location(out)
    if target.exists(MANIFEST_FILE):
        target.remove(MANIFEST_FILE)
    manifest = read_manifest(source)
    keys = select_keys(source, where)
    cfg = ShardConfig(max_bytes=max_bytes or max((s.bytes for s in manifest.shards), default=ShardConfig().max_bytes),
                      max_samples=max_samples or max((s.samples for s in manifest.shards), default=1))
    with ShardWriter(target, cfg) as writer:
        for entry in manifest.shards:
            reader = SampleReader(source, shards=[entry.name])
            for key in reader.keys_in_order():
                if key in keys:
                    writer.add_raw(key, reader.read(key))
    entries = writer.entries
    prune_shards(target, entries)

    tables = {}
    for name, schema in SCHEMAS.items():
        table = read_catalog_table(source, name).cast(schema)
        if "key" in table.column_names:
            table = table.filter(pc.is_in(table["key"], value_set=pa.array(sorted(keys), pa.string())))
        elif name in ("clips", "facts"):  # the clips of the subset's media, and their facts
            table = table.filter(pc.is_in(table["clip_id"], value_set=pc.unique(tables["media"]["clip_id"])))
        else:
            table = schema.empty_table()  # quarantined sources belong to the source run, not to a subset
        tables[name] = table
    tables = fill_storage_columns(tables, target)
    origin = pa.table({"source": [source.url], "where": [where], "source_samples": [manifest.total_samples],
                       "source_config_hash": [manifest.config_hash]})
    write_catalog(target, tables, {"subset_origin": origin})
    write_energon_meta(target, entries)
    turns, media = tables["turns"], tables["media"]
    spoken = sum(1 for column in ("user_speech", "assistant_speech") for v in turns[column].to_pylist() if v)
    counts = {"samples": sum(e.samples for e in entries), "rejected": 0, "turns": turns.num_rows,
              "media": media.num_rows, "spoken_messages": spoken, "quarantined": 0, "shards": len(entries),
              "source_samples": manifest.total_samples}
    subset = Manifest(schema_version=SCHEMA_VERSION, config_hash=manifest.config_hash, seed=manifest.seed,
                      counts=counts, shards=entries)
    write_manifest(target, subset)
    return subset
