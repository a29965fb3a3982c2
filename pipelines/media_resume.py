"""Run the media stage in batches over the sources not yet in the run ledger, recording each batch.

A batch that finishes lands in the ledger whole; a killed run resumes with the next unfinished source.
A batch that fails (after the caller's retries) marks its items ``failed`` with the error class and the
run goes on with the rest; ``omnicurate retry --failed`` re-runs exactly those.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.ray_runtime import is_transient
from pipelines.run_ledger import LedgerEntry, RunLedger, fingerprint, source_fingerprint
from schemas.config import CurateConfig
from schemas.media import AnnotatedClip, QuarantineRecord
from schemas.validation import from_dict, to_json

log = logging.getLogger(__name__)

STAGE = "media"
PROGRAMMING_ERRORS = (TypeError, AttributeError, NameError, ImportError, SyntaxError, AssertionError)


@dataclass(kw_only=True, slots=True)
class MediaOutcome:
    """Everything the media stage holds for the run, resumed entries included."""

    clips: list[AnnotatedClip]
    quarantine: list[QuarantineRecord]
    failed: list[LedgerEntry] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    ledger: list[LedgerEntry] = field(default_factory=list)


def media_config_hash(cfg: CurateConfig) -> str:
    """Hash of the settings that shape media results (changing dialogue settings redoes no decoding)."""
    return fingerprint(to_json(cfg.probe), to_json(cfg.decode), to_json(cfg.asr), to_json(cfg.visual))


def _entry_is_usable(entry: LedgerEntry) -> bool:
    """A done entry is reusable only while the decoded files it points to still exist."""
    if entry.status != "done":
        return entry.status == "quarantined"
    return all(Path(c["clip"]["media_path"]).exists() for c in json.loads(entry.result))


def run_media_resumable(cfg: CurateConfig, ledger: RunLedger, *, batch_size: int = 16, progress: bool = True,
                        sources: list | None = None) -> MediaOutcome:
    from curators.sources import list_sources
    from pipelines.media_actors import release_media_actors
    from pipelines.media_stage import run_media_stage

    sources = list_sources(cfg.input) if sources is None else sources
    config_hash = media_config_hash(cfg)
    keys = {src.uri: source_fingerprint(src.uri, config_hash) for src in sources}
    known = ledger.entries(STAGE)
    todo = [s for s in sources if keys[s.uri] not in known
            or (known[keys[s.uri]].status != "failed" and not _entry_is_usable(known[keys[s.uri]]))]
    log.info("media: %d sources, %d already in the ledger, %d to do", len(sources), len(sources) - len(todo), len(todo))

    bar = _progress(total=len(sources), initial=len(sources) - len(todo), enabled=progress)
    try:
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            ledger.record(_run_batch(run_media_stage, cfg, batch, keys))
            bar.update(len(batch))
    finally:
        release_media_actors()  # decoders and models were started once for all batches
        bar.close()
    return _assemble(ledger.entries(STAGE), keys)


def _run_batch(run_media_stage, cfg: CurateConfig, batch: list, keys: dict[str, str],
               attempts: int = 3) -> list[LedgerEntry]:
    for attempt in range(1, attempts + 1):
        try:
            result = run_media_stage(cfg, sources=batch, progress=False, keep_actors=True)
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
                                error_class=type(exc).__name__, detail=str(exc)[:500]) for s in batch]
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
            entries.append(LedgerEntry(item=keys[src.uri], uri=src.uri, stage=STAGE, status="done",
                                       result="[" + ",".join(to_json(c) for c in clips) + "]"))
    return entries


def _assemble(entries: dict[str, LedgerEntry], keys: dict[str, str]) -> MediaOutcome:
    """Gather the results of this run's sources from the ledger, in a deterministic order."""
    clips: list[AnnotatedClip] = []
    quarantine: list[QuarantineRecord] = []
    failed: list[LedgerEntry] = []
    mine = [entries[k] for k in sorted(set(keys.values())) if k in entries]
    for entry in sorted(mine, key=lambda e: e.uri):
        if entry.status == "done":
            clips.extend(from_dict(AnnotatedClip, raw) for raw in json.loads(entry.result))
        elif entry.status == "quarantined":
            quarantine.append(from_dict(QuarantineRecord, json.loads(entry.result)))
        else:
            failed.append(entry)
    counters = {"sources": len(keys), "clips": len(clips), "failed_sources": len(failed)}
    return MediaOutcome(clips=clips, quarantine=quarantine, failed=failed, counters=counters, ledger=mine)


def _progress(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="media files", unit="file", disable=not enabled, leave=True)
