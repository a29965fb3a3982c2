"""One partition's dialogue stage on a local Ray: the same samples, in the same order, as the in-process path."""

import subprocess

from dialogue_fixtures import annotated_clip, build_tiny_causal_lm

from curators.dialogue_plan import plan_dialogues
from curators.dialogue_write import make_writer
from curators.preference import answer_pool
from pipelines.dialogue_stage import PLANS_PER_TASK, clip_media_hash, curate_plans, deduplicate, run_dialogue_stage
from schemas.config import CurateConfig, DialogueConfig, SpeechConfig


def tiny_jpg(path, colour):
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"color=c={colour}:s=64x48", "-frames:v", "1", str(path)], check=True)
    return str(path)


def test_ray_stage_matches_in_process_curation(ray_local, tmp_path):
    still = tiny_jpg(tmp_path / "still.jpg", "red")
    clips = [annotated_clip(i, ("video", "image", "audio")[i % 3], media_path=still) for i in range(12)]
    cfg = CurateConfig(input=str(tmp_path), output=str(tmp_path / "out"), seed=2,
                       dialogue=DialogueConfig(dialogues=PLANS_PER_TASK + 3, max_turns=10),
                       speech=SpeechConfig(enabled=False))  # writing and filtering only
    samples = run_dialogue_stage(clips, cfg, scratch=tmp_path / "scratch")
    by_id = {c.clip.clip_id: c for c in clips}
    pool = answer_pool({f.fact_id: f for c in clips for f in c.facts})
    expected = curate_plans(plan_dialogues(clips, cfg.dialogue, cfg.seed), by_id, cfg, make_writer(cfg.dialogue), pool)
    hashes = {c.clip.clip_id: clip_media_hash(c) for c in clips if c.clip.kind == "image"}
    expected = deduplicate(expected, hashes)
    assert samples == expected
    assert len(samples) == PLANS_PER_TASK + 3 and sum(s.kept for s in samples) >= len(samples) - 2
    assert all(path == still for s in samples for path in s.files.values())
    kept = [s for s in samples if s.kept]
    assert all(any(v.filter == "near_duplicate" for v in s.sample.verdicts) for s in kept)
    assert sum(s.sample.preference is not None for s in samples) >= len(samples) - 1


def test_ray_stage_speaks_kept_samples(ray_local, tmp_path):
    clips = [annotated_clip(i, ("video", "image", "audio")[i % 3]) for i in range(3)]
    cfg = CurateConfig(input=str(tmp_path), output=str(tmp_path / "out"), seed=1,
                       dialogue=DialogueConfig(dialogues=1, min_turns=2, max_turns=2),
                       speech=SpeechConfig(enabled=True, backend="espeak"))
    (sample,) = run_dialogue_stage(clips, cfg, scratch=tmp_path / "scratch")
    turns = sample.sample.dialogue.turns
    assert [t.user.speech_member for t in turns] == ["t00.user.flac", "t01.user.flac"]
    # the TTS actor hands speech back as bytes; they land in the partition's own scratch folder
    for t in turns:
        path = sample.files[t.user.speech_member]
        assert path.startswith(str(tmp_path / "scratch" / "speech")) and open(path, "rb").read(4) == b"fLaC"
    assert len([v for v in sample.sample.verdicts if v.filter == "speech_wer"]) == 2
    budget = [v for v in sample.sample.verdicts if v.filter == "token_budget"]
    assert len(budget) == 1 and budget[0].score == sample.sample.tokens.total / cfg.tokens.max_sequence


def test_ray_stage_runs_a_local_llm_writer_on_a_pool_of_actors(ray_local, tmp_path, monkeypatch):
    import ray

    from pipelines import dialogue_stage

    model = build_tiny_causal_lm(tmp_path / "tiny-llm")
    clips = [annotated_clip(i, ("video", "image", "audio")[i % 3]) for i in range(6)]
    cfg = CurateConfig(input=str(tmp_path), output=str(tmp_path / "out"), seed=4,
                       dialogue=DialogueConfig(dialogues=2, min_turns=3, max_turns=3, writer="local_llm",
                                               writer_model=str(model), writer_batch_size=6, writer_actors=2),
                       speech=SpeechConfig(enabled=False))
    monkeypatch.setattr(dialogue_stage, "PLANS_PER_TASK", 1)  # one plan per call: both actors write
    actors = dialogue_stage.start_dialogue_actors(cfg, ray.cluster_resources())
    assert len(actors.writers) == 2 and not actors.speakers
    try:
        samples = run_dialogue_stage(clips, cfg, actors, scratch=tmp_path / "scratch")
        pids = set(ray.get([w.__ray_call__.remote(lambda self: __import__("os").getpid()) for w in actors.writers]))
    finally:
        dialogue_stage.release_dialogue_actors(actors)
    assert len(samples) == 2 and len(pids) == 2
    for s in samples:
        validation = [v for v in s.sample.verdicts if v.filter == "writer_validation"]
        assert len(validation) == 1 and validation[0].score == 0.0  # random weights: every turn kept from the draft
        assert s.sample.lineage.models["writer"] == "tiny-llm"
        assert "dialogue_write.local_llm" in s.sample.lineage.operators


def test_failed_renders_are_verdicts_until_too_many_in_a_row(tmp_path):
    import pytest

    from curators.speech import EspeakSpeaker
    from pipelines.dialogue_stage import MAX_CONSECUTIVE_SPEECH_FAILURES, speak_samples

    clips = [annotated_clip(i, ("video", "image", "audio")[i % 3]) for i in range(18)]
    by_id = {c.clip.clip_id: c for c in clips}
    cfg = CurateConfig(input=str(tmp_path), output=str(tmp_path / "out"),
                       dialogue=DialogueConfig(dialogues=MAX_CONSECUTIVE_SPEECH_FAILURES + 1, max_turns=4))
    samples = curate_plans(plan_dialogues(clips, cfg.dialogue, 0), by_id, cfg, make_writer(cfg.dialogue))
    broken = EspeakSpeaker(binary="false")  # a TTS command that exits with an error
    few = speak_samples(samples[:2], by_id, cfg, broken, asr=None, out_dir=tmp_path / "speech")
    assert [s.kept for s in few] == [False, False]
    assert all(s.sample.verdicts[-1].code == "render_failed" for s in few)
    assert all("speech rendering failed" in s.sample.verdicts[-1].detail for s in few)
    with pytest.raises(RuntimeError, match="in a row"):
        speak_samples(samples, by_id, cfg, broken, asr=None, out_dir=tmp_path / "speech")
