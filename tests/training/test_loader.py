"""Loader: packing boundaries, seeded shuffle, splits, blending, bad samples, and exact resume by identity."""

import collections

import pytest
import torch

from conftest import make_sample, write_dataset
from training.chat_template import IGNORE
from training.loader import DataSource, LoaderConfig, LoaderState, ShardDataset, make_dataloader
from training.shard_urls import expand_shard_urls


@pytest.fixture(scope="module")
def text_dataset(tmp_path_factory, media_bytes):
    """24 text-only dialogues of 1-3 turns (different lengths), 4 per shard."""
    samples = [make_sample(i, turns=1 + i % 3, with_media=False) for i in range(24)]
    return write_dataset(tmp_path_factory.mktemp("text"), samples, media_bytes, per_shard=4)


def loader(tokenizer, url, state=None, rank=0, world=1, **kw):
    kw.setdefault("max_tokens", 256)
    kw.setdefault("shuffle_buffer", 5)
    sources = url if isinstance(url, list) else [DataSource(url=str(url))]
    return ShardDataset(LoaderConfig(sources=sources, **kw), tokenizer, state=state, rank=rank, world_size=world)


def keys(batches):
    return [b.sample_ids for b in batches]


def test_urls_from_dir_manifest_brace_range_and_list(text_dataset):
    from_dir = expand_shard_urls(str(text_dataset))
    assert len(from_dir) == 6 and from_dir == expand_shard_urls(str(text_dataset / "manifest.json"))
    brace = expand_shard_urls(str(text_dataset / "shards" / "train-{000000..000005}.tar"))
    assert brace == from_dir
    assert expand_shard_urls(f"{from_dir[0]}::{from_dir[1]}::{from_dir[0]}") == from_dir[:2]
    with pytest.raises(FileNotFoundError):
        expand_shard_urls(str(text_dataset / "shards"))  # a directory that is not a committed dataset


def test_packing_never_splits_a_sample_and_resets_positions(tokenizer, text_dataset):
    batches = list(loader(tokenizer, text_dataset, epochs=1, batch_rows=2, max_tokens=300))
    seen = [k for b in batches for k in b.sample_ids]
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 24
    assert any(len({r for r, _, _ in b.sample_rows if r == 0}) and
               sum(1 for r, _, _ in b.sample_rows if r == 0) > 1 for b in batches), "nothing was packed"
    special = tokenizer.convert_tokens_to_ids
    for b in batches:
        assert b.input_ids.shape[1] <= 300
        for row, start, end in b.sample_rows:
            ids = b.input_ids[row, start:end]
            assert ids[0] == special("<|im_start|>") and ids[-2] == special("<|im_end|>")  # whole dialogue
            assert torch.equal(b.position_ids[row, start:end], torch.arange(end - start))
        for row in range(b.input_ids.shape[0]):
            covered = sum(end - start for r, start, end in b.sample_rows if r == row)
            assert (b.labels[row, covered:] == IGNORE).all()


def test_packed_rows_attend_only_within_their_sample(tokenizer, text_dataset):
    """The tiny LM gives the same logits for a sample alone as inside a packed row."""
    from training.model.config import tiny_model_config
    from training.model.llm import build_llm

    torch.manual_seed(0)
    llm = build_llm(tiny_model_config(151680).llm).eval()
    packed = next(iter(loader(tokenizer, text_dataset, epochs=1, shuffle_buffer=0)))
    assert len(packed.sample_rows) >= 2
    with torch.no_grad():
        together = llm(input_ids=packed.input_ids, position_ids=packed.position_ids, use_cache=False).logits
        for row, start, end in packed.sample_rows:
            alone = llm(input_ids=packed.input_ids[row:row + 1, start:end], use_cache=False).logits
            assert torch.allclose(together[row, start:end], alone[0], atol=1e-4)


