"""One partition's media work, batch by batch, staged and recorded on the dataset's own storage.

Each batch of sources goes through the media stage; its decoded bytes are written as one staging file (its
footer carries the clips' dedup signatures, hashed from the bytes in memory) and then its ledger batch, so a
kill leaves a batch either whole or absent and a resumed run (on any machine) starts at the first unfinished
source. A batch that fails after retries marks its sources ``failed`` with
the error class; the run goes on with the rest and ``omnicurate retry --failed`` re-runs exactly those.
"""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Collection, Generator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curators.media_dedup import MediaSignature, clip_signature
from pipelines.clip_bundles import check_clip_id, check_file_name, located_clip
from pipelines.dataset.location import DatasetLocation
from pipelines.ray_runtime import is_transient
from pipelines.run_ledger import LedgerEntry, RunLedger, fingerprint, source_fingerprint
from schemas.config import CurateConfig
from schemas.media import AnnotatedClip, QuarantineRecord, SourceItem
from schemas.usage import StageUsage, total_usage
from schemas.validation import from_dict, to_dict, to_json

log = logging.getLogger(__name__)

STAGE = "media"
PROGRAMMING_ERRORS = (TypeError, AttributeError, NameError, ImportError, SyntaxError, AssertionError)
LEDGER_DIR = "ledger"
STAGED_MEDIA_DIR = "media"
_BLOBS = pa.schema([("clip_id", pa.string()), ("name", pa.string()), ("data", pa.large_binary())])
SIGNATURES_KEY = b"omnicurate.signatures"
"""Schema metadata of a staging file: its clips' dedup signatures (JSON), read back without the bytes."""


def partition_dir(partition: int) -> str:
    return f"p{partition:05d}"


@dataclass(kw_only=True, slots=True)
class PartitionMedia:
    """What a partition's media work left, for the driver: counts and the first failure, never the clips."""

    partition: int
    sources: int = 0
    clips: int = 0
    quarantined: int = 0
    failed: int = 0
    first_error: str = ""
    """``uri: ErrorClass: detail`` of the first failed source (by URI), empty when none failed."""
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(kw_only=True, slots=True)
class MediaOutcome:
    """A partition's media results read back from staging, its clips' files written under a local folder."""

    clips: list[AnnotatedClip]
    quarantine: list[QuarantineRecord]
    failed: list[LedgerEntry] = field(default_factory=list)
    ledger: list[LedgerEntry] = field(default_factory=list)
    left_out: list[AnnotatedClip] = field(default_factory=list)
    """The clips the caller asked to leave out, as stored (bare file names): their files were not unstaged."""


def media_config_hash(cfg: CurateConfig) -> str:
    """Hash of the settings that shape media results (changing dialogue settings redoes no decoding)."""
    return fingerprint(to_json(cfg.probe), to_json(cfg.decode), to_json(cfg.asr), to_json(cfg.visual))


def partition_ledger(work: DatasetLocation, partition: int) -> RunLedger:
    return RunLedger(work, LEDGER_DIR, partition_dir(partition))


def source_keys(cfg: CurateConfig, sources: list[SourceItem]) -> dict[str, str]:
    config_hash = media_config_hash(cfg)
    return {src.uri: source_fingerprint(src.uri, config_hash) for src in sources}


def media_batches(sources: list[SourceItem], batch_size: int) -> list[list[SourceItem]]:
    """The sources in batches, in their order: each holds ``batch_size`` sources that may carry sound, or four
    stills in place of each (a still weighs a quarter of one, as in a decode group), at least one source.

    Stills are small and quick, so a still-heavy partition writes a quarter of the ledger batches and staging
    files it would at one source each (a bucket's requests), and a batch of 32 stills, two decode groups, no
    longer drains the stage's window before the next batch starts; a source that may carry sound still counts one,
    so the decoded bytes a partition task holds until they are staged stay as bounded as before. Measured on 2
    cores, 2,000 images, four alternating pairs of flows: 148.0-165.6 CPU-s (mean 153.9) against 153.4-161.7
    (mean 158.2) for 32 stills a batch, within the box's spread."""
    from pipelines.media_stage import SOUND_WEIGHT, weighted_end

    batches, first = [], 0
    while first < len(sources):
        end = weighted_end(sources, first, batch_size * SOUND_WEIGHT)
        batches.append(sources[first:end])
        first = end
    return batches


