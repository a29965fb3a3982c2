"""Write curated samples into deterministic WebDataset tars, each committed atomically with its member index."""

from __future__ import annotations

import hashlib
import os
import tarfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Self

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.dataset.location import DatasetLocation, as_location
from pipelines.dataset.energon_meta import sample_offsets_name, write_sample_offsets
from schemas import to_json
from schemas.catalog_tables import SHARD_INDEX
from schemas.config import ShardConfig
from schemas.dataset_format import (
    SAMPLE_JSON,
    SHARDS_DIR,
    SPLIT,
    ShardEntry,
    check_key,
    member_name,
    shard_index_name,
    shard_name,
    split_member,
)
from schemas.dialogue import CuratedSample, Sample
from schemas.validation import SchemaError

BLOCK = 512
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)
FIXED_MTIME = 946684800
"""2000-01-01T00:00:00Z: every member gets the same mtime so equal input gives equal bytes."""
COPY_CHUNK = 1024 * 1024


@dataclass(slots=True, frozen=True)
class _Member:
    name: str
    size: int
    data: bytes | None
    path: str | None
    header: bytes

    @property
    def tar_bytes(self) -> int:
        return len(self.header) + _padded(self.size)


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = FIXED_MTIME
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def referenced_members(sample: Sample) -> set[str]:
    """Member suffixes the dialogue record points at: media parts, speech, media items, memory refs."""
    refs: set[str] = {m.member for m in sample.dialogue.media}
    for turn in sample.dialogue.turns:
        for message in (turn.user, turn.assistant):
            refs.update(p.member for p in message.parts if p.member)
            if message.speech_member:
                refs.add(message.speech_member)
        refs.update(r.member for r in turn.memory_refs if r.member)
    return refs


def sample_members(curated: CuratedSample) -> list[_Member]:
    """The tar members of one sample in their written order (sorted by suffix, ``KEY.json`` first).

    Refuses a bad key, an unknown or unsafe suffix, and a referenced member without a file.
    """
    sample = curated.sample
    key = check_key(sample.key)
    if SAMPLE_JSON in curated.files:
        raise SchemaError("files.json", "the dialogue record is written by the shard writer, not given as a file")
    for suffix in curated.files:
        split_member(member_name(key, suffix))
    missing = sorted(referenced_members(sample) - set(curated.files))
    if missing:
        raise SchemaError("files", f"sample {key} refers to members without files: {', '.join(missing)}")
    record = to_json(sample).encode()
    members = [_Member(member_name(key, SAMPLE_JSON), len(record), record, None,
                       _tar_header(member_name(key, SAMPLE_JSON), len(record)))]
    for suffix in sorted(curated.files):
        path = curated.files[suffix]
        size = os.path.getsize(path)
        name = member_name(key, suffix)
        members.append(_Member(name, size, None, path, _tar_header(name, size)))
    return members


