"""Batch memory for decoded media: decoders write where the batch will hold them, so a batch is a view, not a copy."""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field

import numpy as np
import torch


def concat(parts: list[torch.Tensor]) -> torch.Tensor:
    """``torch.cat`` into a fresh buffer: in a dataloader worker one in shared memory (what the batch is sent
    through anyway, so it is not copied again); else one numpy allocates, which asks the kernel for transparent
    huge pages on large buffers, so filling a batch's tens of megabytes takes a few page faults, not thousands."""
    shape = (sum(p.shape[0] for p in parts), *parts[0].shape[1:])
    if torch.utils.data.get_worker_info() is not None:
        storage = parts[0]._typed_storage()._new_shared(math.prod(shape), device=parts[0].device)
        out = parts[0].new(storage).resize_(shape)
    else:
        out = torch.from_numpy(np.empty(shape, dtype=_numpy_dtype(parts[0].dtype)))
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


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    return torch.empty(0, dtype=dtype).numpy().dtype


@dataclass(slots=True)
class _Buffer:
    """One numpy array under a run of media, and a weak reference to the view its tensors hold."""

    array: np.ndarray
    alive: weakref.ref
    """Dead once no tensor cut from the array is left: the array is free again."""
    tensor: torch.Tensor | None = None
    """Its items as a tensor; held while the buffer is open only (a closed one must die with its media)."""


@dataclass(slots=True)
class _Kind:
    """The buffers of one kind of media (one item shape and dtype)."""

    open: _Buffer | None = None
    used: int = 0
    """Items of the open buffer handed out."""
    largest: int = 0
    """Most items one batch took, which sizes the next buffers."""
    pending: list[weakref.ref] = field(default_factory=list)
    """Tensors handed out since the last batch, in order; a skipped sample's die with it."""
    closed: list[_Buffer] = field(default_factory=list)
    """Closed buffers, newest last; one is free again once the view its tensors hold has died."""


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
        self._kinds: dict[tuple, _Kind] = {}
        """(item shape, dtype) -> its buffers."""

    def empty(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """An uninitialised [n, ...] tensor right after the previous one of its kind (a ``media_decode.Allocate``)."""
        key = (tuple(shape[1:]), dtype)
        kind = self._kinds.setdefault(key, _Kind())
        if kind.open is None or kind.used + shape[0] > kind.open.tensor.shape[0]:
            self._open(kind, key, shape[0])
        view = kind.open.tensor[kind.used:kind.used + shape[0]]
        kind.used += shape[0]
        kind.pending.append(weakref.ref(view))
        return view

    def _open(self, kind: _Kind, key: tuple, wanted: int) -> None:
        """A new open buffer holding, moved to its start, the live media handed out since the last batch."""
        live = [t for ref in kind.pending if (t := ref()) is not None]
        held = sum(t.shape[0] for t in live)
        item_shape, dtype = key
        array = self._reusable(kind, held + wanted)
        if array is None:
            # reserved, not touched: a batch rarely outgrows its buffer (which would move what it holds)
            reserve = self._reserve_bytes // (math.prod(item_shape) * _numpy_dtype(dtype).itemsize)
            items = max(self._min_items, reserve, 2 * kind.largest, 2 * (held + wanted))
            array = np.empty((items, *item_shape), dtype=_numpy_dtype(dtype))
        handle = array.view()  # owned by the tensors' storage alone: it dies when the last of them does
        tensor = torch.from_numpy(handle)
        kind.open = _Buffer(array=array, alive=weakref.ref(handle), tensor=tensor)
        del handle
        at = 0
        for t in live:
            n = t.shape[0]
            tensor[at:at + n].copy_(t)
            t.set_(tensor.untyped_storage(), tensor[at].storage_offset(), t.shape, t.stride())
            at += n
        kind.used = at
        kind.pending = [weakref.ref(t) for t in live]

    @staticmethod
    def _reusable(kind: _Kind, items: int) -> np.ndarray | None:
        for i, buffer in enumerate(kind.closed):
            if buffer.alive() is None and buffer.array.shape[0] >= items:
                del kind.closed[i]
                return buffer.array
        return None

    def gather(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """One batch's media of one kind, in order: a view when they lie end to end, else a copy. Closes the buffer."""
        kind = self._kinds.setdefault((tuple(parts[0].shape[1:]), parts[0].dtype), _Kind())
        out = consecutive_view(parts)
        if out is None:
            out = concat(parts)
        kind.largest = max(kind.largest, out.shape[0])
        taken = {id(p) for p in parts}
        kind.pending = [ref for ref in kind.pending if (t := ref()) is not None and id(t) not in taken]
        if kind.open is not None:  # the next media start a new buffer
            kind.open.tensor = None
            kind.closed.append(kind.open)
            del kind.closed[:-self._spare]
            kind.open = None
        return out
