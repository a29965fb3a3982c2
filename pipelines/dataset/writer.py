"""Write a whole dataset in commit order: shards + indexes, catalog, Energon metadata, then the manifest."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa

from pipelines.dataset.catalog import CatalogBuilder
from pipelines.dataset.location import DatasetLocation, as_location
from pipelines.dataset.energon_meta import write_energon_meta
from pipelines.dataset.manifest import write_manifest
from pipelines.dataset.shard_writer import ShardWriter, prune_shards
from schemas.config import ShardConfig
from schemas.dataset_format import MANIFEST_FILE, SCHEMA_VERSION, Manifest
from schemas.dialogue import CuratedSample
from schemas.media import QuarantineRecord


def write_dataset(out: str | Path | DatasetLocation, samples: Iterable[CuratedSample],
                  quarantine: Iterable[QuarantineRecord], *, shard: ShardConfig | None = None,
                  config_hash: str = "", seed: int = 0, extra_tables: dict[str, pa.Table] | None = None,
                  extra_counts: dict[str, int] | None = None, reuse_committed: bool = False) -> Manifest:
    """Shard the kept samples, catalog all of them (rejected ones too) and the quarantine, commit.

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
    catalog.write(location, extra_tables)
    write_energon_meta(location, entries)
    manifest = Manifest(schema_version=SCHEMA_VERSION, config_hash=config_hash, seed=seed, counts=counts,
                        shards=entries)
    write_manifest(location, manifest)
    return manifest
