"""One real run end to end: synthesised media + broken files -> Prefect flow over Ray -> shards, catalog, manifest."""

import json
from pathlib import Path

import pytest
import webdataset as wds

from flows.cli import main
from flows.commands.demo import eval_set_sizes, plant_bad_files
from pipelines.dataset.catalog import open_catalog
from schemas import from_json
from schemas.dataset_format import MANIFEST_FILE, SHARDS_DIR, split_member
from schemas.dialogue import Sample


EVAL_FLAGS = ["--eval-share", "0.36", "--eval-memory", "4", "--eval-speech", "1"]
"""Eval sets as the demo makes them; this share holds out two of the corpus's seven sources (an image, a
speech clip), the rest train."""
EVAL_WANTED = {"memory": 4, "speech": 1}


@pytest.fixture(scope="module")
def curated(tmp_path_factory, ray_local):
    from curators.corpus_synth import synth_corpus

    root = tmp_path_factory.mktemp("e2e")
    corpus, dataset = root / "corpus", root / "dataset"
    synth_corpus(corpus, seed=5, videos=2, audio=2, images=3)
    bad = plant_bad_files(corpus)
    code = main(["curate", "--input", str(corpus), "--out", str(dataset), "--seed", "5",
                 "--shard-max-samples", "1", "--no-summary", *EVAL_FLAGS])
    assert code == 0
    return {"corpus": corpus, "dataset": dataset, "bad": bad}


def _catalog(dataset: Path, sql: str):
    con = open_catalog(dataset)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_every_broken_file_is_quarantined_with_its_reason(curated):
    rows = dict(_catalog(curated["dataset"], "SELECT uri, reason FROM quarantine"))
    by_name = {Path(uri).name: reason for uri, reason in rows.items()}
    assert by_name["empty.mp4"] == "empty"
    assert by_name["truncated.mp4"] == "truncated"
    assert by_name["notes.mp4"] in ("not_media", "decode_error")
    assert len(rows) == 3, rows  # the good files all went through


def test_counts_agree_between_manifest_catalog_and_tars(curated):
    dataset = curated["dataset"]
    manifest = json.loads((dataset / MANIFEST_FILE).read_text())
    urls = [str(dataset / SHARDS_DIR / s["name"]) for s in manifest["shards"]]
    assert len(urls) >= 2  # --shard-max-samples 1 split the samples
    keys = []
    for sample in wds.WebDataset(urls, shardshuffle=False):
        for member in sample:
            if not member.startswith("__"):
                split_member(f"{sample['__key__']}.{member}")
        record = from_json(Sample, sample["json"])
        assert record.key == sample["__key__"]
        for turn in record.dialogue.turns:
            for part in turn.user.parts:
                if part.member:
                    assert part.member in sample, f"{record.key} turn {turn.index} names a missing {part.member}"
        keys.append(record.key)
    catalog_keys = [k for (k,) in _catalog(dataset, "SELECT key FROM samples WHERE kept ORDER BY key")]
    assert len(keys) == len(set(keys)) == manifest["counts"]["samples"] == sum(s["samples"] for s in manifest["shards"])
    assert sorted(keys) == catalog_keys
    assert manifest["counts"]["quarantined"] == 3


def test_dialogues_carry_memory_questions(curated):
    types = {t for (t,) in _catalog(curated["dataset"], "SELECT DISTINCT question_type FROM turns")}
    assert len(types) >= 3
    assert types & {"memory_media", "memory_text", "memory_mixed"}


