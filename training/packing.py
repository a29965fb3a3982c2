"""Pack rendered samples into rows of at most ``max_tokens`` (never splitting one) and collate rows into batches."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields

import torch

from training.chat_template import IGNORE, RenderedSample
from training.media_arena import MediaArena, concat

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

    def map_tensors(self, fn) -> "Batch":
        """The same batch with ``fn`` applied to every tensor it holds (the rest shared)."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for f in TENSOR_FIELDS:
            if moved[f] is not None:
                moved[f] = fn(moved[f])
        moved["speech_units"] = [fn(u) for u in self.speech_units]
        return Batch(**moved)

    def to(self, device) -> "Batch":
        return self.map_tensors(lambda t: t.to(device, non_blocking=True))

    def pin_memory(self) -> "Batch":
        """Page-locked copies, which the DataLoader's pin thread makes (``pin_memory=True``) so that the copy to
        the GPU runs asynchronously."""
        return self.map_tensors(torch.Tensor.pin_memory)


TENSOR_FIELDS = ("input_ids", "labels", "position_ids", "pixel_values", "audio_mels")


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
