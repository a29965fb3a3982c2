"""The on-disk dataset contract: file names, member naming, manifest schema. Every reader and writer imports this."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from schemas.validation import SchemaError, require

SCHEMA_VERSION = 2
"""2: a verdict carries a reason ``code`` and a ``detail`` where version 1 had free-text ``reason``."""

MANIFEST_FILE = "manifest.json"
SHARDS_DIR = "shards"
CATALOG_DIR = "catalog"
CATALOG_DB = "catalog.duckdb"
CATALOG_SQL = "catalog.sql"
"""The views of ``catalog.duckdb`` as plain SQL, for a DuckDB that cannot open the file (or an ATTACH)."""
CATALOG_ROOT_VARIABLE = "omnicurate_dataset"
"""DuckDB variable that, when set (``SET VARIABLE omnicurate_dataset = '/data/omni-v1'``), names the dataset
root the catalog views read from, over what they work out themselves."""
NV_META_DIR = ".nv-meta"
SPLIT = "train"
EVAL_DIR = "eval"
"""Eval sets live under ``eval/<set>/``, each a dataset of its own (shards, catalog, manifest)."""
EVAL_SETS = ("memory", "speech")
QUESTIONS_FILE = "questions.jsonl"
"""In an eval set: one line per item, the dialogue up to and including the final question (what a model sees)."""
ANSWER_KEY_FILE = "answer_key.jsonl"
"""In an eval set: one line per item, the grounded final answer and the grid cell it is scored in."""
EVAL_ITEMS_DIR = "items"
"""In an eval set: each partition's items (``items/pNNNNN.jsonl``), merged into the two files above."""
CATALOG_TABLES = ("samples", "turns", "media", "verdicts", "quarantine", "lineage", "clips", "facts")

SAMPLE_JSON = "json"
"""Suffix of the dialogue record member: ``KEY.json``."""
MEDIA_EXTENSIONS = {"image": "jpg", "video": "mp4", "audio": "flac"}
SPEECH_EXTENSION = "flac"

_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,127}$")
_SUFFIX_RE = re.compile(r"^(json|m\d{2}\.(jpg|png|mp4|flac)|t\d{2}\.(user|assistant)\.flac)$")
_SHARD_RE = re.compile(r"^([a-z]+)-((?:p\d{5}-)?\d{6})\.tar$")


def check_key(key: str, field_name: str = "key") -> str:
    """Keys are lowercase, dot-free and path-free so members split unambiguously."""
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise SchemaError(field_name, f"invalid sample key {key!r:.80}: use [a-z0-9_-], no dots, at most 128 chars")
    return key


def media_suffix(index: int, kind: str) -> str:
    """Suffix of the index-th media item of a sample: ``m00.jpg``, ``m01.mp4``, ``m02.flac``."""
    return f"m{index:02d}.{MEDIA_EXTENSIONS[kind]}"


def speech_suffix(turn: int, role: str) -> str:
    """Suffix of a spoken message: ``t03.user.flac``."""
    return f"t{turn:02d}.{role}.{SPEECH_EXTENSION}"


def member_name(key: str, suffix: str) -> str:
    return f"{check_key(key)}.{suffix}"


def split_member(name: str) -> tuple[str, str]:
    """Split a tar member name into (key, suffix), refusing anything that is not a flat, known member.

    Member names come from untrusted tars: no directories, no ``..``, no absolute paths.
    """
    if "/" in name or "\\" in name or name.startswith("."):
        raise SchemaError("member", f"unsafe member name {name!r:.120}")
    key, dot, suffix = name.partition(".")
    if not dot:
        raise SchemaError("member", f"member {name!r:.120} has no suffix")
    check_key(key, "member")
    if not _SUFFIX_RE.match(suffix):
        raise SchemaError("member", f"unknown member suffix {suffix!r:.60} in {name!r:.120}")
    return key, suffix


def shard_name(index: int, split: str = SPLIT, partition: int | None = None) -> str:
    """``train-000000.tar``; a partitioned run's shards carry their partition, ``train-p00003-000000.tar``, so
    each partition commits its own shards without knowing how many the others wrote."""
    return f"{split}-{partition_prefix(partition)}{index:06d}.tar"


def partition_prefix(partition: int | None) -> str:
    """The part of a shard name that names its partition (empty for an unpartitioned dataset)."""
    return "" if partition is None else f"p{partition:05d}-"


def shard_index_name(shard: str) -> str:
    """``train-000000.tar`` -> ``train-000000.index.parquet``."""
    m = _SHARD_RE.match(shard)
    if not m:
        raise SchemaError("shard", f"not a shard name: {shard!r}")
    return f"{m.group(1)}-{m.group(2)}.index.parquet"


@dataclass(kw_only=True, slots=True, frozen=True)
class ShardEntry:
    name: str
    """File name under ``shards/``."""
    sha256: str
    bytes: int
    samples: int
    index: str
    """Name of the member index under ``shards/``."""

    def __post_init__(self) -> None:
        require(bool(_SHARD_RE.match(self.name)), "name", f"not a shard name: {self.name!r}")
        require(self.samples >= 0, "samples", "must not be negative")


@dataclass(kw_only=True, slots=True, frozen=True)
class Manifest:
    """``manifest.json``: written last, so its presence commits the dataset."""

    schema_version: int
    config_hash: str
    seed: int
    counts: dict[str, int]
    """samples, turns, media, quarantined, rejected, ..."""
    shards: list[ShardEntry] = field(default_factory=list)
    created_by: str = "omnicurate"
    eval_sets: dict[str, str] = field(default_factory=dict)
    """Eval set name (``memory``, ``speech``) -> its dataset's path relative to this one (``eval/memory``)."""

    def __post_init__(self) -> None:
        require(self.schema_version == SCHEMA_VERSION, "schema_version",
                f"this omnicurate reads schema version {SCHEMA_VERSION}, got {self.schema_version}")

    @property
    def total_samples(self) -> int:
        return sum(s.samples for s in self.shards)