def partition_media(cfg: CurateConfig, partition: int, sources: list[SourceItem], actors, work: DatasetLocation,
                    *, batch_size: int) -> Generator[int, None, PartitionMedia]:
    """The media stage over one partition's sources not yet in its ledger; returns the partition's tallies.

    A generator: after each batch it yields how many of the partition's sources are finished, a count and not an
    increment, so a task run again does not count twice. The batches are drawn over all the partition's sources
    (``media_batches``) and a batch runs the ones the ledger lacks, so the task yields one count per batch however
    much the ledger already had, and a task that Ray runs again from the start yields as many objects as its first
    attempt did."""
    from pipelines.media_stage import run_media_stage

    ledger = partition_ledger(work, partition)
    keys = source_keys(cfg, sources)
    known = ledger.entries(STAGE)
    staged = set(work.listdir(STAGED_MEDIA_DIR, partition_dir(partition)))
    todo = [s for s in sources if keys[s.uri] not in known or not _entry_is_usable(known[keys[s.uri]], staged)]
    log.info("partition %d: %d sources, %d already in the ledger, %d to do", partition, len(sources),
             len(sources) - len(todo), len(todo))
    counters: defaultdict[str, int] = defaultdict(int)
    finished = len(sources) - len(todo)
    wanted = {s.uri for s in todo}
    for batch in media_batches(sources, batch_size):
        batch = [s for s in batch if s.uri in wanted]
        if batch:
            entries, batch_counters = _run_batch(run_media_stage, cfg, partition, batch, keys, actors, work)
            ledger.record(entries)
            finished += len(batch)
            for name, value in batch_counters.items():
                counters[name] += value
        yield finished
    return _tally(partition, ledger.entries(STAGE), keys, dict(counters))


def _entry_is_usable(entry: LedgerEntry, staged: set[str]) -> bool:
    """Failed entries wait for ``retry --failed``; a done entry is reusable while its staged bytes exist."""
    if entry.status == "done":
        return not entry.blobs or entry.blobs in staged
    return True


def _run_batch(run_media_stage, cfg: CurateConfig, partition: int, batch: list[SourceItem], keys: dict[str, str],
               actors, work: DatasetLocation, attempts: int = 3) -> tuple[list[LedgerEntry], dict[str, int]]:
    for attempt in range(1, attempts + 1):
        try:
            result = run_media_stage(cfg, batch, actors)
            break
        except PROGRAMMING_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed batch is data: its items are marked failed
            if is_transient(exc) and attempt < attempts:
                log.warning("media batch attempt %d failed (%s), retrying", attempt, type(exc).__name__)
                time.sleep(2 * attempt)
                continue
            log.warning("media batch of %d sources failed: %s: %s", len(batch), type(exc).__name__, exc)
            return [LedgerEntry(item=keys[s.uri], uri=s.uri, stage=STAGE, status="failed",
                                error_class=type(exc).__name__, detail=error_detail(exc)) for s in batch], {}
    signatures = [clip_signature(c.clip, partition, first_frame=_first_frame(c, result.files)) for c in result.clips]
    blobs = _stage_bytes(work, partition, result.files, signatures) if result.files else ""
    clips_by_uri: dict[str, list[AnnotatedClip]] = defaultdict(list)
    for clip in result.clips:
        clips_by_uri[clip.clip.source_uri].append(clip)
    refused = {q.uri: q for q in result.quarantine}
    entries = []
    for src in batch:
        if src.uri in refused:
            q = refused[src.uri]
            entries.append(LedgerEntry(item=keys[src.uri], uri=src.uri, stage=STAGE, status="quarantined",
                                       error_class=q.reason, detail=q.detail[:500], result=to_json(q)))
        else:
            clips = sorted(clips_by_uri.get(src.uri, []), key=lambda c: (c.clip.start_s, c.clip.clip_id))
            spent = result.usage.get(src.uri, [])
            entries.append(LedgerEntry(item=keys[src.uri], uri=src.uri, stage=STAGE, status="done",
                                       result="[" + ",".join(to_json(c) for c in clips) + "]",
                                       blobs=blobs if clips else "",
                                       usage=json.dumps([u.to_row() for u in spent]) if spent else ""))
    return entries, result.counters