def test_turn_facts_and_media_join_to_facts_and_transcripts(curated):
    dataset = curated["dataset"]
    grounded = """FROM samples s JOIN turns t USING (key), unnest(t.fact_ids) AS u(fact_id)
                  LEFT JOIN facts f USING (fact_id) LEFT JOIN clips c USING (clip_id) WHERE s.kept"""
    [(refs, unresolved)] = _catalog(dataset, f"SELECT count(*), count(*) FILTER (WHERE c.clip_id IS NULL) {grounded}")
    assert refs > 0 and unresolved == 0  # every fact a kept turn is grounded on is in facts, its clip in clips
    spoken = _catalog(dataset, f"SELECT f.kind, f.value, c.transcript, c.language {grounded} "
                               "AND f.source = 'transcript' AND f.kind IN ('spoken_text', 'spoken_keyword')")
    assert spoken, "no kept turn is grounded on what ASR heard"
    for kind, value, transcript, language in spoken:
        assert value.strip().lower() in transcript.lower() and language == "en", (kind, value, transcript)
    [(media, heard, without_clip)] = _catalog(dataset, """SELECT count(*), count(*) FILTER (WHERE c.transcript <> ''),
        count(*) FILTER (WHERE c.clip_id IS NULL) FROM media m LEFT JOIN clips c USING (clip_id)""")
    assert media > 0 and heard > 0 and without_clip == 0


def test_ledger_records_every_source(curated):
    statuses = dict(_catalog(curated["dataset"], "SELECT status, count(*) FROM ledger GROUP BY 1"))
    sources = [p for p in curated["corpus"].rglob("*") if p.is_file() and p.name != "facts.jsonl"]
    assert statuses.get("quarantined") == 3
    assert statuses.get("done", 0) + 3 == len(sources)


def test_model_usage_has_its_catalog_table(curated):
    """The commit phase writes each partition's usage rows; the template writer and rule checks ask no model."""
    assert _catalog(curated["dataset"], "SELECT count(*) FROM usage") == [(0,)]
    columns = [c for c, *_ in _catalog(curated["dataset"], "DESCRIBE usage")]
    assert columns == ["partition", "stage", "model", "requests", "prompt_tokens", "completion_tokens",
                       "cache_hits", "failures"]


def test_review_sql_prints_a_table(curated, capsys):
    assert main(["review", "sql", "SELECT count(*) AS n FROM samples", "--dataset", str(curated["dataset"])]) == 0
    out = capsys.readouterr().out
    assert "n" in out


def test_bad_config_field_is_named(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"input: {tmp_path}\noutput: {tmp_path / 'out'}\nshard:\n  max_samples: -1\n")
    assert main(["curate", "--config", str(cfg)]) == 2
    assert "shard.max_samples" in capsys.readouterr().err


def test_run_leaves_a_report_and_a_prefect_artifact(curated):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    report = (curated["dataset"] / "report.html").read_text()
    assert report.count("<img") >= 6 and "data:image/png;base64," in report
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["curate-summary"])))
    [markdown] = [a.data for a in artifacts if f"`{curated['dataset']}`" in a.data]
    assert "| truncated | 1 |" in markdown and "| empty | 1 |" in markdown
    assert "Filter pass rates" in markdown and str(curated["dataset"] / "report.html") in markdown


def test_summary_names_counts_types_and_quarantined_files(curated):
    from pipelines.dataset.summary import summarize_dataset

    text = summarize_dataset(str(curated["dataset"]))
    manifest = json.loads((curated["dataset"] / MANIFEST_FILE).read_text())
    assert f"samples      {manifest['counts']['samples']} kept" in text
    assert "quarantined  3 file(s)" in text and "truncated" in text and str(curated["bad"][0]) in text
    assert "question     " in text and "memory dist  " in text


