"""What model-backed stages cost: requests, tokens, cache hits and failures, per stage and model."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields


@dataclass(kw_only=True, slots=True, frozen=True)
class StageUsage:
    """One stage's requests to one model (measured by a client, or estimated by ``curate --dry-run``)."""

    stage: str
    """Which stage asked: ``writer``, ``answerer`` (the memory check), ``captioner``."""
    model: str
    """The model name the requests carried (a server's model id or a local folder name)."""
    requests: int = 0
    """Requests sent to the model (HTTP retries included; cache hits excluded)."""
    prompt_tokens: int = 0
    """Prompt tokens the server reported in its replies' ``usage`` (or the local model's tokenizer counted)."""
    completion_tokens: int = 0
    """Completion tokens, likewise."""
    cache_hits: int = 0
    """Requests answered from the on-disk request cache: nothing sent, nothing paid."""
    failures: int = 0
    """Requests that got no usable reply after every retry."""

    def plus(self, other: StageUsage) -> StageUsage:
        counts = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)
                  if f.name not in ("stage", "model")}
        return StageUsage(stage=self.stage, model=self.model, **counts)

    def minus(self, earlier: StageUsage) -> StageUsage:
        """What was spent since the ``earlier`` snapshot of the same counter."""
        counts = {f.name: getattr(self, f.name) - getattr(earlier, f.name) for f in fields(self)
                  if f.name not in ("stage", "model")}
        return StageUsage(stage=self.stage, model=self.model, **counts)

    def to_row(self) -> dict:
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict) -> StageUsage:
        return cls(**{f.name: row[f.name] for f in fields(cls)})


def total_usage(rows: Iterable[StageUsage]) -> list[StageUsage]:
    """One row per (stage, model), summed, in first-seen order."""
    out: dict[tuple[str, str], StageUsage] = {}
    for row in rows:
        key = (row.stage, row.model)
        out[key] = out[key].plus(row) if key in out else row
    return list(out.values())


USAGE_TABLE = "usage"
"""The catalog table of model usage: one row per partition, stage and model."""


USAGE_COLUMNS = {
    "partition": "Partition whose clips the requests were for (captions in its media stage, dialogues in its commit).",
    "stage": "Stage that asked: writer, answerer (the memory check), captioner.",
    "model": "Model name the requests carried.",
    "requests": "Requests sent (HTTP retries included, cache hits excluded).",
    "prompt_tokens": "Prompt tokens the server reported in the replies' usage.",
    "completion_tokens": "Completion tokens the server reported.",
    "cache_hits": "Requests answered from the request cache (nothing sent).",
    "failures": "Requests with no usable reply after every retry.",
}


def usage_schema():
    """Arrow schema of the ``usage`` catalog table."""
    import pyarrow as pa

    types = {"partition": pa.int32(), "stage": pa.string(), "model": pa.string()}
    return pa.schema([pa.field(name, types.get(name, pa.int64()), nullable=False, metadata={"doc": doc})
                      for name, doc in USAGE_COLUMNS.items()])


def usage_table(rows: Iterable[StageUsage], partition: int):
    """The ``usage`` rows of one partition (summed per stage and model) as an Arrow table."""
    import pyarrow as pa

    summed = total_usage(rows)
    schema = usage_schema()
    columns = {"partition": [partition] * len(summed)}
    columns |= {f.name: [getattr(r, f.name) for r in summed] for f in fields(StageUsage)}
    return pa.table(columns, schema=schema)
