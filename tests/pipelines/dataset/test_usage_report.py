"""Model usage in the catalog, the report and the summary: partition rows summed per stage and model."""

import re

from shard_fixtures import QUARANTINE, make_media, make_samples, small_shards

from pipelines.dataset.catalog import query
from pipelines.dataset.review_render import model_usage, render_report
from pipelines.dataset.writer import commit_partitions, write_dataset, write_partition
from schemas.usage import USAGE_TABLE, StageUsage, usage_schema, usage_table


def test_usage_rows_reach_the_catalog_report_and_summary(tmp_path):
    from pipelines.dataset.summary import summarize_dataset

    media = make_media(tmp_path / "media")
    samples = make_samples(6, media, rejected_every=3)
    spent = {0: [StageUsage(stage="writer", model="qwen-vl", requests=10, prompt_tokens=900, completion_tokens=100,
                            cache_hits=2, failures=1),
                 StageUsage(stage="answerer", model="qwen-vl", requests=4, prompt_tokens=300, completion_tokens=20)],
             1: [StageUsage(stage="writer", model="qwen-vl", requests=6, prompt_tokens=500, completion_tokens=60)]}
    fragments = [write_partition(tmp_path / "ds", p, samples[3 * p:3 * p + 3], QUARANTINE if p == 0 else [],
                                 shard=small_shards(), extra_tables={USAGE_TABLE: usage_table(spent[p], p)})
                 for p in (0, 1)]
    commit_partitions(tmp_path / "ds", fragments, config_hash="h", seed=1, extra_schemas={USAGE_TABLE: usage_schema()})
    kept = sum(s.kept for s in samples)
    assert query(tmp_path / "ds", "SELECT partition, stage, requests FROM usage ORDER BY 1, 2").to_pylist() == [
        {"partition": 0, "stage": "answerer", "requests": 4}, {"partition": 0, "stage": "writer", "requests": 10},
        {"partition": 1, "stage": "writer", "requests": 6}]
    rows = {r["stage"]: r for r in model_usage(tmp_path / "ds")}
    assert (rows["writer"]["requests"], rows["writer"]["prompt_tokens"], rows["writer"]["cache_hits"],
            rows["writer"]["failures"]) == (16, 1400, 2, 1)
    assert rows["writer"]["requests_per_kept_dialogue"] == 16 / kept
    assert rows["writer"]["tokens_per_kept_dialogue"] == 1560 / kept
    html = render_report(tmp_path / "ds")
    section = re.search(r'<section id="model_usage">(.*?)</section>', html).group(1)
    assert "<td>writer</td><td>qwen-vl</td><td>16</td><td>1400</td><td>160</td><td>2</td><td>1</td>" in section
    summary = summarize_dataset(str(tmp_path / "ds"))
    assert f"model usage  writer (qwen-vl): 16 requests, 1400 + 160 tokens, 2 cache hits, 1 failed; " \
           f"{16 / kept:.1f} requests" in summary


def test_a_dataset_without_usage_reports_none(tmp_path):
    media = make_media(tmp_path / "media")
    write_dataset(tmp_path / "ds", make_samples(2, media), [], shard=small_shards())
    assert model_usage(tmp_path / "ds") == []
    assert '<section id="model_usage"><h2>model usage</h2><p>none</p></section>' in render_report(tmp_path / "ds")


def test_readme_documents_the_usage_columns():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    table_doc = readme.split("## Catalog tables", 1)[1].split(f"### `{USAGE_TABLE}`", 1)[1].split("\n### ", 1)[0]
    documented = {line.split("`")[1] for line in table_doc.splitlines() if line.startswith("| `")}
    assert documented == set(usage_schema().names)
