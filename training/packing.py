"""Pack rendered samples into rows of at most ``max_tokens`` (never splitting one) and collate rows into batches."""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from training.chat_template import IGNORE, RenderedSample

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Batch:
    """Model input: rows of packed samples; position ids restart at 0 at every sample (attention boundary)."""

    input_ids: torch.Tensor
    """[B, L] token ids (pad: ``<|endoftext|>``)."""
    labels: torch.Tensor
    """[B, L] ids to predict at their position, IGNORE elsewhere; the model shifts them."""
    position_ids: torch.Tensor
    """[B, L] 0.. within each sample and within the padding tail, so attention never crosses a sample."""
    pixel_values: torch.Tensor | None
    """[tiles, 3, T, T] in the row-major order of the ``<IMG_CONTEXT>`` spans."""
    audio_mels: torch.Tensor | None
    """[windows, mel, frames] in the row-major order of the ``<AUDIO_CONTEXT>`` spans."""
    audio_windows: list[int]
    """Mel windows per audio clip."""
    audio_tokens: list[int]
    """Context tokens per audio clip."""
    sample_ids: list[str]
    """Identity (``shard-url#key``) of every sample in the batch: what resume skips."""
    sample_rows: list[tuple[int, int, int]] = field(default_factory=list)
    """(row, start, end) of every sample, in ``sample_ids`` order."""
    epoch: int = 0
    slot: int = 0
    """The reader (rank x worker) that made the batch."""
    slots: int = 1
    """How many readers there are (ranks x workers)."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(sample identity, reason) of bad samples skipped since the previous batch."""
    speech_spans: list[tuple[int, int, int]] = field(default_factory=list)
    """(row, start, end) of each spoken answer's text ids."""
    speech_units: list[torch.Tensor] = field(default_factory=list)
    """Speech-token targets of each spoken answer."""

    @property
    def tokens(self) -> int:
        return sum(end - start for _, start, end in self.sample_rows)

    def to(self, device) -> "Batch":
        move = lambda t: t.to(device, non_blocking=True) if t is not None else None  # noqa: E731
        return Batch(input_ids=move(self.input_ids), labels=move(self.labels), position_ids=move(self.position_ids),
                     pixel_values=move(self.pixel_values), audio_mels=move(self.audio_mels),
                     audio_windows=self.audio_windows, audio_tokens=self.audio_tokens, sample_ids=self.sample_ids,
                     sample_rows=self.sample_rows, epoch=self.epoch, slot=self.slot, slots=self.slots, skipped=self.skipped,
                     speech_spans=self.speech_spans, speech_units=[u.to(device) for u in self.speech_units])


@dataclass(slots=True)
class Tagged:
    """A rendered sample with its identity."""

    sample_id: str
    rendered: RenderedSample


def pack_rows(samples: Iterable[Tagged], max_tokens: int, samples_per_row: int | None = None) -> Iterator[list[Tagged]]:
    """Greedy, in order: a row takes samples while they fit in ``max_tokens``; a longer sample is skipped, never split.

    Greedy in arrival order keeps the output a function of the input order alone, which exact resume relies on.
    """
    row: list[Tagged] = []
    used = 0
    for item in samples:
        n = len(item.rendered)
        if n > max_tokens:
            log.warning("skipping %s: %d tokens > max %d", item.sample_id, n, max_tokens)
            continue
        if row and (used + n > max_tokens or (samples_per_row and len(row) >= samples_per_row)):
            yield row
            row, used = [], 0
        row.append(item)
        used += n
    if row:
        yield row


def concat(parts: list[torch.Tensor]) -> torch.Tensor:
    """``torch.cat`` into a fresh buffer: in a dataloader worker one in shared memory (what the batch is sent
    through anyway, so it is not copied again); else one numpy allocates, which asks the kernel for transparent
    huge pages on large buffers, so filling a batch's tens of megabytes takes a few page faults, not thousands."""
    shape = (sum(p.shape[0] for p in parts), *parts[0].shape[1:])
    if torch.utils.data.get_worker_info() is not None:
        storage = parts[0]._typed_storage()._new_shared(math.prod(shape), device=parts[0].device)
        out = parts[0].new(storage).resize_(shape)
    else:
        out = torch.from_numpy(np.empty(shape, dtype=torch.empty(0, dtype=parts[0].dtype).numpy().dtype))
    return torch.cat(parts, out=out)


def consecutive_view(parts: list[torch.Tensor]) -> torch.Tensor | None:
    """The tensors as one, without copying, when they lie end to end in one storage in this order; else None."""
    first = parts[0]
    ptr, end = first.untyped_storage().data_ptr(), first.storage_offset()
    for p in parts:
        if not p.is_contiguous() or p.untyped_storage().data_ptr() != ptr or p.storage_offset() != end \
                or p.shape[1:] != first.shape[1:]:
            return None
        end += p.numel()
    shape = (sum(p.shape[0] for p in parts), *first.shape[1:])
    return first.as_strided(shape, torch.empty(shape, device="meta").stride(), first.storage_offset())


