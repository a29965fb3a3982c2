"""Read WebDataset shards into packed, tokenised batches; split by rank and worker; resume by sample identity.

Each reader ("slot": one rank x one dataloader worker) produces, per epoch, a stream that is a function of
(seed, epoch, slot, number of slots) alone: its shards (or every n-th sample when shards are fewer than slots),
blended across datasets by weight, through a seeded shuffle buffer. Samples already consumed (by identity:
``shard-url#key``) are dropped *after* the shuffle, before decoding, so a resumed reader with the same slots
re-creates exactly the batches an uninterrupted run makes, and one with a different worker or rank count still
reads every remaining sample once.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import torch

from schemas.dialogue import Sample
from schemas.token_accounting import TokenAccounting
from schemas.validation import SchemaError, from_json, require
from training.chat_template import RenderConfig, render_sample
from training.media_decode import (MediaDecodeConfig, MediaDecodeError, decode_audio, decode_image, decode_video,
                                   decode_waveform, new_tensor)
from training.model.config import SpeechDecoderConfig
from training.media_arena import MediaArena
from training.packing import Batch, Tagged, collate_rows, pack_rows
from training.shard_urls import expand_shard_urls, open_stream

log = logging.getLogger(__name__)


class SkipSample(Exception):
    """This sample is bad (undecodable media, invalid record); skip it, log it, go on."""


@dataclass(kw_only=True, slots=True, frozen=True)
class DataSource:
    """One dataset in a blend."""

    url: str
    """Shards: a tar, a brace range, a dataset directory or its manifest.json (local, s3://, gs://)."""
    weight: float = 1.0
    """Relative share of samples drawn from this dataset while it lasts."""


@dataclass(kw_only=True, slots=True, frozen=True)
class BatchConfig:
    """Which shards and how they are batched: the fields a training YAML's ``data`` section and the loader share."""

    sources: list[DataSource]
    """Datasets to blend by weight."""
    batch_rows: int = 1
    """Rows per batch (per rank)."""
    max_tokens: int = 32768
    """Longest row; a sample longer than this is skipped, never split."""
    pack: bool = True
    """Pack several samples per row (with attention boundaries); False puts one sample per row."""
    shuffle_buffer: int = 64
    """Samples held by the seeded shuffle buffer (0: read order)."""
    num_workers: int = 0
    """Dataloader worker processes per rank (0: read in the training process)."""

    def __post_init__(self) -> None:
        require(bool(self.sources), "sources", "name at least one dataset")
        require(self.batch_rows >= 1, "batch_rows", "must be at least 1")
        require(self.max_tokens >= 16, "max_tokens", "must be at least 16")
        require(self.shuffle_buffer >= 0, "shuffle_buffer", "must not be negative")
        require(self.num_workers >= 0, "num_workers", "must not be negative")


@dataclass(kw_only=True, slots=True, frozen=True)
class LoaderConfig(BatchConfig):
    """What the loader reads and how it batches."""

    seed: int = 0
    epochs: int | None = None
    """Epochs to read; None reads on forever."""
    max_consecutive_failures: int = 100
    """Stop with an error after this many bad samples in a row (the data is broken, not a sample)."""
    preference_pairs: bool = False
    """DPO: each sample becomes two rows, its final answer replaced by the chosen then the rejected one."""
    speech: SpeechDecoderConfig | None = None
    """Make speech-token targets of spoken answers with this config's speech tokenizer (speech stage)."""
    render: RenderConfig = field(default_factory=RenderConfig)
    media: MediaDecodeConfig = field(default_factory=MediaDecodeConfig)
    accounting: TokenAccounting = field(default_factory=TokenAccounting)


@dataclass(slots=True)
class LoaderState:
    """What the trainer has consumed: goes into the checkpoint; plain JSON-able values."""

    epoch: int = 0
    """The oldest epoch some reader may still be in."""
    batches: int = 0
    """Batches consumed by this rank (picks which worker the resumed dataloader must ask first)."""
    consumed: dict[int, set[str]] = field(default_factory=dict)
    """Epoch -> identities of the samples consumed in it."""
    slot_epochs: dict[int, int] = field(default_factory=dict)
    """Slot -> epoch of the last batch it delivered."""
    slots: int = 0
    """Readers of the run that delivered ``slot_epochs``."""
    skipped: int = 0

    def update(self, batch: Batch) -> None:
        self.batches += 1
        self.consumed.setdefault(batch.epoch, set()).update(batch.sample_ids)
        if batch.slots != self.slots:
            self.slots, self.slot_epochs = batch.slots, {}
        self.slot_epochs[batch.slot] = batch.epoch
        if len(self.slot_epochs) == self.slots:
            # every reader is past the older epochs: nothing there can be replayed any more
            self.epoch = max(self.epoch, min(self.slot_epochs.values()))
            self.consumed = {e: ids for e, ids in self.consumed.items() if e >= self.epoch}
        self.skipped += len(batch.skipped)
        for sample_id, reason in batch.skipped:
            log.warning("skipped bad sample %s: %s", sample_id, reason)

    def to_dict(self) -> dict:
        return {"epoch": self.epoch, "batches": self.batches, "skipped": self.skipped,
                "consumed": {str(e): sorted(ids) for e, ids in self.consumed.items()},
                "slot_epochs": {str(s): e for s, e in self.slot_epochs.items()}, "slots": self.slots}

    @classmethod
    def from_dict(cls, data: dict) -> "LoaderState":
        return cls(epoch=int(data.get("epoch", 0)), batches=int(data.get("batches", 0)),
                   skipped=int(data.get("skipped", 0)),
                   consumed={int(e): set(ids) for e, ids in data.get("consumed", {}).items()},
                   slot_epochs={int(s): int(e) for s, e in data.get("slot_epochs", {}).items()},
                   slots=int(data.get("slots", 0)))

    @classmethod
    def merge(cls, states: list["LoaderState"]) -> "LoaderState":
        """Union of the ranks' states, for a checkpoint that any rank count can resume from."""
        out = cls(epoch=min(s.epoch for s in states), batches=max(s.batches for s in states),
                  skipped=sum(s.skipped for s in states), slots=states[0].slots)
        for s in states:
            out.slot_epochs.update(s.slot_epochs)
            for e, ids in s.consumed.items():
                out.consumed.setdefault(e, set()).update(ids)
        return out


def _member_key(fname: str):
    from schemas.dataset_format import split_member

    return split_member(fname)


def iter_raw_samples(url: str, on_error) -> Iterator[dict]:
    """One shard's samples as {'__key__', '__url__', suffix: bytes}, grouped by upstream webdataset."""
    from webdataset.tariterators import group_by_keys, tar_file_expander

    def handler(exc: Exception) -> bool:
        on_error(f"{url}: {exc}")
        return True

    def opened():
        try:
            stream = open_stream(url)
        except OSError as exc:
            on_error(f"{url}: cannot open: {exc}")
            return
        with stream:
            yield {"url": url, "stream": stream}

    files = tar_file_expander(opened(), handler=handler)
    yield from group_by_keys(files, keys=_member_key, lcase=False, handler=handler)


def _rng(*parts) -> random.Random:
    return random.Random(":".join(map(str, parts)))


def seeded_shuffle(items: Iterator, buffer: int, rng: random.Random) -> Iterator:
    if buffer <= 1:
        yield from items
        return
    held: list = []
    for item in items:
        if len(held) < buffer:
            held.append(item)
            continue
        i = rng.randrange(len(held))
        held[i], item = item, held[i]
        yield item
    rng.shuffle(held)
    yield from held


def blend(streams: list[Iterator], weights: list[float], rng: random.Random) -> Iterator:
    """Draw from the streams by weight; an exhausted stream leaves the blend."""
    live = list(range(len(streams)))
    while live:
        (pick,) = rng.choices(live, weights=[weights[i] for i in live])
        try:
            yield next(streams[pick])
        except StopIteration:
            live.remove(pick)


class ShardDataset(torch.utils.data.IterableDataset):
    """Batches from shards; give it to ``torch.utils.data.DataLoader(ds, batch_size=None, num_workers=...)``."""

    def __init__(self, config: LoaderConfig, tokenizer, state: LoaderState | None = None,
                 rank: int = 0, world_size: int = 1):
        from training.tokenizer import SpecialIds

        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.special = SpecialIds.of(tokenizer)
        self.rank, self.world_size = rank, world_size
        self.resume = state or LoaderState()
        self.source_urls = [expand_shard_urls(s.url) for s in config.sources]
        self._speech_tokenizer = None
        self._slots = 1

    def _slot(self) -> tuple[int, int]:
        info = torch.utils.data.get_worker_info()
        workers = info.num_workers if info else 1
        worker = info.id if info else 0
        # rotate so that the worker the dataloader asks first is the one the interrupted run would have asked next
        local = (worker + self.resume.batches) % workers
        return self.rank * workers + local, self.world_size * workers

    def __iter__(self) -> Iterator[Batch]:
        slot, slots = self._slot()
        self._slots = slots
        epoch = self.resume.epoch
        # decoded media go where the batch will hold them; a worker's batches go to shared memory instead
        arena = MediaArena() if torch.utils.data.get_worker_info() is None else None
        while self.config.epochs is None or epoch < self.config.epochs:
            delivered = False
            for batch in self.epoch_batches(epoch, slot, slots, arena):
                delivered = True
                yield batch
            if not delivered and not self.resume.consumed.get(epoch):
                return  # nothing to read for this slot at all
            epoch += 1

    def raw_stream(self, epoch: int, slot: int, slots: int) -> Iterator[dict]:
        """This slot's samples of an epoch, blended and shuffled, before resume filtering and decoding."""
        errors: list[str] = []
        streams = []
        for index, urls in enumerate(self.source_urls):
            order = list(urls)
            _rng(self.config.seed, epoch, index, "shards").shuffle(order)
            streams.append(self._source_stream(order, slot, slots, errors))
        weights = [s.weight for s in self.config.sources]
        seed = self.config.seed
        mixed = streams[0] if len(streams) == 1 else blend(streams, weights, _rng(seed, epoch, slot, slots, "blend"))
        for raw in seeded_shuffle(mixed, self.config.shuffle_buffer, _rng(seed, epoch, slot, slots, "shuffle")):
            while errors:
                yield {"__error__": errors.pop(0)}
            yield raw
        while errors:
            yield {"__error__": errors.pop(0)}

    @staticmethod
    def _source_stream(order: list[str], slot: int, slots: int, errors: list[str]) -> Iterator[dict]:
        by_shard = len(order) >= slots
        mine = order[slot::slots] if by_shard else order
        index = 0
        for url in mine:
            for raw in iter_raw_samples(url, errors.append):
                if by_shard or index % slots == slot:
                    raw["__id__"] = f"{url}#{raw['__key__']}"
                    yield raw
                index += 1

    def epoch_batches(self, epoch: int, slot: int, slots: int, arena: MediaArena | None = None) -> Iterator[Batch]:
        consumed = self.resume.consumed.get(epoch, set())
        skipped: list[tuple[str, str]] = []
        state = {"failures": 0}

        def rendered() -> Iterator[Tagged]:
            for raw in self.raw_stream(epoch, slot, slots):
                if "__error__" in raw:
                    skipped.append(("", raw["__error__"]))
                    continue
                if raw["__id__"] in consumed:
                    continue
                try:
                    rendered_raw = self.render_raw(raw, arena)
                    state["failures"] = 0
                    if isinstance(rendered_raw, tuple):
                        for one in rendered_raw:
                            yield Tagged(raw["__id__"], one)
                    else:
                        yield Tagged(raw["__id__"], rendered_raw)
                except SkipSample as exc:
                    skipped.append((raw["__id__"], str(exc)))
                    state["failures"] += 1
                    if state["failures"] >= self.config.max_consecutive_failures:
                        raise RuntimeError(f"{state['failures']} bad samples in a row, last: {raw['__id__']}: {exc}")

        per_row = None if self.config.pack and not self.config.preference_pairs else 1
        batch_rows = self.config.batch_rows * (2 if self.config.preference_pairs else 1)
        rows: list[list[Tagged]] = []
        for row in pack_rows(rendered(), self.config.max_tokens, per_row):
            rows.append(row)
            if len(rows) == batch_rows:
                yield self._collate(rows, epoch, slot, skipped, arena)
                rows = []
        if rows:
            yield self._collate(rows, epoch, slot, skipped, arena)

    def _collate(self, rows, epoch, slot, skipped, arena: MediaArena | None = None) -> Batch:
        batch = collate_rows(rows, self.special.endoftext, arena=arena)
        batch.epoch, batch.slot, batch.skipped = epoch, slot, list(skipped)
        batch.slots = self._slots
        skipped.clear()
        return batch

    def render_raw(self, raw: dict, arena: MediaArena | None = None):
        """Parse the record, decode the members it uses (into ``arena`` when given), render it; a bad sample
        raises SkipSample."""
        from schemas.dataset_format import SAMPLE_JSON

        if SAMPLE_JSON not in raw:
            raise SkipSample("no json member")
        try:
            sample = from_json(Sample, raw[SAMPLE_JSON])
        except SchemaError as exc:
            raise SkipSample(f"invalid record: {exc}") from None
        if sample.key != raw["__key__"]:
            raise SkipSample(f"record key {sample.key!r} differs from member key {raw['__key__']!r}")
        try:
            media = self.decode_media(sample, raw, arena)
            if self.config.preference_pairs:
                return self._render_pair(sample, media)
            rendered = render_sample(sample, media, self.tokenizer, self.special, self.config.accounting,
                                     self.config.render)
            if self.config.speech is not None:
                self._add_speech_targets(sample, raw, rendered)
            return rendered
        except (MediaDecodeError, KeyError) as exc:
            raise SkipSample(str(exc)) from None

    def _render_pair(self, sample: Sample, media: dict):
        pref = sample.preference
        final = len(sample.dialogue.turns) - 1
        if pref is None or pref.turn != final:
            raise SkipSample("no preference pair on the final turn")
        return tuple(render_sample(sample, media, self.tokenizer, self.special, self.config.accounting,
                                   replace(self.config.render, label_mode="final_turn"),
                                   assistant_override={final: answer})
                     for answer in (pref.chosen, pref.rejected))

    def _add_speech_targets(self, sample: Sample, raw: dict, rendered) -> None:
        from training.model.speech_decoder import build_speech_tokenizer

        if self._speech_tokenizer is None:
            self._speech_tokenizer = build_speech_tokenizer(self.config.speech)
        for turn, (start, end) in zip(sample.dialogue.turns, rendered.assistant_turns):
            member = turn.assistant.speech_member
            if member and member in raw:
                units = self._speech_tokenizer.encode(decode_waveform(raw[member]))
                rendered.speech.append((start, end - 1, units))  # the answer's text ids, not <|im_end|>
        if not rendered.speech:
            raise SkipSample("no spoken answer for the speech decoder")

    def decode_media(self, sample: Sample, raw: dict, arena: MediaArena | None = None) -> dict:
        tiles = {m.member: m.tiles for m in sample.dialogue.media}
        wanted = shown_media(sample, self.config.render.spoken_user)
        out = {}
        cfg = self.config.media
        alloc = arena.empty if arena is not None else new_tensor
        for member, kind in wanted.items():
            if member not in raw:
                raise KeyError(f"member {member!r} is missing from the shard")
            data = raw[member]
            if kind == "image":
                out[member] = decode_image(data, tiles.get(member), cfg, alloc)
            elif kind == "video":
                # its sound track too: the token budget counts it
                out[member] = decode_video(data, tiles.get(member), cfg, with_audio=True, alloc=alloc)
            else:
                out[member] = decode_audio(data, cfg, alloc)
        return out


def shown_media(sample: Sample, spoken_user: bool = False) -> dict[str, str]:
    """Member -> kind (image, video, audio) of every medium the model is shown, once each, in order of first
    showing; with ``spoken_user``, the spoken user turns' audio too."""
    wanted: dict[str, str] = {}
    for turn in sample.dialogue.turns:
        for message in (turn.user, turn.assistant):
            for part in message.parts:
                if part.kind != "text":
                    wanted.setdefault(part.member, part.kind)
        if spoken_user and turn.user.speech_member:
            wanted.setdefault(turn.user.speech_member, "audio")
    return wanted


def make_dataloader(dataset: ShardDataset, num_workers: int | None = None, pin_memory: bool = False
                    ) -> torch.utils.data.DataLoader:
    """``pin_memory`` (for a CUDA device): batches arrive page-locked, so ``Batch.to(device)`` does not block."""
    workers = dataset.config.num_workers if num_workers is None else num_workers
    return torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers, pin_memory=pin_memory,
                                       persistent_workers=False, prefetch_factor=2 if workers else None)
