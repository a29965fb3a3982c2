"""A one-screen text summary of a curated dataset, read from its manifest and catalog."""

from __future__ import annotations

from schemas.validation import to_dict


def _query(con, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def summarize_dataset(dataset: str) -> str:
    """Samples, turns, question types, memory distances, dialogue lengths and quarantined files, as text."""
    from pipelines.dataset.catalog import open_catalog
    from pipelines.dataset.manifest import read_manifest
    from pipelines.dataset.review_render import report_data

    manifest = to_dict(read_manifest(dataset))
    con = open_catalog(dataset)
    counts = manifest["counts"]
    lines = [
        f"dataset      {dataset}",
        f"shards       {len(manifest['shards'])}  (manifest.json, catalog.duckdb beside them)",
        f"samples      {counts.get('samples', 0)} kept, {counts.get('rejected', 0)} rejected",
        f"turns        {counts.get('turns', 0)}  media {counts.get('media', 0)}",
    ]
    lengths = _query(con, "SELECT min(num_turns), max(num_turns), avg(num_turns) FROM samples WHERE kept")
    if lengths and lengths[0][0] is not None:
        lo, hi, mean = lengths[0]
        lines.append(f"dialogue     {lo}..{hi} turns (mean {mean:.1f})")
    [(spoken, user_spoken, user_turns)] = _query(
        con, "SELECT (SELECT coalesce(sum(num_spoken_messages), 0) FROM samples WHERE kept), count(t.user_speech), "
             "count(*) FROM turns t JOIN samples s USING (key) WHERE s.kept")
    lines.append(f"spoken       {spoken} messages ({user_spoken} of {user_turns} user turns)" if spoken
                 else "spoken       none (speech.enabled: false, or nothing kept)")
    data = report_data(dataset)  # the same numbers the report plots
    lines.append("question     " + ", ".join(f"{r['question_type']} {r['turns']}" for r in data["question_types"]))
    lines.append("memory dist  " + (", ".join(f"{r['memory_distance']}:{r['turns']}" for r in data["memory_distances"])
                                    or "none"))
    failed = _query(con, "SELECT filter, code, count(*) FROM verdicts WHERE NOT passed GROUP BY 1, 2 "
                         "ORDER BY 3 DESC, 1, 2 LIMIT 6")
    if failed:
        lines.append("rejected by  " + "; ".join(f"{f} ({code}) x{n}" for f, code, n in failed))
    for u in data["model_usage"]:
        lines.append(f"model usage  {u['stage']} ({u['model']}): {u['requests']} requests, {u['prompt_tokens']} + "
                     f"{u['completion_tokens']} tokens, {u['cache_hits']} cache hits, {u['failures']} failed; "
                     f"{u['requests_per_kept_dialogue']:.1f} requests and {u['tokens_per_kept_dialogue']:.0f} "
                     f"tokens per kept dialogue")
    for name, rel in sorted(manifest["eval_sets"].items()):
        held = read_manifest(f"{dataset.rstrip('/')}/{rel}").counts
        lines.append(f"eval {name:<7} {held.get('items', 0)} dialogues of {held.get('wanted', 0)} wanted, from "
                     f"{counts.get('held_out_clips', 0)} held-out clips ({rel}/, omnicurate evalset list)")
    quarantined = _query(con, "SELECT reason, uri FROM quarantine ORDER BY reason, uri")
    lines.append(f"quarantined  {len(quarantined)} file(s)")
    for reason, uri in quarantined[:12]:
        lines.append(f"  - {reason:<18} {uri}")
    if len(quarantined) > 12:
        lines.append(f"  ... {len(quarantined) - 12} more: omnicurate review sql 'SELECT * FROM quarantine'")
    return "\n".join(lines)
