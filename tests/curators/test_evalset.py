"""The train/eval split of sources, the memory-set planner over its grid, and the scorer by cell."""

import json
import threading
from collections import Counter
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dialogue_fixtures import annotated_clip

from curators.dialogue_write import make_writer
from curators.evalset import (
    cell_targets,
    endpoint_judge,
    eval_item,
    fill_cells,
    final_cell,
    is_held_out,
    judge_answers,
    plan_memory_set,
    score_table,
    source_identity,
    split_pool,
    straddling_duplicates,
)
from curators.media_dedup import MediaSignature
from curators.writers.endpoint import EndpointWriter
from pipelines.dialogue_stage import curate_plans
from schemas.config import CurateConfig, EvalConfig, MemorySetConfig, SpeechConfig
from schemas.validation import SchemaError, from_dict

SPEC = MemorySetConfig(dialogues=52)
CFG = CurateConfig(input="in", output="out", speech=SpeechConfig(enabled=False))


def pool(n=15, sources=None):
    clips = [annotated_clip(i, ("video", "image", "audio")[i % 3]) for i in range(n)]
    return [replace(c, source_sha256=f"{(i if sources is None else i % sources):064x}") for i, c in enumerate(clips)]


def memory_set(clips, spec=SPEC, seed=0):
    wanted = cell_targets(spec)
    candidates = plan_memory_set(clips, spec, wanted, seed)
    by_id = {c.clip.clip_id: c for c in clips}
    written = curate_plans([p for _, p in candidates], by_id, CFG, make_writer(CFG.dialogue))
    keys = set(fill_cells(written, spec, wanted))
    return wanted, [s for s in written if s.sample.key in keys]


def test_split_is_a_stable_share_of_sources_whatever_the_order():
    ids = [f"{i:064x}" for i in range(4000)]
    held = {i for i in ids if is_held_out(i, 0.25)}
    assert 900 < len(held) < 1100
    assert held == {i for i in reversed(ids) if is_held_out(i, 0.25)}
    assert held <= {i for i in ids if is_held_out(i, 0.5)}  # a larger share only adds sources
    clips = pool(60, sources=20)
    train, evals = split_pool(clips, 0.4)
    assert len(train) + len(evals) == len(clips) and train and evals
    assert not {source_identity(c) for c in train} & {source_identity(c) for c in evals}
    assert split_pool(clips, 0.0) == (clips, [])


def test_memory_set_fills_every_cell_of_the_grid_evenly():
    wanted, chosen = memory_set(pool())
    assert len(SPEC.cells()) == 26 and set(wanted.values()) == {2}
    filled = Counter(final_cell(s.sample, SPEC) for s in chosen)
    assert filled == Counter(wanted)
    for s in chosen:
        final = s.sample.dialogue.turns[-1]
        kind, distance, items = final_cell(s.sample, SPEC).split("/")
        assert len(s.sample.dialogue.turns) <= 15 and len(final.memory_refs) == int(items[1:])
        low, _, high = distance[1:].partition("-")
        assert int(low) <= final.memory_distance <= int(high or low)
        recalled = {"text" if r.text is not None else "media" for r in final.memory_refs}
        assert recalled == ({"text", "media"} if kind == "mixed" else {kind})


def test_a_small_set_spreads_over_every_axis():
    wanted = cell_targets(replace(SPEC, dialogues=8))
    picked = [c for c, n in wanted.items() if n]
    assert sum(wanted.values()) == 8 and len(picked) == 8
    for axis, values in ((0, 3), (1, 4), (2, 3)):
        per_value = Counter(c.split("/")[axis] for c in picked)
        assert len(per_value) == values and max(per_value.values()) - min(per_value.values()) <= 1, per_value


def _answers_and_score(chosen, answer_of):
    items = [eval_item(s.sample, "memory", SPEC) for s in chosen]
    questions = {q.id: q for q, _ in items}
    keys = [k for _, k in items]
    answers = {q.id: answer_of(q, k) for q, k in items}
    return score_table(keys, judge_answers(keys, answers, questions))


def test_answer_keys_score_full_marks_and_a_final_turn_only_model_near_zero():
    _, chosen = memory_set(pool())
    perfect = _answers_and_score(chosen, lambda q, k: k.reference)
    assert {r.axis for r in perfect} == {"all", "memory_type", "distance", "items", "cell"}
    assert len([r for r in perfect if r.axis == "cell"]) == 26
    assert all(r.accuracy == 1.0 and r.mean_content == 5.0 for r in perfect)
    # a model that sees only the final turn: it can do no better than the final question itself says
    blind = _answers_and_score(chosen, lambda q, k: q.messages[-1].text)
    overall = next(r for r in blind if r.axis == "all")
    assert overall.total == 52 and overall.accuracy <= 0.05
    assert all(r.accuracy <= 1 / 3 for r in blind if r.axis == "cell")
    assert all(r.accuracy <= 0.1 for r in blind if r.axis in ("memory_type", "distance", "items"))


