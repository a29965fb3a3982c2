"""Catalog: tables match their Arrow schemas, agree with the shards, clips and facts join the turns, views survive
a move, extra tables, read-only."""

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from shard_fixtures import QUARANTINE, make_media, make_samples, small_shards

from pipelines.dataset.catalog import ReadOnlyCatalogError, query
from pipelines.dataset.writer import write_dataset
from schemas.catalog_tables import SCHEMAS
from schemas.dataset_format import CATALOG_TABLES
from schemas.media import AnnotatedClip, Clip, Fact, Transcript, TranscriptSegment


def _clips(n: int) -> list[AnnotatedClip]:
    """Each sample's still (``c{i}a``, grounding fact ``f{i}-0``) and spoken audio clip (``c{i}c``)."""
    clips = []
    for i in range(n):
        still = Clip(clip_id=f"c{i}a", media_id="m1", source_uri="/corpus/still.jpg", kind="image", start_s=0,
                     end_s=0, media_path="/unused.jpg")
        clips.append(AnnotatedClip(clip=still, source_sha256="ab" * 32, facts=[
            Fact(fact_id=f"f{i}-0", clip_id=still.clip_id, kind="dominant_color", value="red", source="visual")]))
        audio = Clip(clip_id=f"c{i}c", media_id="m2", source_uri="/corpus/tone.flac", kind="audio", start_s=0,
                     end_s=1, media_path="/unused.flac", audio_path="/unused.wav")
        segment = TranscriptSegment(text=f"number {i}", start_s=0.1, end_s=0.9, avg_logprob=-0.25, no_speech_prob=0.1)
        clips.append(AnnotatedClip(clip=audio, facts=[
            Fact(fact_id=f"f{i}-1", clip_id=audio.clip_id, kind="spoken_text", value=f"number {i}",
                 source="transcript", confidence=segment.confidence, start_s=0.1, end_s=0.9)],
            transcript=Transcript(clip_id=audio.clip_id, model_id="tiny.en", language="en", language_probability=0.97,
                                  text=f"number {i}", segments=[segment], rejected_segments=1)))
    return clips


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("catalog")
    media = make_media(root / "media")
    ledger = pa.table({"stage": ["probe", "decode"], "kept": [10, 9], "dropped": [3, 1]})
    write_dataset(root / "ds", make_samples(8, media, rejected_every=4), QUARANTINE, shard=small_shards(),
                  config_hash="cfg1", seed=7, extra_tables={"stage_counters": ledger}, clips=_clips(8))
    return root / "ds"


def test_every_table_has_its_contract_schema(dataset):
    for name in CATALOG_TABLES:
        table = pq.read_table(dataset / "catalog" / name / "all.parquet")
        assert table.schema.remove_metadata().equals(SCHEMAS[name].remove_metadata()), name


def test_samples_table_agrees_with_the_shards(dataset):
    rows = query(dataset, "SELECT key, shard, kept, num_turns, failed_filters FROM samples ORDER BY key").to_pylist()
    assert len(rows) == 8
    rejected = [r["key"] for r in rows if not r["kept"]]
    assert rejected == ["s00003", "s00007"]
    assert all(r["shard"] is None and r["failed_filters"] == ["token_budget"] for r in rows if not r["kept"])
    stored = query(dataset, "SELECT shard, count(*) AS n FROM samples WHERE kept GROUP BY shard ORDER BY shard")
    assert stored.to_pylist() == [{"shard": "train-000000.tar", "n": 3}, {"shard": "train-000001.tar", "n": 3}]
    assert [r["num_turns"] for r in rows] == [3, 4, 5, 3, 4, 5, 3, 4]


