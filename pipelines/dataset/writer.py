"""Write a dataset in commit order: each partition's shards + indexes and catalog fragment, then Energon
metadata, the catalog views and, last, the manifest."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from pipelines.dataset.catalog import CatalogBuilder, prune_catalog, write_catalog_fragment, write_catalog_views
from pipelines.dataset.energon_meta import write_energon_meta
from pipelines.dataset.location import DatasetLocation, as_location
from pipelines.dataset.manifest import write_manifest
from pipelines.dataset.shard_writer import ShardWriter, prune_shards
from schemas.catalog_tables import SCHEMAS
from schemas.config import ShardConfig
from schemas.dataset_format import CATALOG_TABLES, MANIFEST_FILE, SCHEMA_VERSION, SPLIT, Manifest, ShardEntry
from schemas.dataset_format import partition_prefix
from schemas.dialogue import CuratedSample
from schemas.media import AnnotatedClip, QuarantineRecord

SAMPLE_COUNTS = ("samples", "rejected", "turns", "media", "spoken_messages")


@dataclass(kw_only=True, slots=True)
class PartitionFragment:
    """What one partition committed: its shards and its counts."""

    partition: int
    shards: list[ShardEntry] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    tables: list[str] = field(default_factory=list)
    """Catalog tables the fragment wrote (the core ones plus extra ones such as the ledger)."""


def fragment_name(partition: int) -> str:
    return f"p{partition:05d}"


def _count(curated: CuratedSample, counts: Counter) -> None:
    if curated.kept:
        dialogue = curated.sample.dialogue
        counts["samples"] += 1
        counts["turns"] += len(dialogue.turns)
        counts["media"] += len(dialogue.media)
        counts["spoken_messages"] += sum(bool(m.speech_member) for t in dialogue.turns for m in (t.user, t.assistant))
    else:
        counts["rejected"] += 1


def write_partition(out: str | Path | DatasetLocation, partition: int, samples: Iterable[CuratedSample],
                    quarantine: Iterable[QuarantineRecord], *, shard: ShardConfig | None = None,
                    extra_tables: dict[str, pa.Table] | None = None,
                    clips: Iterable[AnnotatedClip] = ()) -> PartitionFragment:
    """Shard a partition's kept samples (``train-pNNNNN-*.tar``) and write its catalog fragment (``clips``: the
    clips its dialogues were made from, with their transcripts and facts); shards of the partition already in
    place that match are kept (a resumed run), stale ones of the partition removed."""
    location = as_location(out)
    catalog = CatalogBuilder()
    counts: Counter = Counter({name: 0 for name in SAMPLE_COUNTS})
    with ShardWriter(location, shard, reuse_committed=True, partition=partition) as writer:
        for curated in samples:
            catalog.add(curated)
            if curated.kept:
                writer.add(curated)
            _count(curated, counts)
    entries = writer.entries
    prune_shards(location, entries, prefix=f"{SPLIT}-{partition_prefix(partition)}")
    quarantine = list(quarantine)
    catalog.add_quarantine(quarantine)
    catalog.add_clips(clips)
    counts["quarantined"] = len(quarantine)
    counts["shards"] = len(entries)
    tables = {**catalog.tables(location, [e.name for e in entries]), **(extra_tables or {})}
    write_catalog_fragment(location, fragment_name(partition), tables)
    return PartitionFragment(partition=partition, shards=entries, counts=dict(counts), tables=sorted(tables))


def commit_partitions(out: str | Path | DatasetLocation, fragments: list[PartitionFragment], *, config_hash: str,
                      seed: int, extra_counts: dict[str, int] | None = None,
                      extra_schemas: dict[str, pa.Schema] | None = None,
                      eval_sets: dict[str, str] | None = None) -> Manifest:
    """Commit a partitioned dataset: drop what no fragment holds, write Energon metadata and the catalog
    views, then the manifest listing every shard (the commit point of the whole run) and where its eval sets
    are (``eval_sets``: name -> path relative to the dataset)."""
    location = as_location(out)
    entries = sorted((e for f in fragments for e in f.shards), key=lambda e: e.name)
    prune_shards(location, entries)
    tables = {name for f in fragments for name in f.tables} | set(CATALOG_TABLES)
    prune_catalog(location, {fragment_name(f.partition) for f in fragments}, tables)
    schemas = {name: SCHEMAS[name] for name in CATALOG_TABLES} | dict(extra_schemas or {})
    write_catalog_views(location, {name: schemas[name] for name in sorted(tables)})
    write_energon_meta(location, entries)
    counts: Counter = Counter()
    for f in fragments:
        counts.update(f.counts)
    counts["shards"] = len(entries)
    clash = sorted(set(extra_counts or {}) & set(counts))
    if clash:
        raise ValueError(f"extra_counts may not replace the dataset's own counts: {', '.join(clash)}")
    counts.update(extra_counts or {})
    manifest = Manifest(schema_version=SCHEMA_VERSION, config_hash=config_hash, seed=seed, counts=dict(counts),
                        shards=entries, eval_sets=dict(eval_sets or {}))
    write_manifest(location, manifest)
    return manifest


def write_dataset(out: str | Path | DatasetLocation, samples: Iterable[CuratedSample],
                  quarantine: Iterable[QuarantineRecord], *, shard: ShardConfig | None = None,
                  config_hash: str = "", seed: int = 0, extra_tables: dict[str, pa.Table] | None = None,
                  extra_counts: dict[str, int] | None = None, reuse_committed: bool = False,
                  clips: Iterable[AnnotatedClip] = ()) -> Manifest:
    """Shard the kept samples, catalog all of them (rejected ones too), the quarantine and the clips the
    samples were made from (their transcripts and facts), commit.

    ``samples`` is consumed once. Re-writing an existing dataset first removes its manifest, so the
    directory never looks committed while it is half rewritten.
    """
    location = as_location(out)
    location.remove(MANIFEST_FILE)
    catalog = CatalogBuilder()
    counts = {"samples": 0, "rejected": 0, "turns": 0, "media": 0, "spoken_messages": 0, "quarantined": 0}
    with ShardWriter(location, shard, reuse_committed=reuse_committed) as writer:
        for curated in samples:
            catalog.add(curated)
            if curated.kept:
                writer.add(curated)
                dialogue = curated.sample.dialogue
                counts["samples"] += 1
                counts["turns"] += len(dialogue.turns)
                counts["media"] += len(dialogue.media)
                counts["spoken_messages"] += sum(bool(m.speech_member) for t in dialogue.turns
                                                 for m in (t.user, t.assistant))
            else:
                counts["rejected"] += 1
    entries = writer.entries
    prune_shards(location, entries)
    quarantine = list(quarantine)
    counts["quarantined"] = len(quarantine)
    counts["shards"] = len(entries)
    clash = sorted(set(extra_counts or {}) & set(counts))
    if clash:
        raise ValueError(f"extra_counts may not replace the dataset's own counts: {', '.join(clash)}")
    counts.update(extra_counts or {})
    catalog.add_quarantine(quarantine)
    catalog.add_clips(clips)
    catalog.write(location, extra_tables)
    write_energon_meta(location, entries)
    manifest = Manifest(schema_version=SCHEMA_VERSION, config_hash=config_hash, seed=seed, counts=counts,
                        shards=entries)
    write_manifest(location, manifest)
    return manifest