def test_eval_item_keeps_the_answer_out_of_the_question():
    _, chosen = memory_set(pool())
    question, key = eval_item(chosen[0].sample, "memory", SPEC)
    assert question.messages[-1].role == "user" and len(question.messages) == 2 * key.turns - 1
    assert key.reference == chosen[0].sample.dialogue.turns[-1].assistant.text
    assert key.reference not in json.dumps([m.text for m in question.messages[-1:]])
    assert key.distance_bin is not None and key.memory_type in ("text", "media", "mixed")


class _Judge(BaseHTTPRequestHandler):
    """An OpenAI-compatible judge: 5 when the answer line carries the reference, 1 otherwise; 'no idea' once."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        reference = prompt.split("Reference answer: ")[1].split("\n")[0]
        answer = prompt.split("Model's answer: ")[1]
        reply = "no idea" if answer == "???" else f"score: {5 if reference in answer else 1}"
        data = json.dumps({"choices": [{"message": {"content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_a_judge_model_over_an_endpoint_scores_and_the_rules_stand_in_where_it_cannot():
    _, chosen = memory_set(pool())
    items = [eval_item(s.sample, "memory", SPEC) for s in chosen[:3]]
    questions = {q.id: q for q, _ in items}
    keys = [k for _, k in items]
    answers = {keys[0].id: keys[0].reference, keys[1].id: "I cannot tell.", keys[2].id: "???"}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Judge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = EndpointWriter(f"http://127.0.0.1:{server.server_address[1]}/v1", "judge", max_retries=0)
        judged = judge_answers(keys, answers, questions, endpoint_judge(client))
    finally:
        server.shutdown()
    assert [(j.correct, j.content, j.judged_by) for j in judged] == [
        (True, 5, "model"), (False, 1, "model"), (False, 2, "rules")]


@pytest.mark.parametrize("bad, field", [
    ({"share": 0.2, "memory": {"dialogues": 4, "max_turns": 16}}, "eval.memory.max_turns"),
    ({"share": 0.2, "memory": {"dialogues": 4, "distance_bins": [[1, 3], [2, 5]]}}, "eval.memory.distance_bins[1]"),
    ({"share": 0.2, "memory": {"dialogues": 4, "memory_types": ["video"]}}, "eval.memory.memory_types[0]"),
    ({"share": 0.2, "speech": {"dialogues": 4, "max_turns": 12}}, "eval.speech.max_turns"),
    ({"share": 0.0, "memory": {"dialogues": 4}}, "eval.share"),
    ({"share": 0.3}, "eval.share"),
    ({"share": 0.2, "memory": {"dialogues": 4, "memory_types": ["mixed"], "items": [1]}}, "eval.memory.items"),
])
def test_a_bad_eval_config_names_its_field(bad, field):
    with pytest.raises(SchemaError) as err:
        from_dict(CurateConfig, {"input": "in", "output": "out", "eval": bad})
    assert str(err.value).startswith(f"{field}:")
    assert from_dict(EvalConfig, {"share": 0.2, "speech": {"dialogues": 3}}).speech.dialogues == 3


def test_a_near_duplicate_pair_across_the_split_inside_a_partition_loses_its_later_copy():
    def sig(name, picture, kind="image"):
        return MediaSignature(clip_id=name, partition=3, source_uri=f"/corpus/{name}.jpg", start_s=0.0, kind=kind,
                              media_id=f"m-{name}", picture_hash=picture)

    train = [sig("a", 0xF0F0_F0F0_F0F0_F0F0), sig("c", 0x0123_4567_89AB_CDEF)]
    held = [sig("b", 0xF0F0_F0F0_F0F0_F0F3), sig("d", 0x0123_4567_89AB_CDEF, kind="video"), sig("e", None, "audio")]
    [dup] = straddling_duplicates(train, held)
    assert (dup.clip_id, dup.duplicate_of, dup.distance, dup.reason) == ("b", "a", 2, "near_picture")
    assert straddling_duplicates(train + held[:1], []) == []  # pairs on one side are the sample filter's


def test_two_partitions_planning_the_same_text_cell_write_different_dialogues():
    # a text cell recalling at distance 1 has no other turn to show media on: its plan depends on the pool only
    spec = MemorySetConfig(dialogues=2, max_turns=2, distance_bins=[[1, 1]], items=[1])
    wanted = {name: 1 for name in cell_targets(spec)}
    plans = [dict(plan_memory_set(clips, spec, wanted, 0)) for clips in (pool(6), pool(12)[6:])]
    text = [p["text/d1/x1"] for p in plans]
    assert not text[0].media and not text[1].media
    assert text[0].dialogue_id != text[1].dialogue_id
    by_id = {c.clip.clip_id: c for c in pool(12)}
    written = curate_plans(text, by_id, CFG, make_writer(CFG.dialogue))
    assert len({s.sample.key for s in written}) == 2