def test_turns_media_verdicts_lineage_quarantine(dataset):
    rows = query(dataset, "SELECT question_type, count(*) AS n FROM turns GROUP BY 1").to_pylist()  # one query:
    mix = {r["question_type"]: r["n"] for r in rows}  # a GROUP BY's row order differs from run to run
    assert mix == {"current_media": 16, "no_context": 8, "memory_media": 5, "memory_text": 2}
    memory = query(dataset, "SELECT memory_distance, memory_turns FROM turns WHERE key = 's00002' AND is_memory "
                            "ORDER BY turn").to_pylist()
    assert memory == [{"memory_distance": 3, "memory_turns": [0]}, {"memory_distance": 2, "memory_turns": [2]}]
    media_bytes = query(dataset, "SELECT sum(bytes) FILTER (WHERE member = 'm00.jpg') AS jpg, "
                                 "count(bytes) AS known FROM media").to_pylist()[0]
    assert media_bytes["known"] == 6 * 3
    assert media_bytes["jpg"] == 6 * (dataset.parent / "media" / "still.jpg").stat().st_size
    failed = query(dataset, "SELECT key FROM verdicts WHERE NOT passed ORDER BY key").to_pylist()
    assert failed == [{"key": "s00003"}, {"key": "s00007"}]
    assert query(dataset, "SELECT count(*) AS n FROM lineage").to_pylist() == [{"n": 16}]
    assert query(dataset, "SELECT models['asr'] AS asr FROM lineage LIMIT 1").to_pylist() == [{"asr": "tiny.en"}]
    reasons = query(dataset, "SELECT reason FROM quarantine ORDER BY reason").column("reason").to_pylist()
    assert reasons == ["empty", "not_media", "truncated"]


def test_turn_facts_and_media_clips_join(dataset):
    grounded = query(dataset, "SELECT t.key, t.turn, f.kind, f.value, c.source_uri FROM turns t, "
                              "unnest(t.fact_ids) AS u(fact_id) JOIN facts f USING (fact_id) "
                              "JOIN clips c USING (clip_id) WHERE t.key = 's00002' ORDER BY t.turn").to_pylist()
    assert grounded == [{"key": "s00002", "turn": 0, "kind": "dominant_color", "value": "red",
                         "source_uri": "/corpus/still.jpg"}]
    heard = query(dataset, "SELECT m.member, c.transcript, c.language, c.asr_confidence, c.rejected_segments "
                           "FROM media m JOIN clips c USING (clip_id) WHERE m.key = 's00002' AND m.kind = 'audio'")
    [row] = heard.to_pylist()
    assert row["member"] == "m02.flac" and row["transcript"] == "number 2" and row["language"] == "en"
    assert row["asr_confidence"] == pytest.approx(0.7788, abs=1e-4) and row["rejected_segments"] == 1
    still = query(dataset, "SELECT transcript, language, asr_confidence, source_sha256 FROM clips "
                           "WHERE clip_id = 'c2a'").to_pylist()
    assert still == [{"transcript": None, "language": None, "asr_confidence": None, "source_sha256": "ab" * 32}]
    assert query(dataset, "SELECT count(*) AS n FROM facts").to_pylist() == [{"n": 16}]


def test_extra_tables_become_views(dataset):
    assert query(dataset, "SELECT sum(dropped) AS d FROM stage_counters").to_pylist() == [{"d": 4}]


def test_catalog_views_survive_moving_the_dataset(dataset, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.copytree(dataset, moved)
    assert query(moved, "SELECT count(*) AS n FROM samples").to_pylist() == [{"n": 8}]


def test_catalog_is_read_only(dataset, tmp_path):
    with pytest.raises(ReadOnlyCatalogError, match="read-only"):
        query(dataset, "CREATE TABLE sneaky AS SELECT 1")
    with pytest.raises(ReadOnlyCatalogError):
        query(dataset, "DROP VIEW samples")
    with pytest.raises(ReadOnlyCatalogError, match="COPY"):
        query(dataset, f"COPY (SELECT 1) TO '{tmp_path / 'x.csv'}'")
    assert not (tmp_path / "x.csv").exists()
    assert query(dataset, "SELECT count(*) AS n FROM samples").to_pylist() == [{"n": 8}]


def test_readme_documents_every_catalog_column():
    from pathlib import Path

    from schemas.catalog_tables import SHARD_INDEX

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme.split("## Catalog tables", 1)[1]
    for name, schema in [*SCHEMAS.items(), ("shards/*.index.parquet", SHARD_INDEX)]:
        table_doc = section.split(f"### `{name}`", 1)[1].split("\n### ", 1)[0]
        documented = {line.split("`")[1] for line in table_doc.splitlines() if line.startswith("| `")}
        assert documented == set(schema.names), name