class MediaArena:
    """Decoded media laid end to end in one buffer per batch, so that a batch takes a view of it, not a copy.

    The loader decodes samples in the order it packs them, so a batch's tiles (and mel windows) are usually
    consecutive in the buffer and ``gather`` returns a view; anything else (a skipped sample's hole, a member
    shown twice, a DPO pair) is copied. Each batch closes its buffer: media already decoded for the next batch
    move to a new one (``Tensor.set_`` re-points them), so a batch's view keeps no other batch's media alive.
    Buffers are reserved generously but come from numpy (untouched pages cost no memory; touched ones are huge
    pages), and a closed buffer is reused once no tensor refers to it any more (no page faults, no zeroing).
    For the reading process only: a dataloader worker builds batches in shared memory instead.
    """

    def __init__(self, min_items: int = 16, reserve_bytes: int = 256 << 20, spare: int = 3):
        self._min_items, self._reserve_bytes, self._spare = min_items, reserve_bytes, spare
        self._buffers: dict[tuple, torch.Tensor] = {}
        """(item shape, dtype) -> the open buffer."""
        self._arrays: dict[tuple, tuple[np.ndarray, weakref.ref]] = {}
        """The numpy array under each open buffer, and a weak reference to the view its tensors hold."""
        self._closed: dict[tuple, list[tuple[np.ndarray, weakref.ref]]] = {}
        """Closed buffers; one is free again once the view its tensors hold has died with the last of them."""
        self._used: dict[tuple, int] = {}
        self._largest: dict[tuple, int] = {}
        """Most items one batch took, which sizes the next buffers."""
        self._pending: dict[tuple, list[weakref.ref]] = {}
        """Tensors handed out since the last batch, in order; a skipped sample's die with it."""

    def empty(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """An uninitialised [n, ...] tensor right after the previous one of its kind (a ``media_decode.Allocate``)."""
        key = (tuple(shape[1:]), dtype)
        buffer, used = self._buffers.get(key), self._used.get(key, 0)
        if buffer is None or used + shape[0] > buffer.shape[0]:
            buffer, used = self._open(key, shape[0])
        view = buffer[used:used + shape[0]]
        self._used[key] = used + shape[0]
        self._pending.setdefault(key, []).append(weakref.ref(view))
        return view

    def _open(self, key: tuple, wanted: int) -> tuple[torch.Tensor, int]:
        """A new buffer holding, moved to its start, the live media handed out since the last batch."""
        live = [t for ref in self._pending.get(key, []) if (t := ref()) is not None]
        held = sum(t.shape[0] for t in live)
        item_shape, dtype = key
        array = self._reusable(key, held + wanted)
        if array is None:
            np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
            # reserved, not touched: a batch rarely outgrows its buffer (which would move what it holds)
            reserve = self._reserve_bytes // (math.prod(item_shape) * np_dtype.itemsize)
            items = max(self._min_items, reserve, 2 * self._largest.get(key, 0), 2 * (held + wanted))
            array = np.empty((items, *item_shape), dtype=np_dtype)
        handle = array.view()  # owned by the tensors' storage alone: it dies when the last of them does
        buffer = torch.from_numpy(handle)
        alive = weakref.ref(handle)
        del handle
        at = 0
        for t in live:
            n = t.shape[0]
            buffer[at:at + n].copy_(t)
            t.set_(buffer.untyped_storage(), buffer[at].storage_offset(), t.shape, t.stride())
            at += n
        self._buffers[key], self._arrays[key], self._used[key] = buffer, (array, alive), at
        self._pending[key] = [weakref.ref(t) for t in live]
        return buffer, at

    def _reusable(self, key: tuple, items: int) -> np.ndarray | None:
        closed = self._closed.get(key, [])
        for i, (array, alive) in enumerate(closed):
            if alive() is None and array.shape[0] >= items:
                del closed[i]
                return array
        return None

    def gather(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """One batch's media of one kind, in order: a view when they lie end to end, else a copy. Closes the buffer."""
        key = (tuple(parts[0].shape[1:]), parts[0].dtype)
        out = consecutive_view(parts)
        if out is None:
            out = concat(parts)
        self._largest[key] = max(self._largest.get(key, 0), out.shape[0])
        taken = {id(p) for p in parts}
        self._pending[key] = [ref for ref in self._pending.get(key, []) if (t := ref()) is not None and id(t) not in taken]
        if self._buffers.pop(key, None) is not None:  # the next media start a new buffer
            closed = self._closed.setdefault(key, [])
            closed.append(self._arrays.pop(key))
            del closed[:-self._spare]
        return out


def collate_rows(rows: list[list[Tagged]], pad_id: int, pad_to: int | None = None, arena: MediaArena | None = None
                 ) -> Batch:
    """Rows of samples -> a Batch padded to the longest row (or ``pad_to``); media as views of ``arena`` when it
    decoded them end to end, else copied."""
    gather = arena.gather if arena is not None else concat
    length = max(sum(len(t.rendered) for t in row) for row in rows)
    length = max(length, pad_to or 0)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(rows), length), dtype=torch.long)
    visuals, mels, windows, tokens, sample_ids, sample_rows = [], [], [], [], [], []
    speech_spans, speech_units = [], []
    for r, row in enumerate(rows):
        at = 0
        for item in row:
            s = item.rendered
            n = len(s)
            ids[r, at:at + n] = torch.tensor(s.input_ids, dtype=torch.long)
            labels[r, at:at + n] = torch.tensor(s.labels, dtype=torch.long)
            positions[r, at:at + n] = torch.arange(n)
            visuals += s.visuals
            for mel, count in s.audios:
                mels.append(mel)
                windows.append(mel.shape[0])
                tokens.append(count)
            for start, end, units in s.speech:
                speech_spans.append((r, at + start, at + end))
                speech_units.append(torch.tensor(units, dtype=torch.long))
            sample_ids.append(item.sample_id)
            sample_rows.append((r, at, at + n))
            at += n
        positions[r, at:] = torch.arange(length - at)
    return Batch(input_ids=ids, labels=labels, position_ids=positions,
                 pixel_values=gather(visuals) if visuals else None,
                 audio_mels=gather(mels) if mels else None, audio_windows=windows, audio_tokens=tokens,
                 sample_ids=sample_ids, sample_rows=sample_rows, speech_spans=speech_spans,
                 speech_units=speech_units)