def error_detail(exc: BaseException, limit: int = 500) -> str:
    """One line for the ledger: the error's first line and, for a remote traceback, its last (the cause)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    text = lines[0] if len(lines) == 1 else f"{lines[0][:200]} ... {lines[-1]}"
    return text[:limit]


def _first_frame(clip: AnnotatedClip, files: dict[str, dict[str, bytes]]) -> bytes | None:
    frames = clip.clip.frame_paths  # the media stage's clips name their files, the bytes are in ``files``
    return files[clip.clip.clip_id][frames[0]] if frames else None


def _stage_bytes(work: DatasetLocation, partition: int, files: dict[str, dict[str, bytes]],
                 signatures: list[MediaSignature]) -> str:
    """One Parquet file of (clip id, file name, bytes) for a batch, its clips' signatures in its schema's
    metadata; returns its name."""
    rows = sorted((cid, check_file_name(name), data) for cid, named in files.items() for name, data in named.items())
    metadata = {SIGNATURES_KEY: json.dumps([to_dict(sig) for sig in signatures], sort_keys=True)}
    table = pa.table({"clip_id": [r[0] for r in rows], "name": [r[1] for r in rows], "data": [r[2] for r in rows]},
                     schema=_BLOBS.with_metadata(metadata))
    name = f"{uuid.uuid4().hex}.parquet"
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="none")  # media bytes are compressed already
    work.write_bytes((STAGED_MEDIA_DIR, partition_dir(partition), name), buffer.getvalue())
    return name


def _tally(partition: int, entries: dict[str, LedgerEntry], keys: dict[str, str],
           counters: dict[str, int]) -> PartitionMedia:
    mine = sorted((entries[k] for k in set(keys.values()) if k in entries), key=lambda e: e.uri)
    failed = [e for e in mine if e.status == "failed"]
    first = failed[0] if failed else None
    return PartitionMedia(partition=partition, sources=len(keys),
                          clips=sum(len(json.loads(e.result)) for e in mine if e.status == "done"),
                          quarantined=sum(e.status == "quarantined" for e in mine), failed=len(failed),
                          first_error=f"{first.uri}: {first.error_class}: {first.detail}" if first else "",
                          counters=counters)


def ledger_usage(entries: list[LedgerEntry]) -> list[StageUsage]:
    """What the entries' model requests cost (the captioner's), summed per stage and model."""
    return total_usage(StageUsage.from_row(row) for entry in entries if entry.usage for row in json.loads(entry.usage))


def _partition_entries(cfg: CurateConfig, partition: int, sources: list[SourceItem],
                       work: DatasetLocation) -> list[LedgerEntry]:
    """The ledger entries of the partition's sources, by URI."""
    keys = source_keys(cfg, sources)
    entries = partition_ledger(work, partition).entries(STAGE)
    return sorted((entries[k] for k in set(keys.values()) if k in entries), key=lambda e: e.uri)


def staged_signatures(cfg: CurateConfig, partition: int, sources: list[SourceItem],
                         work: DatasetLocation) -> list[MediaSignature] | None:
    """The dedup signatures of the partition's clips, in ``load_partition_media``'s order, from the staging files'
    footers (their bytes are not read); None when a staging file carries none (staged by an older version)."""
    wanted = [(entry.blobs, raw["clip"]["clip_id"]) for entry in _partition_entries(cfg, partition, sources, work)
              if entry.status == "done" for raw in json.loads(entry.result)]
    staged: dict[str, dict[str, MediaSignature]] = {}
    for blobs in sorted({blobs for blobs, _ in wanted}):
        with work.open(STAGED_MEDIA_DIR, partition_dir(partition), blobs) as f:
            raw = (pq.read_schema(f).metadata or {}).get(SIGNATURES_KEY)
        if raw is None:
            return None
        staged[blobs] = {sig.clip_id: sig for sig in (from_dict(MediaSignature, s) for s in json.loads(raw))}
    return [staged[blobs][clip_id] for blobs, clip_id in wanted]


def load_partition_media(cfg: CurateConfig, partition: int, sources: list[SourceItem], work: DatasetLocation,
                         scratch: str | Path, leave_out: Collection[str] = ()) -> MediaOutcome:
    """The partition's ledger results in a deterministic order, their clips' files written under ``scratch``;
    the clips named in ``leave_out`` (the dedup pass's duplicates) come back apart, their files left staged."""
    mine = _partition_entries(cfg, partition, sources, work)
    clips: list[AnnotatedClip] = []
    left_out: list[AnnotatedClip] = []
    quarantine: list[QuarantineRecord] = []
    failed: list[LedgerEntry] = []
    wanted: dict[str, set[str]] = defaultdict(set)
    for entry in mine:
        if entry.status == "done":
            for clip in (from_dict(AnnotatedClip, raw) for raw in json.loads(entry.result)):
                if clip.clip.clip_id in leave_out:
                    left_out.append(clip)
                    continue
                clips.append(located_clip(clip, scratch))
                wanted[entry.blobs].add(clip.clip.clip_id)
        elif entry.status == "quarantined":
            quarantine.append(from_dict(QuarantineRecord, json.loads(entry.result)))
        else:
            failed.append(entry)
    for blobs, clip_ids in sorted(wanted.items()):
        _unstage_bytes(work, partition, blobs, clip_ids, Path(scratch))
    return MediaOutcome(clips=clips, quarantine=quarantine, failed=failed, ledger=mine, left_out=left_out)


def _unstage_bytes(work: DatasetLocation, partition: int, blobs: str, clip_ids: set[str], scratch: Path) -> None:
    with work.open(STAGED_MEDIA_DIR, partition_dir(partition), blobs) as f:
        table = pq.read_table(f, schema=_BLOBS)
    for clip_id, name, data in zip(table["clip_id"].to_pylist(), table["name"].to_pylist(), table["data"].to_pylist()):
        if clip_id in clip_ids:
            folder = scratch / check_clip_id(clip_id)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / check_file_name(name)).write_bytes(data)
