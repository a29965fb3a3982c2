"""catalog.duckdb opens in the DuckDB CLI a reviewer has (duckdb-cli 1.5.6) and in plain Python DuckDB from any
working directory: in place, after a move, and as catalog.sql; a bucket dataset's views name its URL."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import fsspec
import pyarrow.parquet as pq
import pytest
from object_stores import s3_emulator
from shard_fixtures import QUARANTINE, make_media, make_samples, small_shards

from pipelines.dataset.catalog import query
from pipelines.dataset.writer import write_dataset
from schemas.dataset_format import CATALOG_DB, CATALOG_DIR, CATALOG_SQL, CATALOG_TABLES

DUCKDB_CLI = Path(sys.executable).with_name("duckdb")  # the duckdb-cli test dependency
EXTRA = "stage_counters"
VIEWS = (*CATALOG_TABLES, EXTRA)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    import pyarrow as pa

    root = tmp_path_factory.mktemp("catalog-cli")
    media = make_media(root / "media")
    write_dataset(root / "ds", make_samples(6, media, rejected_every=3), QUARANTINE, shard=small_shards(),
                  extra_tables={EXTRA: pa.table({"stage": ["probe"], "kept": [9]})})
    return root / "ds"


def _rows_on_disk(dataset: Path, name: str) -> int:
    return sum(pq.read_metadata(f).num_rows for f in (dataset / CATALOG_DIR / name).glob("*.parquet"))


def _cli(cwd: Path, *args: str, stdin: str | None = None) -> list[dict]:
    """Run the DuckDB CLI in ``cwd``; the rows of its last JSON result."""
    assert DUCKDB_CLI.is_file(), f"{DUCKDB_CLI} missing: install the test extra (duckdb-cli)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    done = subprocess.run([str(DUCKDB_CLI), "-json", *args], cwd=cwd, input=stdin, capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    out = done.stdout.strip()
    return json.loads(out[out.rfind("\n[") + 1:])


def _counts_sql() -> str:
    return "SELECT " + ", ".join(f"(SELECT count(*) FROM {name}) AS {name}" for name in VIEWS)


def _expected(dataset: Path) -> dict[str, int]:
    return {name: _rows_on_disk(dataset, name) for name in VIEWS}


def test_cli_reads_every_view_from_another_directory(dataset, tmp_path):
    expected = _expected(dataset)
    assert expected["samples"] == 6 and expected["turns"] > 0 and expected["quarantine"] == 3
    version = subprocess.run([str(DUCKDB_CLI), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("v1.5.6")
    for db in (str(dataset / CATALOG_DB), os.path.relpath(dataset / CATALOG_DB, tmp_path)):
        assert _cli(tmp_path, "-readonly", db, "-c", _counts_sql()) == [expected], db
    turns = _cli(tmp_path, "-readonly", str(dataset / CATALOG_DB), "-c",
                 "SELECT key, turn, question_type FROM turns WHERE key = 's00001' ORDER BY turn")
    assert [r["question_type"] for r in turns] == ["current_media", "current_media", "no_context", "memory_media"]


def test_cli_reads_a_moved_dataset(dataset, tmp_path):
    expected = _expected(dataset)
    copy = shutil.copytree(dataset, tmp_path / "copy")
    moved = shutil.move(copy, tmp_path / "archive" / "omni-v1")  # the copy it was made as is gone
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    assert _cli(elsewhere, "-readonly", str(Path(moved) / CATALOG_DB), "-c", _counts_sql()) == [expected]
    assert _cli(Path(moved), "-readonly", CATALOG_DB, "-c", _counts_sql()) == [expected]  # inside it, as before


def test_python_duckdb_opens_the_file_from_another_directory(dataset, tmp_path, monkeypatch):
    moved = shutil.copytree(dataset, tmp_path / "moved")
    monkeypatch.chdir(tmp_path)
    for db in (moved / CATALOG_DB, Path("moved") / CATALOG_DB):
        con = duckdb.connect(str(db), read_only=True)
        try:
            assert con.execute("SELECT count(*) FROM samples WHERE kept").fetchone() == (4,)
            assert con.execute(f"SELECT count(*) FROM {EXTRA}").fetchone() == (1,)
        finally:
            con.close()


def test_catalog_sql_recreates_the_views_in_a_fresh_session(dataset, tmp_path):
    expected = _expected(dataset)
    sql = (dataset / CATALOG_SQL).read_text()
    assert sql.count("CREATE OR REPLACE VIEW") == len(VIEWS)
    # in the dataset directory, as the file's header says
    assert _cli(dataset, stdin=f".read {CATALOG_SQL}\n{_counts_sql()};\n") == [expected]
    # anywhere else, with the dataset named
    script = f"SET VARIABLE omnicurate_dataset = '{dataset}';\n.read {dataset / CATALOG_SQL}\n{_counts_sql()};\n"
    assert _cli(tmp_path, stdin=script) == [expected]
    # an ATTACH of catalog.duckdb from another database resolves with the dataset named too
    script = (f"ATTACH '{dataset / CATALOG_DB}' AS omni (READ_ONLY);\nSET VARIABLE omnicurate_dataset = '{dataset}';\n"
              "SELECT count(*) AS n FROM omni.samples;\n")
    assert _cli(tmp_path, stdin=script) == [{"n": 6}]


def test_bucket_dataset_views_name_its_url(tmp_path):
    """DuckDB reads a bucket through its httpfs extension, which neither the pip duckdb nor duckdb-cli ship and
    which cannot be installed offline: check the views name the bucket, and that a downloaded copy reads with
    the dataset named; ``query`` reads the bucket itself (it copies the catalog)."""
    media = make_media(tmp_path / "media")
    with s3_emulator("reviews"):
        url = "s3://reviews/runs/omni-v1"
        write_dataset(url, make_samples(4, media), QUARANTINE, shard=small_shards())
        assert query(url, "SELECT count(*) AS n FROM samples").to_pylist() == [{"n": 4}]
        local = tmp_path / "download"
        fsspec.filesystem("s3").get("reviews/runs/omni-v1/", str(local), recursive=True)
    assert f"'{url}/'" in (local / CATALOG_SQL).read_text()
    views = _cli(tmp_path, "-readonly", str(local / CATALOG_DB), "-c", "SELECT view_name, sql FROM duckdb_views() "
                 "WHERE NOT internal ORDER BY view_name")
    assert sorted(v["view_name"] for v in views) == sorted(CATALOG_TABLES)
    assert all(f"'{url}/'" in v["sql"] for v in views)
    named = _cli(tmp_path, "-readonly", "-cmd", f"SET VARIABLE omnicurate_dataset = '{local}'",
                 str(local / CATALOG_DB), "-c", "SELECT count(*) AS n FROM samples")
    assert named == [{"n": 4}]
