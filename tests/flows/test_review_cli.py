"""CLI: review sql in three formats, a refused write, validate's exit codes."""

import csv
import io
import json

import pytest

from flows.cli import main
from pipelines.dataset_writer import write_dataset
from shard_fixtures import QUARANTINE, make_media, make_samples, small_shards


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    media = make_media(root / "media")
    write_dataset(root / "ds", make_samples(5, media, rejected_every=5), QUARANTINE, shard=small_shards())
    return str(root / "ds")


SQL = "SELECT question_type, count(*) AS n FROM turns GROUP BY 1 ORDER BY 1"


def test_review_sql_table_csv_json(dataset, capsys):
    assert main(["review", "sql", SQL, "--dataset", dataset]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["question_type", "n"]
    assert "current_media" in table and "(4 rows)" in table
    assert main(["review", "sql", SQL, "--dataset", dataset, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["question_type"]: int(r["n"]) for r in rows} == {"current_media": 10, "memory_media": 3,
                                                               "memory_text": 1, "no_context": 5}
    assert main(["review", "sql", SQL, "--dataset", dataset, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0] == {"question_type": "current_media", "n": 10}


def test_review_sql_write_fails_clearly(dataset, capsys):
    assert main(["review", "sql", "DELETE FROM samples", "--dataset", dataset]) == 1
    assert "read-only" in capsys.readouterr().err
    assert main(["review", "sql", "SELECT count(*) AS n FROM samples", "--dataset", dataset, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 5}]


def test_validate_exit_codes(dataset, tmp_path, capsys):
    import shutil

    assert main(["validate", "--dataset", dataset]) == 0
    broken = shutil.copytree(dataset, tmp_path / "broken")
    (broken / "shards" / "train-000001.tar").unlink()
    assert main(["validate", "--dataset", str(broken)]) == 1
    assert "train-000001.tar: listed in the manifest but missing" in capsys.readouterr().err
