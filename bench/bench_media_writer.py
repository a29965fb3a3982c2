"""The media writer's cost and overhead against a real OpenAI-compatible server; ratio last.

``transformers serve`` on 127.0.0.1 over the tests' tiny random VLM (CPU). The writer writes and the dialogue
stage filters a few dialogues over clips with real pictures and frames: requests and tokens per kept dialogue
come from its usage counters. Then the same requests are timed two ways against the same server with the same
concurrency: through the writer (prompt building, data URLs, cache off, validation, fallback) and replayed bare
(urllib posts of the recorded bodies), back to back in alternating order. The overhead ratio is the median over
those pairs of writer requests/s over bare requests/s (a shared machine's load drifts between pairs, less within
one): >= 0.9 means the writer costs under 10% on top of the server.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from openai_server import RecordingProxy, start_server, stop_server  # noqa: E402
from writer_media_fixtures import media_pool  # noqa: E402

from curators.dialogue_plan import plan_dialogues  # noqa: E402
from curators.dialogue_write import make_writer  # noqa: E402
from curators.preference import answer_pool  # noqa: E402
from pipelines.dialogue_stage import curate_plans  # noqa: E402
from schemas.config import CurateConfig, DialogueConfig, SpeechConfig  # noqa: E402


def bare_replay(url: str, bodies: list[dict], concurrency: int) -> float:
    """Seconds to post ``bodies`` to ``url`` with ``concurrency`` in flight, reading each reply."""
    def post(body: dict) -> None:
        request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=300) as response:
            json.loads(response.read())

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(post, bodies))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dialogues", type=int, default=2)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-media-writer-") as tmp:
        tmp = Path(tmp)
        process, server = start_server(tmp / "server")
        try:
            clips = media_pool(tmp / "media", 12)
            by_id = {c.clip.clip_id: c for c in clips}
            dialogue = DialogueConfig(writer="vlm_endpoint", writer_model=server.vlm, endpoint_url=server.base_url,
                                      writer_max_tokens=args.max_tokens, writer_concurrency=args.concurrency,
                                      dialogues=args.dialogues, min_turns=args.turns, max_turns=args.turns)
            cfg = CurateConfig(input=str(tmp), output=str(tmp / "out"), seed=1, dialogue=dialogue,
                               speech=SpeechConfig(enabled=False))
            plans = plan_dialogues(clips, dialogue, cfg.seed)
            pool = answer_pool({f.fact_id: f for c in clips for f in c.facts})

            # What it costs: the dialogue stage's write and filters, through a recording proxy.
            with RecordingProxy(server.base_url) as proxy:
                recorded = replace(cfg, dialogue=replace(dialogue, endpoint_url=proxy.base_url))
                writer = make_writer(recorded.dialogue)
                samples = curate_plans(plans, by_id, recorded, writer, pool)
                bodies = list(proxy.requests)
            kept = sum(s.kept for s in samples)
            usage = writer.usage()
            per_kept = max(kept, 1)
            print(f"dialogues {len(samples)}, kept {kept}; writer requests {usage.requests} "
                  f"({usage.requests / per_kept:.1f} per kept dialogue), prompt tokens {usage.prompt_tokens} "
                  f"({usage.prompt_tokens / per_kept:.0f} per kept dialogue), completion tokens "
                  f"{usage.completion_tokens} ({usage.completion_tokens / per_kept:.0f} per kept dialogue), "
                  f"failures {usage.failures}")

            # Overhead: the writer against the server vs the same bodies posted bare, alternating.
            writer_s, bare_s = [], []

            def through_writer() -> None:
                timed = make_writer(dialogue)  # no cache: every request goes to the server
                start = time.perf_counter()
                timed.write_batch(plans, by_id)
                writer_s.append(time.perf_counter() - start)
                assert timed.usage().requests == len(bodies), (timed.usage(), len(bodies))

            def bare() -> None:
                bare_s.append(bare_replay(server.base_url + "/chat/completions", bodies, args.concurrency))

            for i in range(args.repeats):  # alternate which goes first, so drift in the machine's load evens out
                for run in ((through_writer, bare) if i % 2 == 0 else (bare, through_writer)):
                    run()
        finally:
            stop_server(process)
    writer_rate = len(bodies) / statistics.median(writer_s)
    bare_rate = len(bodies) / statistics.median(bare_s)
    pairs = [b / w for w, b in zip(writer_s, bare_s)]  # each pair ran back to back, under the same load
    print(f"requests per run {len(bodies)} (concurrency {args.concurrency}, {args.max_tokens} tokens each)")
    print(f"writer   {writer_rate:.2f} requests/s (median of {args.repeats}: {statistics.median(writer_s):.2f} s; "
          f"runs {', '.join(f'{s:.2f}' for s in writer_s)})")
    print(f"bare     {bare_rate:.2f} requests/s (median of {args.repeats}: {statistics.median(bare_s):.2f} s; "
          f"runs {', '.join(f'{s:.2f}' for s in bare_s)})")
    print(f"pairs    {', '.join(f'{r:.3f}' for r in pairs)} (writer requests/s over bare, run by run)")
    print(f"ratio    {statistics.median(pairs):.3f} (median pair, writer over bare; >= 0.9: under 10% overhead)")


if __name__ == "__main__":
    main()
