"""Sources hashed into partitions, each partition's source list staged on the work location.

A source's partition depends only on its URI and the partition count, which is configuration (or follows
from the number of sources listed), never on the cluster: the same input gives the same partitions, so the
same output, on any number of nodes.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from curators.sources import iter_sources
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


SPILL_PARTITION_BYTES = 1 << 16
"""Listing lines a partition buffers in the driver before they are appended to its spill file."""
SPILL_TOTAL_BYTES = 1 << 23
"""Listing lines all partitions buffer together before every buffer is flushed (many partitions, little memory)."""


def uri_hash(uri: str) -> int:
    """A source's 64-bit hash, the same in every process (unlike Python's ``hash``)."""
    return int.from_bytes(hashlib.blake2b(uri.encode(), digest_size=8).digest(), "big")


def partition_of(uri: str, count: int) -> int:
    """Stable partition of a source: a hash of its URI, independent of Python's hash seed."""
    return uri_hash(uri) % count


def partition_count(cfg: CurateConfig, sources: int) -> int:
    return cfg.partitions or max(1, math.ceil(sources / cfg.partition_sources))


def _sources_file(partition: int) -> str:
    return f"p{partition:05d}.jsonl"


@dataclass(slots=True)
class _Listed:
    """What the driver keeps of the listing as it streams past: two numbers."""

    sources: int = 0
    sound: bool = False


class _PartitionSpill:
    """Each partition's listing lines on local scratch: buffered in memory up to ``partition_bytes`` per partition
    (and ``total_bytes`` for all), then appended to the partition's spill file."""

    def __init__(self, folder: Path, partition_bytes: int, total_bytes: int):
        self.folder, self.partition_bytes, self.total_bytes = folder, partition_bytes, total_bytes
        self.buffers: defaultdict[int, list[str]] = defaultdict(list)
        self.buffered: defaultdict[int, int] = defaultdict(int)
        self.total = 0

    def add(self, partition: int, line: str) -> None:
        self.buffers[partition].append(line)
        self.buffered[partition] += len(line)
        self.total += len(line)
        if self.buffered[partition] >= self.partition_bytes:
            self._flush(partition)
        if self.total >= self.total_bytes:
            for held in list(self.buffers):
                self._flush(held)

    def _flush(self, partition: int) -> None:
        with open(self.folder / _sources_file(partition), "a", encoding="utf-8") as f:
            f.writelines(self.buffers.pop(partition))
        self.total -= self.buffered.pop(partition)

    def lines(self, partition: int) -> list[str]:
        """The partition's lines in the order they were added."""
        if partition in self.buffers:
            self._flush(partition)
        path = self.folder / _sources_file(partition)
        if not path.exists():
            return []
        with open(path, encoding="utf-8") as f:
            return f.readlines()


def _hashed_listing(input: str, listed: _Listed) -> Iterator[tuple[int, str]]:
    """Each source's URI hash and staged line, in listing order; ``listed`` counts them as they pass."""
    from pipelines.media_stage import may_carry_sound

    for item in iter_sources(input):
        listed.sources += 1
        listed.sound = listed.sound or may_carry_sound(item)
        yield uri_hash(item.uri), f"{to_json(item)}\n"


def _spilled(rows: Iterator[tuple[int, str]], path: Path) -> Iterator[tuple[int, str]]:
    """Spill ``rows`` whole to ``path`` now (so they are counted), and read them back one by one."""
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{key}\t{line}" for key, line in rows)
    return _read_spilled(path)


def _read_spilled(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8") as f:
        for row in f:
            key, line = row.split("\t", 1)  # a staged line is JSON: a tab inside it is escaped
            yield int(key), line


def stage_partitions(cfg: CurateConfig, work: DatasetLocation, *, partition_bytes: int = SPILL_PARTITION_BYTES,
                     total_bytes: int = SPILL_TOTAL_BYTES) -> PartitionPlan:
    """List the input, hash every source into its partition and stage each partition's list on ``work``.

    The listing streams through the driver: each source's line goes to its partition's buffer, spilled to local
    scratch when full (see ``_PartitionSpill``); then each partition's lines are sorted by URI (equal URIs in
    listing order) and staged, one partition at a time. The driver never holds the whole listing. With
    ``partitions: 0`` the count follows from the number of sources, so the listing is spilled once to count it.
    """
    with tempfile.TemporaryDirectory(prefix="omnicurate-listing-") as scratch:
        listed = _Listed()
        rows = _hashed_listing(cfg.input, listed)
        if not cfg.partitions:
            rows = _spilled(rows, Path(scratch) / "listing.tsv")
        count = partition_count(cfg, listed.sources)
        spill = _PartitionSpill(Path(scratch), partition_bytes, total_bytes)
        sizes = [0] * count
        for key, line in rows:
            partition = key % count
            sizes[partition] += 1
            spill.add(partition, line)
        for partition in range(count):
            lines = sorted(spill.lines(partition), key=lambda line: json.loads(line)["uri"])
            work.write_bytes((SOURCES_DIR, _sources_file(partition)), "".join(lines).encode())
    return PartitionPlan(sizes=sizes, sound=listed.sound)


def partition_sources(work: DatasetLocation, partition: int) -> list[SourceItem]:
    """A partition's staged sources, sorted by URI."""
    text = work.read_bytes(SOURCES_DIR, _sources_file(partition)).decode()
    return sorted((from_json(SourceItem, line) for line in text.splitlines() if line), key=lambda s: s.uri)