def test_a_default_run_speaks_user_turns_playable_and_counted(curated, tmp_path):
    """Speech is on by default: every kept user turn is rendered and round-trip checked; those heard right are
    stored as FLAC in the shards, counted in the catalog and playable in the review page, the rest stay text."""
    import io

    import av

    from pipelines.dataset.summary import summarize_dataset

    dataset = curated["dataset"]
    [(spoken,)] = _catalog(dataset, "SELECT sum(num_spoken_messages) FROM samples WHERE kept")
    turns = _catalog(dataset, "SELECT t.key, t.turn, t.user_speech, t.user_text FROM turns t JOIN samples s "
                              "USING (key) WHERE s.kept ORDER BY t.key, t.turn")
    assert spoken > 0 and spoken == sum(speech is not None for _, _, speech, _ in turns)
    as_text = set(_catalog(dataset, "SELECT v.key, v.turn FROM verdicts v JOIN samples s USING (key) WHERE s.kept "
                                    "AND v.filter = 'speech_wer' AND v.detail LIKE 'kept as text: %'"))
    assert len(as_text) < len(turns) / 4  # a misheard turn stays text; most are spoken
    assert all(speech == f"t{turn:02d}.user.flac" if (key, turn) not in as_text else speech is None
               for key, turn, speech, text in turns if text.strip())
    [(checked, passed)] = _catalog(dataset, "SELECT count(*), count(*) FILTER (WHERE v.passed) FROM verdicts v "
                                            "JOIN samples s USING (key) WHERE s.kept AND v.filter = 'speech_wer'")
    assert checked == passed == spoken + len(as_text)  # one round-trip verdict per user turn
    tts = _catalog(dataset, "SELECT DISTINCT l.models['tts'] FROM lineage l JOIN samples s USING (key) WHERE s.kept")
    assert tts == [("piper:en_US-joe-medium",)]  # the embedded voice, not the espeak-ng fallback

    urls = sorted(str(p) for p in (dataset / SHARDS_DIR).glob("*.tar"))
    stored = {(s["__key__"], name): data for s in wds.WebDataset(urls, shardshuffle=False)
              for name, data in s.items() if name.endswith(".user.flac")}
    assert sorted(stored) == [(key, speech) for key, _, speech, _ in turns if speech]
    for (key, name), data in stored.items():
        assert data[:4] == b"fLaC", (key, name)
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.audio[0]
            samples = sum(frame.samples for frame in container.decode(stream))
            assert (stream.codec_context.name, stream.rate) == ("flac", 16000)
        assert samples / 16000 > 0.5, (key, name)

    key, _, member, _ = next(t for t in turns if t[2])
    page = tmp_path / "sample.html"
    assert main(["review", "show", key, "--dataset", str(dataset), "--html", str(page)]) == 0
    html = page.read_text()
    assert f'<audio class="media speech" data-member="{member}" controls preload="metadata" ' \
           f'src="data:audio/flac;base64,' in html
    assert f"spoken       {spoken} messages" in summarize_dataset(str(dataset))


def test_eval_sets_are_built_spoken_and_sized_in_the_summary(curated):
    """A default (spoken) run with eval flags, as the demo's: a memory set and a speech set, both spoken, their
    sizes in the summary curate and the demo print."""
    dataset = curated["dataset"]
    sizes = eval_set_sizes(dataset)
    assert sorted(sizes) == ["memory", "speech"]
    assert 0 < sizes["memory"] <= EVAL_WANTED["memory"] and 0 < sizes["speech"] <= EVAL_WANTED["speech"]
    for name in sizes:
        manifest = json.loads((dataset / "eval" / name / MANIFEST_FILE).read_text())
        assert manifest["counts"]["samples"] == sizes[name] and manifest["counts"]["spoken_messages"] > 0
    from pipelines.dataset.summary import summarize_dataset

    summary = summarize_dataset(str(dataset))  # what curate and the demo print
    for name, n in sizes.items():
        assert f"eval {name:<7} {n} dialogues of {EVAL_WANTED[name]} wanted" in summary
    for s in _eval_samples(dataset / "eval" / "speech"):
        assert all(t.user.speech_member for t in s.dialogue.turns) and s.dialogue.turns[-1].assistant.speech_member


def _eval_samples(folder: Path) -> list[Sample]:
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    urls = [str(folder / SHARDS_DIR / s["name"]) for s in manifest["shards"]]
    return [from_json(Sample, s["json"]) for s in wds.WebDataset(urls, shardshuffle=False)]
