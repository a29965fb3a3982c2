"""Dialogue throughput per core: plan + template writer (+ build and filters) vs. a bare formatter; ratio last.

The bare formatter writes the same plans with one fixed f-string per turn from the first fact of each
clip: no phrasing variety, no restated-answer avoidance, no statements. The ratio is dialogues per second
of our plan+write over the bare one, so it shows what grounding and variety cost. One process = one core.
It also times the text token count of build_sample (the Qwen tokenizer) per sample, against the four
characters a token guess it replaced.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from dialogue_fixtures import clip_pool

from curators.dialogue_plan import plan_dialogues
from curators.dialogue_write import TemplateDialogueWriter
from curators.filters import FilterContext, apply_filters, default_filters
from curators.sample_build import build_sample
from schemas.config import CurateConfig, DialogueConfig
from schemas.dialogue import ContentPart, Dialogue, Message, Turn
from schemas.text_tokens import count_text_tokens


def bare_write(plan, clips) -> Dialogue:
    turns = []
    for pt in plan.turns:
        clip_id = pt.media_clip_id or next(iter(clips))
        fact = clips[clip_id].facts[0]
        turns.append(Turn(index=pt.index, question_type="no_context",
                          user=Message(role="user", parts=[ContentPart(kind="text", text=f"What is the {fact.kind}?")]),
                          assistant=Message(role="assistant", parts=[ContentPart(kind="text", text=f"{fact.value}.")]),
                          answer_key=fact.value))
    return Dialogue(dialogue_id=plan.dialogue_id, turns=turns)


def four_chars_a_token(text: str) -> int:
    """The guess build_sample used before the Qwen tokenizer (the baseline of the text count)."""
    return sum(max(1, math.ceil(len(word) / 4)) for word in text.split())


def timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    clips = clip_pool(args.clips)
    by_id = {c.clip.clip_id: c for c in clips}
    cfg = CurateConfig(input="in", output="out", dialogue=DialogueConfig())
    writer = TemplateDialogueWriter()
    context = FilterContext(facts={f.fact_id: f for c in clips for f in c.facts})
    filters = default_filters(cfg.tokens)
    plans = plan_dialogues(clips, cfg.dialogue, 0)
    n, turns = len(plans), sum(len(p.turns) for p in plans)

    def ours():
        for p in plan_dialogues(clips, cfg.dialogue, 0):
            writer.write(p, by_id)

    def ours_full():
        for p in plan_dialogues(clips, cfg.dialogue, 0):
            c = build_sample(writer.write(p, by_id), by_id, seed=0, config_hash="h", decode=cfg.decode,
                             accounting=cfg.tokens)
            apply_filters(c, filters, context)

    def bare():
        for p in plan_dialogues(clips, cfg.dialogue, 0):
            bare_write(p, by_id)

    start = time.perf_counter()
    count_text_tokens("warm")  # loads the tokenizer once per process (converted and cached on disk the first time)
    load_s = time.perf_counter() - start
    ours(), bare()  # warm
    ours_s, bare_s, full_s = timed(ours, args.repeats), timed(bare, args.repeats), timed(ours_full, args.repeats)
    texts = [[m.text for t in writer.write(p, by_id).dialogue.turns for m in (t.user, t.assistant)] for p in plans]
    messages = sum(len(m) for m in texts)

    def count_with(counter):
        return lambda: [sum(map(counter, m)) for m in texts]

    qwen_s = timed(count_with(count_text_tokens), args.repeats)
    guess_s = timed(count_with(four_chars_a_token), args.repeats)
    qwen_total, guess_total = sum(count_with(count_text_tokens)()), sum(count_with(four_chars_a_token)())
    print(f"{n} dialogues, {turns} turns, from {args.clips} clips; one core")
    print(f"plan + template writer:                 {n / ours_s:8.1f} dialogues/s/core ({turns / ours_s:.0f} turns/s)")
    print(f"plan + template + build + filters:      {n / full_s:8.1f} dialogues/s/core")
    print(f"plan + bare formatter (baseline):       {n / bare_s:8.1f} dialogues/s/core")
    print(f"ratio template/bare dialogues per second: {bare_s / ours_s:.3f}x")
    print(f"text tokens, Qwen tokenizer:   {qwen_s / n * 1e6:8.0f} us/sample ({qwen_s / messages * 1e6:.1f} us/message,"
          f" {messages / n:.1f} messages/sample; loaded once in {load_s:.2f} s); {qwen_total} tokens")
    print(f"text tokens, 4 chars a token:  {guess_s / n * 1e6:8.0f} us/sample (baseline); {guess_total} tokens")
    print(f"ratio Qwen count/guess time per sample: {qwen_s / guess_s:.2f}x")


if __name__ == "__main__":
    main()
