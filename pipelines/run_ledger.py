"""Per-item run ledger: what each stage finished, failed or quarantined, keyed by content and config.

Entries are appended in batches; each batch file is written whole (a temporary name renamed into place on
disk, one PUT in a bucket), so a kill leaves either the whole batch or none of it. The ledger lives on the
dataset's own storage (a directory or an ``s3://``/``gs://`` prefix), so a resume may run on other machines. Completion is keyed by the item's fingerprint
and the stage's config hash, never by position, so a resume with another worker count stays correct.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipelines.dataset.location import DatasetLocation, as_location

Status = Literal["done", "failed", "quarantined"]


@dataclass(kw_only=True, slots=True, frozen=True)
class LedgerEntry:
    item: str
    """Fingerprint of the item (content identity + stage config)."""
    uri: str
    stage: str
    status: Status
    error_class: str = ""
    """Exception class of a failure (``TimeoutError``, ``RayActorError``)."""
    detail: str = ""
    result: str = ""
    """The stage's output for the item as JSON, for done and quarantined items."""
    blobs: str = ""
    """Name of the staged file holding the item's decoded media bytes (done media items)."""
    usage: str = ""
    """What the item's model requests cost, as JSON ``StageUsage`` rows (a done media item an endpoint captioned),
    so a resumed run still reports it."""


def fingerprint(*parts: object) -> str:
    """Stable short hash of the given parts."""
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode())
        h.update(b"\x00")
    return h.hexdigest()[:24]


def source_fingerprint(uri: str, config_hash: str) -> str:
    """Identity of a source for resume: its bytes' size and modification time, or a bucket's ETag."""
    try:
        st = os.stat(uri)
        identity: tuple = (st.st_size, st.st_mtime_ns)
    except OSError:
        identity = _remote_identity(uri)
    return fingerprint(uri, identity, config_hash)


def _remote_identity(uri: str) -> tuple:
    try:
        import fsspec

        fs, path = fsspec.core.url_to_fs(uri)
        info = fs.info(path)
        return (info.get("size"), info.get("ETag") or info.get("etag") or info.get("mtime"))
    except Exception:  # noqa: BLE001 - an unreadable source is re-tried, and quarantined by the probe
        return ("unknown",)


class RunLedger:
    """Ledger under ``root`` (a local directory, a bucket prefix, or a location and the parts below it)."""

    def __init__(self, root: str | Path | DatasetLocation, *parts: str):
        self.location = as_location(root if isinstance(root, DatasetLocation) else str(root))
        self.parts = parts
        self.location.makedirs(*parts)

    def entries(self, stage: str | None = None) -> dict[str, LedgerEntry]:
        """Latest entry per item (later batches win), optionally for one stage."""
        latest: dict[str, LedgerEntry] = {}
        for entry in self._read(self._batches()):
            if stage is None or entry.stage == stage:
                latest[entry.item] = entry
        return latest

    def _batches(self) -> list[str]:
        """Batch file names in the order they were written (they start with a sequence number)."""
        return [n for n in self.location.listdir(*self.parts) if n.endswith(".jsonl")]

    def _read(self, names: list[str]) -> Iterable[LedgerEntry]:
        for name in names:
            for line in self.location.read_bytes(*self.parts, name).decode().splitlines():
                yield LedgerEntry(**json.loads(line))

    def record(self, entries: Iterable[LedgerEntry]) -> None:
        rows = [json.dumps({f: getattr(e, f) for f in LedgerEntry.__slots__}, sort_keys=True) for e in entries]
        if not rows:
            return
        batches = self._batches()
        seq = int(batches[-1].split("-", 1)[0]) + 1 if batches else 0
        name = f"{seq:09d}-{uuid.uuid4().hex[:8]}.jsonl"
        self.location.write_bytes((*self.parts, name), ("\n".join(rows) + "\n").encode())

    def forget_failed(self, stage: str | None = None) -> int:
        """Drop failed entries so the next run retries exactly those items; returns how many."""
        failed = [e for e in self.entries(stage).values() if e.status == "failed"]
        if not failed:
            return 0
        old = self._batches()
        keep = [e for e in self.entries().values() if not (e.status == "failed" and (stage is None or e.stage == stage))]
        # one new batch replaces the old ones; a kill between the two steps only leaves entries that fold away
        self.record(keep)
        for name in old:
            self.location.remove(*self.parts, name)
        return len(failed)


LEDGER_COLUMNS = ("uri", "stage", "status", "error_class", "detail", "item")


def ledger_schema():
    import pyarrow as pa

    return pa.schema([(name, pa.string()) for name in LEDGER_COLUMNS])


def ledger_table(entries: Iterable[LedgerEntry]):
    """The ledger as a catalog table: one row per item with its stage, status and error class."""
    import pyarrow as pa

    rows = list(entries)
    return pa.table({name: [getattr(e, name) for e in rows] for name in LEDGER_COLUMNS}, schema=ledger_schema())
