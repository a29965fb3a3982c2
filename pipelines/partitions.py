"""Sources hashed into partitions, each partition's source list staged on the work location.

A source's partition depends only on its URI and the partition count, which is configuration (or follows
from the number of sources listed), never on the cluster: the same input gives the same partitions, so the
same output, on any number of nodes.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from curators.sources import list_sources
from pipelines.dataset.location import DatasetLocation
from schemas.config import CurateConfig
from schemas.media import SourceItem
from schemas.validation import from_json, to_json

SOURCES_DIR = "sources"


@dataclass(frozen=True, slots=True)
class PartitionPlan:
    """What the driver keeps of a run's sources: one number per partition."""

    sizes: list[int]
    """Sources in each partition."""
    sound: bool
    """Whether any source may carry sound (its name is not an image's), so ASR is needed."""

    @property
    def count(self) -> int:
        return len(self.sizes)

    @property
    def sources(self) -> int:
        return sum(self.sizes)


def partition_of(uri: str, count: int) -> int:
    """Stable partition of a source: a hash of its URI, independent of Python's hash seed."""
    return int.from_bytes(hashlib.blake2b(uri.encode(), digest_size=8).digest(), "big") % count


def partition_count(cfg: CurateConfig, sources: int) -> int:
    return cfg.partitions or max(1, math.ceil(sources / cfg.partition_sources))


def _sources_file(partition: int) -> str:
    return f"p{partition:05d}.jsonl"


def stage_partitions(cfg: CurateConfig, work: DatasetLocation) -> PartitionPlan:
    """List the input, hash every source into its partition and stage each partition's list on ``work``.

    The driver holds the listing and one partition's lines at a time, never every source's line at once.
    """
    from pipelines.media_stage import may_carry_sound

    items = list_sources(cfg.input)
    count = partition_count(cfg, len(items))
    sound = any(map(may_carry_sound, items))
    of = np.fromiter((partition_of(item.uri, count) for item in items), dtype=np.int64, count=len(items))
    order = np.argsort(of, kind="stable")  # listing order (by URI) within each partition
    ends = np.searchsorted(of[order], np.arange(1, count + 1))
    start = 0
    for partition, end in enumerate(ends.tolist()):
        rows = [to_json(items[index]) for index in order[start:end].tolist()]
        work.write_bytes((SOURCES_DIR, _sources_file(partition)), "".join(f"{row}\n" for row in rows).encode())
        start = end
    return PartitionPlan(sizes=np.diff(ends, prepend=0).tolist(), sound=sound)


def partition_sources(work: DatasetLocation, partition: int) -> list[SourceItem]:
    """A partition's staged sources, sorted by URI."""
    text = work.read_bytes(SOURCES_DIR, _sources_file(partition)).decode()
    return sorted((from_json(SourceItem, line) for line in text.splitlines() if line), key=lambda s: s.uri)
