"""A curation with an eval share, on two partitions: the memory and speech sets are planned from held-out
sources only, to the grid, without costing training a sample; ``evalset`` lists and scores them."""

import hashlib
import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import webdataset as wds
import yaml

from curators.evalset import cell_targets, is_held_out
from curators.filters.near_duplicate import colour_distance, hamming, picture_signature
from curators.media_dedup import MAX_COLOUR_DISTANCE, MAX_HAMMING
from flows.cli import main
from pipelines.dataset.catalog import query
from pipelines.dataset.validate import validate_dataset
from schemas import from_json
from schemas.config import load_config
from schemas.dataset_format import ANSWER_KEY_FILE, MANIFEST_FILE, QUESTIONS_FILE, SHARDS_DIR
from schemas.dialogue import Sample

MEMORY = {"dialogues": 20, "max_turns": 8, "distance_bins": [[1, 2], [3, 6]], "items": [1, 2]}
"""10 cells (text and media x 2 bins x 1-2 items, mixed x 2 bins x 2 items): two dialogues each."""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def plant_straddling_copy(corpus: Path, share: float) -> tuple[Path, Path]:
    """A re-encoded copy of an image whose bytes hash to the other side of the split than the original's."""
    for original in sorted(corpus.glob("**/*.jpg")):
        for quality in range(2, 31):
            copy = corpus / "zz-copies" / f"{original.stem}-copy.jpg"
            copy.parent.mkdir(exist_ok=True)
            subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(original), "-q:v",
                            str(quality), str(copy)], check=True)
            if is_held_out(_sha(copy), share) != is_held_out(_sha(original), share):
                return original, copy
    raise AssertionError("no copy straddles the split")


@pytest.fixture(scope="module")
def curated(tmp_path_factory, ray_local):
    from curators.corpus_synth import synth_corpus

    root = tmp_path_factory.mktemp("eval")
    corpus, dataset = root / "corpus", root / "dataset"
    synth_corpus(corpus, seed=4, videos=2, audio=2, images=16)
    original, copy = plant_straddling_copy(corpus, 0.4)
    config = root / "run.yaml"
    config.write_text(yaml.safe_dump({
        "input": str(corpus), "output": str(dataset), "seed": 4, "partitions": 2,
        "dialogue": {"dialogues": 8, "max_turns": 8}, "speech": {"enabled": False},
        "eval": {"share": 0.4, "memory": MEMORY, "speech": {"dialogues": 2, "max_turns": 3}}}))
    assert main(["curate", "--config", str(config), "--no-summary"]) == 0
    return {"root": root, "corpus": corpus, "dataset": dataset, "cfg": load_config(config),
            "original": original, "copy": copy}


def _samples(folder: Path) -> list[Sample]:
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    urls = [str(folder / SHARDS_DIR / s["name"]) for s in manifest["shards"]]
    return [from_json(Sample, s["json"]) for s in wds.WebDataset(urls, shardshuffle=False)] if urls else []


def _images(folder: Path) -> list[bytes]:
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    urls = [str(folder / SHARDS_DIR / s["name"]) for s in manifest["shards"]]
    return [data for s in wds.WebDataset(urls, shardshuffle=False) for name, data in s.items()
            if name.endswith(".jpg")] if urls else []


def test_manifest_names_the_eval_sets_each_a_valid_dataset(curated):
    dataset = curated["dataset"]
    manifest = json.loads((dataset / MANIFEST_FILE).read_text())
    assert manifest["eval_sets"] == {"memory": "eval/memory", "speech": "eval/speech"}
    assert validate_dataset(dataset) == []
    for rel in manifest["eval_sets"].values():
        folder = dataset / rel
        assert validate_dataset(folder) == [], rel
        keys = [json.loads(line) for line in (folder / ANSWER_KEY_FILE).read_text().splitlines()]
        questions = [json.loads(line) for line in (folder / QUESTIONS_FILE).read_text().splitlines()]
        assert [k["id"] for k in keys] == [q["id"] for q in questions]
        assert len(keys) == json.loads((folder / MANIFEST_FILE).read_text())["counts"]["samples"]


def test_memory_set_fills_the_grid_within_one_per_cell(curated):
    spec = curated["cfg"].eval.memory
    answer_key = curated["dataset"] / "eval/memory" / ANSWER_KEY_FILE
    keys = [json.loads(line) for line in answer_key.read_text().splitlines()]
    filled = Counter(f"{k['memory_type']}/d{k['distance_bin']}/x{k['items']}" for k in keys)
    wanted = cell_targets(spec)
    assert len(wanted) == 10 and set(wanted.values()) == {2}
    assert set(filled) <= set(wanted)
    quarantine = query(curated["dataset"], "SELECT reason, uri FROM quarantine ORDER BY uri").to_pylist()
    assert all(abs(filled[c] - n) <= 1 for c, n in wanted.items()), (filled, quarantine)
    assert all(k["turns"] <= 8 for k in keys)


def test_speech_set_is_spoken_to_the_final_answer(curated):
    samples = _samples(curated["dataset"] / "eval/speech")
    assert 1 <= len(samples) <= 2
    for s in samples:
        turns = s.dialogue.turns
        assert 2 <= len(turns) <= 3 and all(t.user.speech_member for t in turns)
        assert turns[-1].assistant.speech_member


