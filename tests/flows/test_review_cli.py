"""CLI: review sql in three formats, a refused write, validate's exit codes."""

import csv
import io
import json

import pytest
from shard_fixtures import QUARANTINE, make_media, make_samples, small_shards

from flows.cli import main
from pipelines.dataset.writer import write_dataset


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


def test_review_show_text_and_html(dataset, tmp_path, capsys):
    assert main(["review", "show", "s00001", "--dataset", dataset]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sample s00001  shard train-000000.tar") and "turn 3 [memory_media]" in out
    page = tmp_path / "s1.html"
    assert main(["review", "show", "s00001", "--dataset", dataset, "--html", str(page)]) == 0
    html = page.read_text()
    assert html.count('<section class="turn') == 4 and 'src="data:video/mp4;base64,' in html
    assert main(["review", "show", "s00004", "--dataset", dataset]) == 1
    assert "rejected" in capsys.readouterr().err


def test_review_report_and_subset(dataset, tmp_path, capsys):
    report = tmp_path / "report.html"
    assert main(["review", "report", "--dataset", dataset, "--out", str(report)]) == 0
    assert report.read_text().count("data:image/png;base64,") == 6
    out = tmp_path / "subset"
    assert main(["review", "subset", "--dataset", dataset, "--where", "num_memory_questions > 0",
                 "--out", str(out)]) == 0
    assert "wrote 2 samples" in capsys.readouterr().out
    assert main(["validate", "--dataset", str(out)]) == 0
    assert main(["review", "subset", "--dataset", dataset, "--where", "no_such_column > 1",
                 "--out", str(tmp_path / "bad")]) == 1
    assert "bad --where predicate" in capsys.readouterr().err
