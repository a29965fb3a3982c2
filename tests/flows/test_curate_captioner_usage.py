"""What an endpoint captioner spent reaches the catalog's ``usage`` table, and a resumed run, whose media come
from the ledger with no caption request sent, still reports it."""

from pathlib import Path

import yaml
from openai_server import RecordingProxy, openai_server  # noqa: F401 (the fixture)

from flows.cli import main
from pipelines.dataset.catalog import query


def _captioner_rows(dataset: Path) -> list[dict]:
    return query(dataset, "SELECT stage, model, sum(requests) AS requests, sum(prompt_tokens) AS prompt_tokens, "
                          "sum(completion_tokens) AS completion_tokens, sum(failures) AS failures FROM usage "
                          "WHERE stage = 'captioner' GROUP BY ALL").to_pylist()


def test_captioner_usage_is_in_the_catalog_and_survives_a_resume(tmp_path: Path, ray_local,
                                                                 openai_server):  # noqa: F811
    from curators.corpus_synth import synth_corpus

    corpus, dataset = tmp_path / "corpus", tmp_path / "dataset"
    synth_corpus(corpus, seed=5, videos=1, audio=0, images=1)
    with RecordingProxy(openai_server.base_url) as proxy:
        config = tmp_path / "captioned.yaml"
        config.write_text(yaml.safe_dump({
            "decode": {"frames_per_clip": 4, "clip_seconds": 10.0},
            "visual": {"captioner": "endpoint", "captioner_url": proxy.base_url,
                       "captioner_model": openai_server.vlm, "captioner_frames": 3, "captioner_actors": 1,
                       "captioner_timeout_s": 600}}))
        args = ["curate", "--config", str(config), "--input", str(corpus), "--out", str(dataset), "--seed", "5",
                "--no-summary"]
        assert main([*args, "--dialogues", "1"]) == 0
        sent = len(proxy.requests)
        first = _captioner_rows(dataset)
        # other dialogue settings: every partition is committed anew, its media resumed from the ledger
        assert main([*args, "--dialogues", "2"]) == 0
        resumed = _captioner_rows(dataset)

    assert sent == 2, "one caption request per clip (a video clip, an image)"
    (row,) = first
    assert (row["model"], row["requests"], row["failures"]) == (openai_server.vlm, 2, 0)
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
    assert len(proxy.requests) == sent, "the resumed run captioned nothing anew"
    assert resumed == first
