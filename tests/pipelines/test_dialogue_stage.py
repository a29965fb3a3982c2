"""The dialogue stage on a local Ray: same samples, in the same order, as the in-process path."""

from dialogue_fixtures import annotated_clip

from curators.dialogue_plan import plan_dialogues
from curators.dialogue_write import make_writer
from pipelines.dialogue_stage import PLANS_PER_TASK, curate_plans, run_dialogue_stage
from schemas.config import CurateConfig, DialogueConfig


def test_ray_stage_matches_in_process_curation(ray_local, tmp_path):
    media = tmp_path / "still.jpg"
    media.write_bytes(b"\xff\xd8\xff\xd9")
    clips = [annotated_clip(i, ("video", "image", "audio")[i % 3], media_path=str(media)) for i in range(12)]
    cfg = CurateConfig(input=str(tmp_path), output=str(tmp_path / "out"), seed=2,
                       dialogue=DialogueConfig(dialogues=PLANS_PER_TASK + 3, max_turns=10))
    samples = run_dialogue_stage(clips, cfg)
    by_id = {c.clip.clip_id: c for c in clips}
    expected = curate_plans(plan_dialogues(clips, cfg.dialogue, cfg.seed), by_id, cfg, make_writer(cfg.dialogue))
    assert [s.sample.key for s in samples] == [s.sample.key for s in expected]
    assert samples == expected
    assert len(samples) == PLANS_PER_TASK + 3 and sum(s.kept for s in samples) >= len(samples) - 1
    assert all(path == str(media) for s in samples for path in s.files.values())