class _HashingWriter:
    """Counts and hashes everything written through it."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.position = 0

    def write(self, data: bytes | memoryview) -> None:
        self.raw.write(data)
        self.sha256.update(data)
        self.position += len(data)


class ShardWriter:
    """Packs samples into ``shards/train-NNNNNN.tar``, closing a shard before it would pass
    ``cfg.max_bytes`` or hold more than ``cfg.max_samples`` samples.

    A sample bigger than ``max_bytes`` on its own gets a shard to itself. Same samples in the same
    order give byte-identical shards. Only kept samples belong here; rejected ones are refused.
    """

    def __init__(self, out: str | DatasetLocation, cfg: ShardConfig | None = None, *, split: str = SPLIT,
                 reuse_committed: bool = False, partition: int | None = None):
        """``reuse_committed``: a shard already in place whose index lists exactly the members this
        writer would put in it is kept as it is, not written again (how a resumed run skips committed work).
        ``partition``: the shards are that partition's (``train-p00003-000000.tar``)."""
        self.location = as_location(out)
        self.partition = partition
        self._reuse = reuse_committed
        self._held: _CommittedShard | None = None
        self.reused: list[str] = []
        """Names of the shards kept from an earlier run."""
        self.cfg = cfg or ShardConfig()
        self.split = split
        self.location.makedirs(SHARDS_DIR)
        self._entries: list[ShardEntry] = []
        self._keys: set[str] = set()
        self._stack: ExitStack | None = None
        self._out: _HashingWriter | None = None
        self._index_rows: list[tuple[str, str, int, int]] = []
        self._sample_offsets: list[int] = []
        self._samples_in_shard = 0
        self._closed = False

    @property
    def entries(self) -> list[ShardEntry]:
        """Shards committed so far."""
        return list(self._entries)

    def add(self, curated: CuratedSample) -> str:
        """Append one sample; returns the name of the shard it went into."""
        if not curated.kept:
            raise ValueError(f"sample {curated.sample.key} was rejected by a filter; only kept samples go into shards")
        return self._append(curated.sample.key, sample_members(curated))

    def add_raw(self, key: str, parts: dict[str, bytes]) -> str:
        """Append a sample copied from another shard as {suffix: bytes}, without re-encoding anything.

        The ``json`` record is parsed strictly and must name this key and have every member it refers to.
        """
        from schemas import from_json

        check_key(key)
        if SAMPLE_JSON not in parts:
            raise SchemaError("json", f"sample {key} has no {SAMPLE_JSON} record")
        sample = from_json(Sample, parts[SAMPLE_JSON])
        if sample.key != key:
            raise SchemaError("key", f"record of {sample.key} given as {key}")
        missing = sorted(referenced_members(sample) - set(parts))
        if missing:
            raise SchemaError("files", f"sample {key} refers to members it lacks: {', '.join(missing)}")
        members = []
        for suffix in sorted(parts):
            name = member_name(key, suffix)
            split_member(name)
            data = parts[suffix]
            members.append(_Member(name, len(data), data, None, _tar_header(name, len(data))))
        return self._append(key, members)

    def _append(self, key: str, members: list[_Member]) -> str:
        if self._closed:
            raise RuntimeError("ShardWriter is closed")
        if key in self._keys:
            raise ValueError(f"duplicate sample key {key}: keys are unique within a dataset")
        size = sum(m.tar_bytes for m in members)
        position = self._held.position if self._held is not None else self._out.position if self._out else None
        if position is not None and (
                self._samples_in_shard >= self.cfg.max_samples
                or position + size + len(END_OF_ARCHIVE) > self.cfg.max_bytes):
            self._finish_shard()
        if self._out is None and self._held is None:
            self._start_shard()
        if self._held is not None:
            if self._held.hold(key, members, size):
                self._keys.add(key)
                self._samples_in_shard += 1
                return shard_name(len(self._entries), self.split, self.partition)
            self._write_held()
        self._write_members(key, members)
        self._keys.add(key)
        self._samples_in_shard += 1
        return shard_name(len(self._entries), self.split, self.partition)

    def _write_members(self, key: str, members: list[_Member]) -> None:
        assert self._out is not None
        self._sample_offsets.append(self._out.position)
        for m in members:
            self._out.write(m.header)
            self._index_rows.append((key, m.name, self._out.position, m.size))
            self._copy_data(m)
            pad = _padded(m.size) - m.size
            if pad:
                self._out.write(b"\0" * pad)

    def _copy_data(self, m: _Member) -> None:
        assert self._out is not None
        if m.data is not None:
            self._out.write(m.data)
            return
        assert m.path is not None
        copied = 0
        with open(m.path, "rb") as f:
            while chunk := f.read(COPY_CHUNK):
                self._out.write(chunk)
                copied += len(chunk)
        if copied != m.size:
            raise OSError(f"{m.path} changed size while being sharded ({m.size} -> {copied} bytes)")

    def _start_shard(self) -> None:
        name = shard_name(len(self._entries), self.split, self.partition)
        self._samples_in_shard = 0
        if self._reuse and self.location.exists(SHARDS_DIR, name) and self.location.exists(
                SHARDS_DIR, shard_index_name(name)):
            index = pq.read_table(self.location.open(SHARDS_DIR, shard_index_name(name)))
            self._held = _CommittedShard(expected=list(zip(index.column("member").to_pylist(),
                                                           index.column("size").to_pylist())))
            return
        self._open_output(name)

    def _write_held(self) -> None:
        """The shard in place differs from what this run makes: write it after all, from the held samples."""
        assert self._held is not None
        held, self._held = self._held, None
        self._open_output(shard_name(len(self._entries), self.split, self.partition))
        for key, members in held.samples:
            self._write_members(key, members)
            self._samples_in_shard += 1

    def _open_output(self, name: str) -> None:
        self._stack = ExitStack()
        raw = self._stack.enter_context(self.location.atomic_writer(SHARDS_DIR, name))
        self._out = _HashingWriter(raw)
        self._index_rows = []
        self._sample_offsets = []
        self._samples_in_shard = 0

    def _finish_shard(self) -> None:
        name = shard_name(len(self._entries), self.split, self.partition)
        if self._held is not None:
            if self._held.complete and self._held.matches_tar(self.location.open(SHARDS_DIR, name)):
                self._entries.append(ShardEntry(
                    name=name, sha256=_sha256_stream(self.location.open(SHARDS_DIR, name)),
                    bytes=self.location.size(SHARDS_DIR, name), samples=self._samples_in_shard,
                    index=shard_index_name(name)))
                self.reused.append(name)
                self._held = None
                return
            self._write_held()
        assert self._out is not None and self._stack is not None
        write_sample_offsets(self.location, name, [*self._sample_offsets, self._out.position])
        self._out.write(END_OF_ARCHIVE)
        index = shard_index_name(name)
        write_index(self.location, index, self._index_rows)
        entry = ShardEntry(name=name, sha256=self._out.sha256.hexdigest(), bytes=self._out.position,
                           samples=self._samples_in_shard, index=index)
        self._stack.close()  # flush, fsync and rename into place
        self._entries.append(entry)
        self._stack = None
        self._out = None

    def close(self) -> list[ShardEntry]:
        """Commit the open shard; returns every shard written, in order."""
        if not self._closed:
            if self._out is not None or self._held is not None:
                self._finish_shard()
            self._closed = True
        return list(self._entries)

    def abort(self) -> None:
        """Drop the open shard without committing it (shards already committed stay)."""
        if self._stack is not None:
            self._stack.__exit__(RuntimeError, RuntimeError("shard aborted"), None)
        self._stack = None
        self._out = None
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_index(location: DatasetLocation, index_name: str, rows: list[tuple[str, str, int, int]]) -> None:
    """Write ``shards/<index_name>`` (key, member, offset, size) atomically."""
    keys, members, offsets, sizes = (list(col) for col in zip(*rows)) if rows else ([], [], [], [])
    table = pa.table({"key": keys, "member": members, "offset": offsets, "size": sizes}, schema=SHARD_INDEX)
    with location.atomic_writer(SHARDS_DIR, index_name) as f:
        pq.write_table(table, f, compression="zstd")


