"""``.nv-meta`` metadata and per-shard sample offsets so that Megatron-Energon reads an omnicurate dataset."""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence

import yaml

from pipelines.dataset.location import DatasetLocation
from schemas.dataset_format import NV_META_DIR, SHARDS_DIR, SPLIT, ShardEntry

INFO_FILE = ".info.json"
SPLIT_FILE = "split.yaml"
DATASET_FILE = "dataset.yaml"
OFFSETS_SUFFIX = ".idx"
"""Energon's tar index sits next to the shard: ``train-000000.tar.idx``."""


def sample_offsets_name(shard: str) -> str:
    return shard + OFFSETS_SUFFIX


def write_sample_offsets(location: DatasetLocation, shard: str, offsets: Sequence[int]) -> None:
    """Energon's tar index: little-endian uint64 byte offsets of each sample's first header, then the end offset."""
    with location.atomic_writer(SHARDS_DIR, sample_offsets_name(shard)) as f:
        f.write(struct.pack(f"<{len(offsets)}Q", *offsets))


def read_sample_offsets(location: DatasetLocation, shard: str) -> list[int]:
    data = location.read_bytes(SHARDS_DIR, sample_offsets_name(shard))
    if len(data) % 8:
        raise ValueError(f"{shard}{OFFSETS_SUFFIX} is not a whole number of uint64 offsets")
    return list(struct.unpack(f"<{len(data) // 8}Q", data))


def write_energon_meta(location: DatasetLocation, shards: Sequence[ShardEntry], split: str = SPLIT) -> None:
    """Write ``.nv-meta/{.info.json,split.yaml,dataset.yaml}``: shard counts, one split, a crude sample type.

    Every shard goes to ``split`` (omnicurate makes one split per dataset). Samples load as
    Energon ``CrudeSample`` dicts keyed by member suffix, for a task encoder's cooker to decode.
    """
    names = [f"{SHARDS_DIR}/{s.name}" for s in shards]
    info = {"shard_counts": {name: s.samples for name, s in zip(names, shards)}}
    splits = {"split_parts": {split: names}, "exclude": []}
    dataset = {"__module__": "megatron.energon", "__class__": "CrudeWebdataset",
               "subflavors": {"source": "omnicurate"}}
    location.makedirs(NV_META_DIR)
    location.write_bytes((NV_META_DIR, INFO_FILE), (json.dumps(info, indent=2) + "\n").encode())
    location.write_bytes((NV_META_DIR, SPLIT_FILE), yaml.safe_dump(splits, sort_keys=False).encode())
    location.write_bytes((NV_META_DIR, DATASET_FILE), yaml.safe_dump(dataset, sort_keys=False).encode())