def test_too_long_sample_is_skipped_not_split(tokenizer, text_dataset):
    batches = list(loader(tokenizer, text_dataset, epochs=1, max_tokens=80))
    kept = {k for b in batches for k in b.sample_ids}
    assert 0 < len(kept) < 24
    assert all(end - start <= 80 for b in batches for _, start, end in b.sample_rows)


def test_seeded_shuffle_is_reproducible_and_seed_dependent(tokenizer, text_dataset):
    a = keys(loader(tokenizer, text_dataset, epochs=1, seed=3))
    assert a == keys(loader(tokenizer, text_dataset, epochs=1, seed=3))
    assert a != keys(loader(tokenizer, text_dataset, epochs=1, seed=4))


@pytest.mark.parametrize("world", [2, 4, 8])
def test_ranks_read_disjoint_samples_covering_the_epoch(tokenizer, text_dataset, world):
    """By shard when there are enough shards (6 >= 2, 4), by sample when not (8 ranks)."""
    per_rank = [[k for b in loader(tokenizer, text_dataset, rank=r, world=world, epochs=1) for k in b.sample_ids]
                for r in range(world)]
    flat = [k for ks in per_rank for k in ks]
    assert len(flat) == len(set(flat)) == 24 and all(per_rank)


def test_blend_by_weight(tokenizer, tmp_path, media_bytes):
    a = write_dataset(tmp_path / "a", [make_sample(i, 1, False) for i in range(40)], media_bytes, per_shard=40)
    b = write_dataset(tmp_path / "b", [make_sample(100 + i, 1, False) for i in range(40)], media_bytes, per_shard=40)
    ds = loader(tokenizer, [DataSource(url=str(a), weight=3.0), DataSource(url=str(b), weight=1.0)], epochs=1,
                shuffle_buffer=0, pack=False)
    first = [k for batch in ds for k in batch.sample_ids][:20]
    from_a = sum("/a/" in k for k in first)
    assert 11 <= from_a <= 19  # about 3 in 4, and both datasets present


def test_bad_samples_are_skipped_and_reported(tokenizer, tmp_path, media_bytes):
    samples = [make_sample(i, 2, True) for i in range(4)]
    broken = {samples[1].key: {"m00.jpg": b"not a jpeg"}, samples[2].key: {"json": b'{"key": 5}'}}
    root = write_dataset(tmp_path / "bad", samples, media_bytes, per_shard=4, extra=broken)
    ds = loader(tokenizer, root, epochs=1, shuffle_buffer=0, max_tokens=4096)
    batches = list(ds)
    kept = [k.split("#")[1] for b in batches for k in b.sample_ids]
    assert kept == [samples[0].key, samples[3].key]
    reasons = dict((k.split("#")[-1], why) for b in batches for k, why in b.skipped)
    assert set(reasons) == {samples[1].key, samples[2].key}
    assert "image" in reasons[samples[1].key] and "key" in reasons[samples[2].key]
    state = LoaderState()
    for b in batches:
        state.update(b)
    assert state.skipped == 2


def test_too_many_consecutive_failures_stop(tokenizer, tmp_path, media_bytes):
    samples = [make_sample(i, 1, False) for i in range(4)]
    root = write_dataset(tmp_path / "allbad", samples, media_bytes, per_shard=4,
                         extra={s.key: {"json": b"[]"} for s in samples})
    with pytest.raises(RuntimeError, match="in a row"):
        list(loader(tokenizer, root, epochs=1, max_consecutive_failures=3))


def run(tokenizer, url, workers, state=None, limit=None, **kw):
    ds = loader(tokenizer, url, state=state, epochs=2, num_workers=workers, **kw)
    out = []
    for b in make_dataloader(ds):
        out.append(b)
        if limit and len(out) == limit:
            break
    return out


def test_resume_gives_exactly_the_uninterrupted_batches(tokenizer, text_dataset):
    full = run(tokenizer, text_dataset, workers=2)
    state = LoaderState()
    for b in run(tokenizer, text_dataset, workers=2, limit=5):
        state.update(b)
    state = LoaderState.from_dict(state.to_dict())  # through the checkpoint's JSON
    resumed = run(tokenizer, text_dataset, workers=2, state=state)
    assert keys(resumed) == keys(full[5:])
    assert all(torch.equal(x.input_ids, y.input_ids) for x, y in zip(resumed, full[5:]))