def prune_shards(location: DatasetLocation, entries: list[ShardEntry], prefix: str = "") -> None:
    """Remove files under ``shards/`` whose names start with ``prefix`` (a split and partition, or anything)
    that belong to no shard of ``entries`` (left by an earlier, larger run)."""
    current = {n for e in entries for n in (e.name, e.index, sample_offsets_name(e.name))}
    for name in location.listdir(SHARDS_DIR):
        if name.startswith(prefix) and name not in current:
            location.remove(SHARDS_DIR, name)


@dataclass(slots=True)
class _CommittedShard:
    """A shard found in place, held back while the samples this run adds match its index."""

    expected: list[tuple[str, int]]
    """(member name, size) of every member, in tar order, from the shard's index."""
    samples: list[tuple[str, list[_Member]]] = field(default_factory=list)
    consumed: int = 0
    position: int = 0

    def hold(self, key: str, members: list[_Member], size: int) -> bool:
        """Take the sample if its members are the next ones the shard holds."""
        names = [(m.name, m.size) for m in members]
        if self.expected[self.consumed:self.consumed + len(names)] != names:
            return False
        self.samples.append((key, members))
        self.consumed += len(names)
        self.position += size
        return True

    @property
    def complete(self) -> bool:
        return self.consumed == len(self.expected)

    def matches_tar(self, f: BinaryIO) -> bool:
        """The tar in place holds these members with these sizes, and the same dialogue records byte for byte
        (an index can outlive its tar when a run dies between writing the two)."""
        records = {m.name: m.data for _, members in self.samples for m in members if m.data is not None}
        found = []
        with f, tarfile.open(fileobj=f, mode="r:") as tar:
            for info in tar:
                found.append((info.name, info.size))
                if info.name in records:
                    data = tar.extractfile(info)
                    if data is None or data.read() != records[info.name]:
                        return False
        return found == self.expected


def _sha256_stream(f: BinaryIO, chunk: int = COPY_CHUNK) -> str:
    h = hashlib.sha256()
    with f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: str | Path, chunk: int = COPY_CHUNK) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
