"""Other readers of our shards: Megatron-Energon through .nv-meta, and Ray Data's read_webdataset."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from shard_fixtures import QUARANTINE, make_media, make_samples, small_shards

from pipelines.dataset.writer import write_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("readers")
    media = make_media(root / "media")
    samples = make_samples(8, media, rejected_every=4)
    write_dataset(root / "ds", samples, QUARANTINE, shard=small_shards())
    return root / "ds", [s for s in samples if s.kept]


def test_megatron_energon_reads_every_sample(dataset):
    from megatron.energon import (
        Cooker,
        DefaultTaskEncoder,
        Sample,
        WorkerConfig,
        basic_sample_keys,
        get_loader,
        get_val_dataset,
        stateless,
    )

    root, kept = dataset

    @dataclass
    class DialogueSample(Sample):
        record: dict
        member_sizes: dict

    @stateless
    def cook(raw: dict) -> DialogueSample:
        return DialogueSample(**basic_sample_keys(raw), record=json.loads(raw["json"]),
                              member_sizes={k: len(v) for k, v in raw.items() if not k.startswith("__")})

    class RawDialogues(DefaultTaskEncoder):
        cookers: ClassVar[list] = [Cooker(cook)]
        decoder = None  # keep members as bytes; decoding is the trainer's business

    ds = get_val_dataset(str(root), split_part="train", batch_size=None, task_encoder=RawDialogues(),
                         worker_config=WorkerConfig(rank=0, world_size=1, num_workers=0))
    seen = {s.__key__: s for s in get_loader(ds)}
    assert sorted(seen) == sorted(c.sample.key for c in kept)
    for c in kept:
        got = seen[c.sample.key]
        assert got.record["key"] == c.sample.key
        assert got.member_sizes["m01.mp4"] == Path(c.files["m01.mp4"]).stat().st_size
        assert set(got.member_sizes) == {"json", *c.files}


def test_ray_data_read_webdataset_reads_every_sample(dataset, ray_local):
    import ray.data

    root, kept = dataset
    urls = sorted(str(p) for p in (root / "shards").glob("*.tar"))
    rows = ray.data.read_webdataset(urls, decoder=None, override_num_blocks=1).take_all()
    keys = sorted(r["__key__"] for r in rows)
    assert keys == sorted(c.sample.key for c in kept)
    by_key = {r["__key__"]: r for r in rows}
    first = kept[0]
    assert json.loads(by_key[first.sample.key]["json"])["key"] == first.sample.key
    assert by_key[first.sample.key]["m00.jpg"] == Path(first.files["m00.jpg"]).read_bytes()
