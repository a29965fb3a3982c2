"""Build the catalog: Parquet tables of samples, turns, media, verdicts, quarantine, lineage, clips and facts, and
DuckDB views over them that resolve from any working directory."""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.dataset.location import DatasetLocation, as_location
from schemas.catalog_tables import SCHEMAS
from schemas.dataset_format import (CATALOG_DB, CATALOG_DIR, CATALOG_ROOT_VARIABLE, CATALOG_SQL, CATALOG_TABLES,
                                    SHARDS_DIR)
from schemas.dialogue import MEMORY_TYPES, CuratedSample, Sample
from schemas.media import AnnotatedClip, QuarantineRecord

_TABLE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class CatalogBuilder:
    """Accumulates catalog rows sample by sample, so the samples can stream past once."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, list]] = {name: defaultdict(list) for name in CATALOG_TABLES}
        self._keys: set[str] = set()

    def _append(self, table: str, **values) -> None:
        cols = self.rows[table]
        for name in SCHEMAS[table].names:
            cols[name].append(values[name])

    def add(self, curated: CuratedSample) -> None:
        s: Sample = curated.sample
        if s.key in self._keys:
            raise ValueError(f"duplicate sample key {s.key} in the catalog")
        self._keys.add(s.key)
        kept = curated.kept
        turns = s.dialogue.turns
        memory_distances = [t.memory_distance for t in turns if t.memory_distance is not None]
        spoken = sum(bool(m.speech_member) for t in turns for m in (t.user, t.assistant))
        self._append("samples", key=s.key, shard=None, kept=kept, schema_version=s.schema_version,
                     dialogue_id=s.dialogue.dialogue_id, num_turns=len(turns), num_media=len(s.dialogue.media),
                     num_memory_questions=sum(t.question_type in MEMORY_TYPES for t in turns),
                     num_spoken_messages=spoken, max_memory_distance=max(memory_distances, default=None),
                     token_text=s.tokens.text, token_image=s.tokens.image, token_video=s.tokens.video,
                     token_audio=s.tokens.audio, token_total=s.tokens.total,
                     failed_filters=sorted({v.filter for v in s.verdicts if not v.passed}),
                     has_preference=s.preference is not None, bytes=None, seed=s.lineage.seed,
                     config_hash=s.lineage.config_hash)
        for t in turns:
            self._append("turns", key=s.key, turn=t.index, question_type=t.question_type,
                         is_memory=t.question_type in MEMORY_TYPES, memory_distance=t.memory_distance,
                         memory_turns=[r.turn for r in t.memory_refs],
                         memory_members=[r.member for r in t.memory_refs if r.member],
                         user_text=t.user.text, assistant_text=t.assistant.text, answer_key=t.answer_key,
                         user_media=[p.member for p in t.user.parts if p.member],
                         user_speech=t.user.speech_member, assistant_speech=t.assistant.speech_member,
                         fact_ids=list(t.fact_ids))
        for m in s.dialogue.media:
            self._append("media", key=s.key, member=m.member, kind=m.kind, clip_id=m.clip_id,
                         source_uri=m.source_uri, start_s=m.start_s, end_s=m.end_s, duration_s=m.end_s - m.start_s,
                         turn=m.turn, tiles=m.tiles, bytes=None)
        for v in s.verdicts:
            self._append("verdicts", key=s.key, kept=kept, filter=v.filter, passed=v.passed, code=v.code,
                         detail=v.detail, score=v.score, turn=v.turn)
        lin = s.lineage
        common = {"key": s.key, "operators": sorted(lin.operators.items()), "models": sorted(lin.models.items()),
                  "prompt_hashes": sorted(lin.prompt_hashes.items()), "seed": lin.seed,
                  "config_hash": lin.config_hash}
        for src in lin.sources or [None]:
            self._append("lineage", source_uri=src and src.uri, source_sha256=src and src.sha256,
                         start_s=src and src.start_s, end_s=src and src.end_s, **common)

    def add_quarantine(self, records: Iterable[QuarantineRecord]) -> None:
        for q in records:
            self._append("quarantine", uri=q.uri, reason=q.reason, detail=q.detail, stage=q.stage,
                         size_bytes=q.size_bytes, sha256=q.sha256)

    def add_clips(self, clips: Iterable[AnnotatedClip]) -> None:
        """A row per clip the dialogues were made from (its transcript) and one per fact about it."""
        for annotated in clips:
            c, t = annotated.clip, annotated.transcript
            self._append("clips", clip_id=c.clip_id, media_id=c.media_id, source_uri=c.source_uri,
                         source_sha256=annotated.source_sha256 or None, kind=c.kind, start_s=c.start_s,
                         end_s=c.end_s, transcript=t and t.text, language=t and t.language,
                         language_probability=t and t.language_probability, asr_confidence=t and t.confidence,
                         asr_model=t and t.model_id, rejected_segments=t and t.rejected_segments)
            for f in annotated.facts:
                self._append("facts", fact_id=f.fact_id, clip_id=f.clip_id, kind=f.kind, value=f.value,
                             source=f.source, confidence=f.confidence, start_s=f.start_s, end_s=f.end_s)

    def tables(self, location: DatasetLocation | None = None, shards: list[str] | None = None) -> dict[str, pa.Table]:
        """The catalog tables; with a location, shard and byte columns are filled from its shard indexes (of
        ``shards`` only, when given)."""
        tables = {name: pa.table(dict(self.rows[name]), schema=SCHEMAS[name]) if self.rows[name]
                  else SCHEMAS[name].empty_table() for name in CATALOG_TABLES}
        if location is not None:
            tables = fill_storage_columns(tables, location, shards)
        return tables

    def write(self, out: str | DatasetLocation, extra_tables: dict[str, pa.Table] | None = None) -> dict[str, pa.Table]:
        location = as_location(out)
        tables = self.tables(location)
        write_catalog(location, tables, extra_tables)
        return tables


def fill_storage_columns(tables: dict[str, pa.Table], location: DatasetLocation,
                         shards: list[str] | None = None) -> dict[str, pa.Table]:
    """Join each kept sample to its shard and member sizes through the shard indexes (what the tars hold):
    those of ``shards`` (shard file names), or every index under ``shards/``."""
    shard_of: dict[str, str] = {}
    member_size: dict[str, int] = {}
    sample_bytes: dict[str, int] = defaultdict(int)
    indexes = (location.listdir(SHARDS_DIR) if shards is None
               else [name.removesuffix(".tar") + ".index.parquet" for name in shards])
    for name in indexes:
        if not name.endswith(".index.parquet"):
            continue
        with location.open(SHARDS_DIR, name) as f:
            index = pq.read_table(f)
        shard = name.removesuffix(".index.parquet") + ".tar"
        for key, member, size in zip(index["key"].to_pylist(), index["member"].to_pylist(), index["size"].to_pylist()):
            shard_of[key] = shard
            member_size[member] = size
            sample_bytes[key] += size
    samples = tables["samples"]
    keys = samples["key"].to_pylist()
    kept = samples["kept"].to_pylist()
    samples = samples.set_column(samples.schema.get_field_index("shard"), samples.schema.field("shard"),
                                 pa.array([shard_of.get(k) if ok else None for k, ok in zip(keys, kept)], pa.string()))
    samples = samples.set_column(samples.schema.get_field_index("bytes"), samples.schema.field("bytes"),
                                 pa.array([sample_bytes.get(k) if ok else None for k, ok in zip(keys, kept)],
                                          pa.int64()))
    media = tables["media"]
    names = [f"{k}.{m}" for k, m in zip(media["key"].to_pylist(), media["member"].to_pylist())]
    media = media.set_column(media.schema.get_field_index("bytes"), media.schema.field("bytes"),
                             pa.array([member_size.get(n) for n in names], pa.int64()))
    return {**tables, "samples": samples, "media": media}


SINGLE_FRAGMENT = "all"
"""Fragment name of a catalog written in one piece (a subset, a dataset written by one writer)."""


def _fragment_name(fragment: str) -> str:
    if not _TABLE_NAME_RE.match(fragment):
        raise ValueError(f"catalog fragment name {fragment!r} must be a lowercase identifier")
    return f"{fragment}.parquet"


def write_catalog_fragment(out: str | DatasetLocation, fragment: str, tables: dict[str, pa.Table]) -> None:
    """Write ``catalog/<table>/<fragment>.parquet`` for every table (one fragment per partition), each atomically."""
    location = as_location(out)
    for name, table in tables.items():
        if not _TABLE_NAME_RE.match(name):
            raise ValueError(f"catalog table name {name!r} must be a lowercase identifier")
        if name in SCHEMAS and not table.schema.equals(SCHEMAS[name]):
            raise ValueError(f"catalog table {name} does not match schemas.catalog_tables.{name.upper()}")
        location.makedirs(CATALOG_DIR, name)
        with location.atomic_writer(CATALOG_DIR, name, _fragment_name(fragment)) as f:
            pq.write_table(table, f, compression="zstd")


def prune_catalog(out: str | DatasetLocation, fragments: set[str], tables: set[str]) -> None:
    """Remove catalog files of other fragments or tables (an earlier run's) and any older flat layout."""
    location = as_location(out)
    keep = {_fragment_name(f) for f in fragments}
    for name in location.listdir(CATALOG_DIR):
        if name not in tables:
            location.remove(CATALOG_DIR, name)
            continue
        for file in location.listdir(CATALOG_DIR, name):
            if file not in keep:
                location.remove(CATALOG_DIR, name, file)


def read_catalog_table(out: str | DatasetLocation, name: str) -> pa.Table:
    """One catalog table, all its fragments concatenated in fragment order."""
    location = as_location(out)
    files = [f for f in location.listdir(CATALOG_DIR, name) if f.endswith(".parquet")]
    if not files:
        raise FileNotFoundError(f"{location.path(CATALOG_DIR, name)} holds no catalog fragment")
    parts = []
    for file in files:
        with location.open(CATALOG_DIR, name, file) as f:
            parts.append(pq.read_table(f))
    return pa.concat_tables(parts)


def write_catalog(out: str | DatasetLocation, tables: dict[str, pa.Table],
                  extra_tables: dict[str, pa.Table] | None = None) -> None:
    """Write the whole catalog as one fragment per table and ``catalog.duckdb`` with a view per table."""
    location = as_location(out)
    all_tables = dict(tables)
    for name, table in (extra_tables or {}).items():
        if not _TABLE_NAME_RE.match(name) or name in CATALOG_TABLES:
            raise ValueError(f"extra catalog table name {name!r} must be a new lowercase identifier")
        all_tables[name] = table
    missing = [name for name in CATALOG_TABLES if name not in all_tables]
    if missing:
        raise ValueError(f"catalog tables missing: {', '.join(missing)}")
    write_catalog_fragment(location, SINGLE_FRAGMENT, all_tables)
    prune_catalog(location, {SINGLE_FRAGMENT}, set(all_tables))
    write_catalog_views(location, {name: table.schema for name, table in all_tables.items()})


CATALOG_STORAGE_VERSION = "v1.1.0"
"""Storage format of ``catalog.duckdb``: the pinned DuckDB writes its own newest by default, which older DuckDB
CLIs refuse; 1.1 is the oldest that has the views' ``getvariable``."""


def catalog_root_sql(location: DatasetLocation) -> str:
    """SQL for the dataset root a view reads from, ending in ``/`` (or empty: the working directory).

    ``SET VARIABLE omnicurate_dataset`` wins. Else a bucket dataset's views name its URL (httpfs reads it). A
    local one's find the files beside ``catalog.duckdb`` however it was reached: DuckDB gives a view no path of
    its database, but a database opened as a file (CLI, ``duckdb.connect``) defaults ``temp_directory`` to that
    path + ``.tmp``; otherwise (an ATTACH, a temp directory set by hand) the path resolves against the working
    directory and ``file_search_path``. Table-function arguments must fold to constants, so no subquery.
    """
    chosen = f"getvariable('{CATALOG_ROOT_VARIABLE}') || '/'"
    if not location.is_local:
        return f"coalesce({chosen}, '{_sql_string(location.url.rstrip('/'))}/')"
    tmp, own = "current_setting('temp_directory')", re.escape(f"{CATALOG_DB}.tmp")
    beside = (f"CASE WHEN regexp_matches({tmp}, '(^|[/\\\\]){own}$') THEN regexp_replace({tmp}, '{own}$', '') "
              "ELSE '' END")
    return f"coalesce({chosen}, {beside})"


def catalog_view_sql(location: DatasetLocation, schemas: Iterable[str]) -> list[str]:
    """``CREATE OR REPLACE VIEW`` of each table, over all of ``catalog/<name>/*.parquet``."""
    root = catalog_root_sql(location)
    return [f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet({root} || '{CATALOG_DIR}/{name}/*.parquet')"
            for name in schemas]


def _catalog_sql_file(location: DatasetLocation, views: list[str]) -> str:
    if location.is_local:
        how = ["-- In the dataset directory: duckdb -init catalog.sql   (or .read catalog.sql in a session).",
               f"-- Anywhere else: SET VARIABLE {CATALOG_ROOT_VARIABLE} = '/path/to/dataset'; first."]
    else:
        how = [f"-- The views read {location.url} through httpfs: INSTALL httpfs; LOAD httpfs; and a secret",
               "-- (CREATE SECRET (TYPE s3, PROVIDER credential_chain); needs the aws extension), first.",
               f"-- For a copy on disk: SET VARIABLE {CATALOG_ROOT_VARIABLE} = '/path/to/copy'; first."]
    return "\n".join(["-- The views of catalog.duckdb, for any DuckDB 1.1 or newer (an in-memory session, an ATTACH).",
                      *how, *(f"{v};" for v in views)]) + "\n"


def write_catalog_views(out: str | DatasetLocation, schemas: dict[str, pa.Schema]) -> None:
    """Write ``catalog.duckdb`` (storage format 1.1) with one view per table over all of
    ``catalog/<name>/*.parquet``, and the same views as SQL in ``catalog.sql``.

    The views resolve from any working directory, and after the dataset is moved (:func:`catalog_root_sql`).
    """
    location = as_location(out)
    views = catalog_view_sql(location, schemas)
    with tempfile.TemporaryDirectory(prefix="omnicurate-catalog-") as tmp:
        staging = Path(tmp)
        for name, schema in schemas.items():
            # views bind against the files when created, so stage the schemas next to the db
            (staging / CATALOG_DIR / name).mkdir(parents=True)
            pq.write_table(schema.empty_table(), staging / CATALOG_DIR / name / "schema.parquet")
        db_path = staging / CATALOG_DB
        con = duckdb.connect()
        try:
            con.execute(f"ATTACH '{_sql_string(str(db_path))}' AS omnicurate_catalog "
                        f"(STORAGE_VERSION '{CATALOG_STORAGE_VERSION}')")
            con.execute("USE omnicurate_catalog")
            con.execute(f"SET VARIABLE {CATALOG_ROOT_VARIABLE} = '{_sql_string(str(staging))}'")
            for view in views:
                con.execute(view)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        location.put_file(db_path, CATALOG_DB)
    location.write_bytes((CATALOG_SQL,), _catalog_sql_file(location, views).encode())


def build_catalog(out: str | DatasetLocation, samples: Iterable[CuratedSample], quarantine: list[QuarantineRecord],
                  extra_tables: dict[str, pa.Table] | None = None) -> dict[str, pa.Table]:
    """Catalog every sample (kept and rejected) and quarantined file of the dataset at ``out``.

    Shard and byte columns come from the shard indexes already under ``out/shards``.
    """
    builder = CatalogBuilder()
    for curated in samples:
        builder.add(curated)
    builder.add_quarantine(quarantine)
    return builder.write(out, extra_tables)


def _sql_string(text: str) -> str:
    return text.replace("'", "''")


class ReadOnlyCatalogError(RuntimeError):
    """A statement tried to change the catalog, which reviewers open read-only."""


def open_catalog(dataset: str | Path | DatasetLocation) -> duckdb.DuckDBPyConnection:
    """Open ``catalog.duckdb`` read-only with its views resolving inside the dataset.

    A bucket dataset's catalog is copied to a local temporary directory first and its views pointed there, so
    DuckDB needs no httpfs extension (which it would download).
    """
    location = as_location(dataset)
    if location.is_local:
        root = Path(location.root)
    else:
        root = Path(tempfile.mkdtemp(prefix="omnicurate-catalog-"))
        atexit.register(shutil.rmtree, root, True)
        for name in location.listdir(CATALOG_DIR):
            (root / CATALOG_DIR / name).mkdir(parents=True)
            for file in location.listdir(CATALOG_DIR, name):
                (root / CATALOG_DIR / name / file).write_bytes(location.read_bytes(CATALOG_DIR, name, file))
        (root / CATALOG_DB).write_bytes(location.read_bytes(CATALOG_DB))
    db = root / CATALOG_DB
    if not db.is_file():
        raise FileNotFoundError(f"{db} not found: the dataset has no catalog")
    con = duckdb.connect(str(db), read_only=True)
    con.execute(f"SET VARIABLE {CATALOG_ROOT_VARIABLE} = '{_sql_string(str(root))}'")
    con.execute(f"SET file_search_path = '{_sql_string(str(root))}'")  # catalogs whose views name relative paths
    return con


def query(dataset: str | Path | DatasetLocation, sql: str, params: list | None = None) -> pa.Table:
    """Run one SQL statement against the read-only catalog and return the result as Arrow."""
    con = open_catalog(dataset)
    try:
        statements = con.extract_statements(sql)
        if len(statements) != 1:
            raise ValueError(f"give exactly one SQL statement, got {len(statements)}")
        kind = statements[0].type
        if kind not in (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN):
            raise ReadOnlyCatalogError(
                f"the catalog is read-only for review: {kind.name} statements are refused; it is rebuilt by "
                "`omnicurate curate`, not edited (use SELECT)")
        try:
            relation = con.sql(sql, params=params or None)
        except duckdb.Error as exc:
            if "read-only" in str(exc).lower():
                raise ReadOnlyCatalogError(
                    "the catalog is opened read-only for review; it is rebuilt by `omnicurate curate`, "
                    f"not edited ({exc})") from None
            raise
        return relation.to_arrow_table() if relation is not None else pa.table({})
    finally:
        con.close()
