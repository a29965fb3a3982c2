"""The dialogue stage with an answerer model (``memory_check``) against a real ``transformers serve``: every memory
question gets both scored verdicts, and they land in the catalog's verdicts table."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from dialogue_fixtures import annotated_clip
from media_fixtures import card_image
from openai_server import RecordingProxy, openai_server  # noqa: F401 (the fixture)

from curators.dialogue_plan import plan_dialogues
from curators.dialogue_write import make_writer
from pipelines.dataset.catalog import CatalogBuilder
from pipelines.dialogue_stage import curate_plans
from schemas.config import CurateConfig, DialogueConfig, MemoryCheckConfig, SpeechConfig
from schemas.dialogue import MEMORY_TYPES


def test_memory_questions_get_scored_answerer_verdicts_in_the_catalog(tmp_path: Path, openai_server):  # noqa: F811
    clips = []
    for i in range(8):
        picture = card_image(tmp_path / f"p{i}.jpg", background=(30 * i, 90, 200 - 20 * i))
        clips.append(annotated_clip(i, "image", media_path=str(picture)))
    by_id = {c.clip.clip_id: c for c in clips}
    dialogue = DialogueConfig(dialogues=2, min_turns=5, max_turns=6,
                              question_mix={"current_media": 1.0, "memory_media": 2.0})
    with RecordingProxy(openai_server.base_url) as proxy:
        cfg = CurateConfig(input="in", output=str(tmp_path / "out"), seed=2, dialogue=dialogue,
                           speech=SpeechConfig(enabled=False),
                           memory_check=MemoryCheckConfig(answerer="endpoint", url=proxy.base_url,
                                                          model=openai_server.vlm, timeout_s=600))
        plans = plan_dialogues(clips, cfg.dialogue, cfg.seed)
        samples = curate_plans(plans, by_id, cfg, make_writer(cfg.dialogue))
        rules_only = curate_plans(plans, by_id, replace(cfg, memory_check=MemoryCheckConfig()),
                                  make_writer(cfg.dialogue))

    memory_turns = [(s.sample.key, t) for s in samples for t in s.sample.dialogue.turns
                    if t.question_type in MEMORY_TYPES]
    asked = [(key, t.index) for key, t in memory_turns]
    assert asked, "the plan has memory questions"
    # one request with the full history, and one without each recalled turn
    assert len(proxy.requests) == sum(1 + len(t.memory_refs) for _, t in memory_turns)
    assert all(r["model"] == openai_server.vlm and any(isinstance(m["content"], list) for m in r["messages"])
               for r in proxy.requests)
    builder = CatalogBuilder()
    for s in samples:
        builder.add(s)
    rows = builder.tables()["verdicts"].to_pylist()
    for name in ("memory_with_history", "memory_without_ref"):
        mine = sorted((r["key"], r["turn"]) for r in rows if r["filter"] == name)
        assert mine == sorted(asked), name
        assert all(r["score"] is not None for r in rows if r["filter"] == name)
    # the random VLM never says the key: every sample with a memory question is rejected as unanswerable
    assert {r["code"] for r in rows if r["filter"] == "memory_with_history"} == {"unanswerable"}
    assert not any(s.kept for s in samples if any(k == s.sample.key for k, _ in asked))
    assert not any(v.filter.startswith("memory_with") or v.filter == "memory_without_ref"
                   for s in rules_only for v in s.sample.verdicts)
