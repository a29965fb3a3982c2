"""``omnicurate corpus synth`` through the CLI entry point."""

import json
from pathlib import Path

from flows.cli import main


def test_corpus_synth_writes_files_and_facts(tmp_path: Path, capsys):
    out = tmp_path / "corpus"
    assert main(["corpus", "synth", str(out), "--seed", "4", "--videos", "0", "--audio", "0", "--images", "2"]) == 0
    rows = [json.loads(line) for line in (out / "facts.jsonl").read_text().splitlines()]
    assert [r["file"] for r in rows] == ["image_00.jpg", "image_01.png"]
    assert all((out / r["file"]).stat().st_size > 0 for r in rows)
    assert "wrote 2 files" in capsys.readouterr().out