def test_training_loses_no_sample_and_shares_no_source_with_the_eval_sets(curated):
    dataset = curated["dataset"]
    [row] = query(dataset, "SELECT count(*) FILTER (WHERE kept) AS kept, count(*) FILTER (WHERE NOT kept) AS rejected "
                           "FROM samples").to_pylist()
    kept, rejected = row["kept"], row["rejected"]
    assert kept + rejected == 8  # every training dialogue asked for was planned; none dropped for the split
    train = _samples(dataset)
    held = _samples(dataset / "eval/memory") + _samples(dataset / "eval/speech")
    assert len(train) == kept and held
    sources = lambda samples: {s.sha256 for x in samples for s in x.lineage.sources}
    assert sources(train) and sources(held) and not sources(train) & sources(held)
    assert all(is_held_out(sha, 0.4) for sha in sources(held))
    assert not any(is_held_out(sha, 0.4) for sha in sources(train))


def test_a_near_duplicate_straddling_the_split_reaches_one_side_only(curated, tmp_path):
    dataset, copy = curated["dataset"], curated["copy"]
    dropped = query(dataset, "SELECT uri FROM quarantine WHERE reason = 'duplicate'").to_pylist()
    assert str(copy) in {r["uri"] for r in dropped}
    used = {s.uri for folder in (dataset, dataset / "eval/memory", dataset / "eval/speech")
            for x in _samples(folder) for s in x.lineage.sources}
    assert str(copy) not in used

    def hashes(folder):
        out = []
        for i, data in enumerate(_images(folder)):
            path = tmp_path / f"{folder.name}-{i}.jpg"
            path.write_bytes(data)
            out.append(picture_signature(path))
        return out

    train = hashes(dataset)
    held = hashes(dataset / "eval/memory") + hashes(dataset / "eval/speech")
    assert train and held
    near = lambda a, b: hamming(a[0], b[0]) <= MAX_HAMMING and colour_distance(a[1], b[1]) <= MAX_COLOUR_DISTANCE
    assert not [(a, b) for a in train for b in held if near(a, b)]


def test_evalset_lists_and_scores_answer_keys_full_and_a_final_turn_model_near_zero(curated, capsys):
    dataset, root = curated["dataset"], curated["root"]
    assert main(["evalset", "list", "--dataset", str(dataset)]) == 0
    listed = capsys.readouterr().out
    memory_items = sum(1 for _ in (dataset / "eval/memory" / ANSWER_KEY_FILE).open())
    assert f"memory set: {memory_items} items (20 wanted" in listed and "speech set: " in listed

    keys = [json.loads(line) for f in ("memory", "speech")
            for line in (dataset / "eval" / f / ANSWER_KEY_FILE).read_text().splitlines()]
    questions = [json.loads(line) for f in ("memory", "speech")
                 for line in (dataset / "eval" / f / QUESTIONS_FILE).read_text().splitlines()]
    perfect = root / "perfect.jsonl"
    perfect.write_text("".join(json.dumps({"id": k["id"], "answer": k["reference"]}) + "\n" for k in keys))
    report = root / "perfect.html"
    assert main(["evalset", "score", "--evalset", str(dataset), "--answers", str(perfect),
                 "--report", str(report)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:] if line.startswith(("memory", "speech"))]
    assert rows and all(r[-2] == "1.000" and r[-1] == "5.00" for r in rows)
    assert {r[1].split("=")[0] for r in rows if r[0] == "memory"} == {"all", "memory_type", "distance", "items", "cell"}
    html = report.read_text()
    assert html.count("<img") >= 5 and "Accuracy by turn distance" in html and "Content score" in html

    blind = root / "final-turn-only.jsonl"  # a model that sees only the final question
    blind.write_text("".join(json.dumps({"id": q["id"], "answer": q["messages"][-1]["text"]}) + "\n"
                             for q in questions))
    assert main(["evalset", "score", "--evalset", str(dataset / "eval/memory"), "--answers", str(blind)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("memory ")]
    accuracy = {r[1]: float(r[-2]) for r in rows}
    assert accuracy["all"] <= 0.1
    assert all(v <= 0.5 for g, v in accuracy.items() if g.startswith("cell="))


def test_rerun_resumes_every_partition_and_keeps_the_eval_sets(curated):
    dataset = curated["dataset"]
    before = {p: p.read_bytes() for p in sorted((dataset / "eval").rglob("*.jsonl"))}
    assert main(["curate", "--config", str(curated["root"] / "run.yaml"), "--no-summary"]) == 0
    after = {p: p.read_bytes() for p in sorted((dataset / "eval").rglob("*.jsonl"))}
    assert before == after
    assert json.loads((dataset / MANIFEST_FILE).read_text())["eval_sets"]


def test_bad_eval_flag_is_named(tmp_path, capsys):
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
    assert main(["curate", "--input", str(tmp_path), "--out", str(tmp_path / "out"), "--eval-share", "0.2"]) == 2
    assert "eval.share" in capsys.readouterr().err
