"""The media stage's caption pool on a local Ray against a real ``transformers serve``: a clip with speech is
captioned after its ASR, with its transcript; every captioned clip gets caption facts or a row saying why not."""

from __future__ import annotations

from pathlib import Path

from openai_server import RecordingProxy, openai_server  # noqa: F401 (the fixture)

from curators.corpus_synth import synth_corpus
from pipelines import media_actors
from pipelines.media_stage import run_media_stage
from schemas.config import CurateConfig, DecodeConfig, VisualConfig
from schemas.usage import total_usage


def test_clips_are_captioned_with_their_transcript_and_a_bad_reply_is_a_fact_row(tmp_path: Path, ray_local,
                                                                                   openai_server):  # noqa: F811
    import ray

    from curators.sources import list_sources

    corpus = tmp_path / "corpus"
    synth_corpus(corpus, seed=5, videos=1, audio=0, images=1)
    with RecordingProxy(openai_server.base_url) as proxy:
        cfg = CurateConfig(input=str(corpus), output=str(tmp_path / "out"),
                           decode=DecodeConfig(frames_per_clip=4, clip_seconds=10.0),
                           visual=VisualConfig(captioner="endpoint", captioner_url=proxy.base_url,
                                               captioner_model=openai_server.vlm, captioner_frames=3,
                                               captioner_actors=1, captioner_timeout_s=600))
        actors = media_actors.start_media_actors(cfg, ray.cluster_resources())
        try:
            result = run_media_stage(cfg, list_sources(cfg.input), actors)
            (spent,) = ray.get([a.usage.remote() for a in actors.captioner])
        finally:
            media_actors.release_media_actors()

    kinds = {a.clip.kind: a for a in result.clips}
    assert set(kinds) == {"video", "image"}
    assert len(proxy.requests) == 2 == result.counters["caption_refused"]
    sent = {}
    for request in proxy.requests:
        parts = request["messages"][1]["content"]
        images = sum(p["type"] == "image_url" for p in parts)
        sent["video" if images > 1 else "image"] = " ".join(p["text"] for p in parts if p["type"] == "text")
    video = kinds["video"]
    assert video.transcript is not None and "background" in video.transcript.text  # what the ASR heard ...
    heard = [f"[{s.start_s:.1f}-{s.end_s:.1f} s] {s.text.strip()}" for s in video.transcript.segments]
    assert all(line in sent["video"] for line in heard)  # ... is what the captioner was sent
    assert "Transcript" not in sent["image"]
    assert sent["video"].count("Frame at") == 3
    assert (spent.stage, spent.requests, spent.failures) == ("captioner", 2, 0) and spent.prompt_tokens > 0
    # each source's part of it, measured per caption call, adds up to what the actor spent
    assert sorted(result.usage) == sorted({a.clip.source_uri for a in result.clips})
    assert all(u.requests == 1 for rows in result.usage.values() for u in rows)
    assert total_usage(u for rows in result.usage.values() for u in rows) == [spent]
    for annotated in result.clips:  # the random VLM's replies are no JSON: a refusal row each, nothing asked of it
        caption_rows = [f for f in annotated.facts if f.source == "caption"]
        assert [f.kind for f in caption_rows] == ["caption_refused"], annotated.clip.kind
        assert caption_rows[0].value.startswith("not JSON")