@pytest.mark.parametrize("workers_after", [0, 3])
def test_resume_with_another_worker_count_reads_each_remaining_sample_once(tokenizer, text_dataset, workers_after):
    first = run(tokenizer, text_dataset, workers=2, limit=4)
    state = LoaderState()
    for b in first:
        state.update(b)
    resumed = run(tokenizer, text_dataset, workers=workers_after, state=LoaderState.from_dict(state.to_dict()))
    per_epoch = collections.Counter()
    for b in first + resumed:
        for k in b.sample_ids:
            per_epoch[(b.epoch, k)] += 1
    assert set(per_epoch.values()) == {1}
    assert sorted(collections.Counter(e for e, _ in per_epoch).values()) == [24, 24]


def test_batches_hold_exactly_the_media_decoded_one_sample_at_a_time(tokenizer, dataset_dir):
    """Media decoded into the batch arena (views, no copy) equal media decoded alone and concatenated."""
    ds = loader(tokenizer, dataset_dir, epochs=1, max_tokens=3000, batch_rows=2)
    raw = {r["__id__"]: r for r in ds.raw_stream(0, 0, 1)}
    batches = list(ds)
    assert sum(len(b.sample_ids) for b in batches) == 12 and len(batches) > 1
    for b in batches:
        alone = [ds.render_raw(raw[k]) for k in b.sample_ids]
        assert torch.equal(b.pixel_values, torch.cat([t for r in alone for t in r.visuals]))
        assert torch.equal(b.audio_mels, torch.cat([m for r in alone for m, _ in r.audios]))
    # the batches were views of the arena's buffers (reserved larger than one batch), not copies
    assert all(b.pixel_values.untyped_storage().nbytes() > b.pixel_values.nbytes for b in batches)


def test_media_through_dataloader_workers_equal_media_read_in_process(tokenizer, dataset_dir):
    inline = {k: b for b in loader(tokenizer, dataset_dir, epochs=1, max_tokens=3000, pack=False) for k in b.sample_ids}
    ds = loader(tokenizer, dataset_dir, epochs=1, max_tokens=3000, pack=False, num_workers=2)
    seen = 0
    for b in make_dataloader(ds):
        (k,) = b.sample_ids
        assert torch.equal(b.pixel_values, inline[k].pixel_values)
        assert torch.equal(b.audio_mels, inline[k].audio_mels)
        seen += 1
    assert seen == 12


def test_moving_or_pinning_a_batch_maps_every_tensor_it_holds(tokenizer, dataset_dir):
    """``Batch.to`` / ``pin_memory`` (the DataLoader's pin thread, for CUDA) go through ``map_tensors``: a tensor
    field it missed would stay behind on the host. Pinning itself needs a CUDA build; the mapping is checked here."""
    import dataclasses

    batch = next(iter(loader(tokenizer, dataset_dir, epochs=1, max_tokens=3000)))
    batch.speech_units = [torch.arange(3)]
    held = []
    for f in dataclasses.fields(batch):
        value = getattr(batch, f.name)
        held += [value] if isinstance(value, torch.Tensor) else \
            [v for v in value if isinstance(v, torch.Tensor)] if isinstance(value, list) else []
    assert len(held) >= 6  # ids, labels, positions, tiles, mels, speech units
    mapped = batch.map_tensors(lambda t: t.clone())
    for f in dataclasses.fields(batch):
        before, after = getattr(batch, f.name), getattr(mapped, f.name)
        if isinstance(before, torch.Tensor):
            assert after is not before and torch.equal(after, before), f.name
        elif f.name == "speech_units":
            assert all(a is not b and torch.equal(a, b) for a, b in zip(after, before, strict=True))
        else:
            assert after is before, f.name  # the rest shared, not copied
