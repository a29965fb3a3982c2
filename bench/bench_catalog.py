"""Catalog queries over a synthetic N-sample catalog through DuckDB views, against a pyarrow compute scan; ratio last.

Default 1,000,000 samples (about 8 turns each); ``--samples 10000000`` for the large figure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.dataset.catalog import open_catalog, write_catalog_views
from schemas.catalog_tables import SCHEMAS
from schemas.dataset_format import CATALOG_DIR
from schemas.dialogue import MEMORY_TYPES, QUESTION_TYPES

FILTERED_COUNT = "SELECT count(*) FROM samples WHERE kept AND num_turns >= 10 AND token_total > 8000"
GROUP_BY_TYPE = "SELECT question_type, count(*) AS n FROM turns GROUP BY question_type ORDER BY n DESC"


def synthetic_tables(n: int, seed: int = 0, chunk: int = 1_000_000):
    """Yield (samples, turns) record batches for n samples with the catalog schemas; turns 1-20 per sample."""
    rng = np.random.default_rng(seed)
    qtypes = pa.array(QUESTION_TYPES)
    for first in range(0, n, chunk):
        m = min(chunk, n - first)
        keys = pa.array([f"s{i:09d}" for i in range(first, first + m)])
        turns = rng.integers(1, 21, m).astype(np.int32)
        kept = rng.random(m) < 0.9
        tokens = rng.integers(200, 20000, m)
        zeros = pa.array(np.zeros(m, np.int64))
        samples = pa.table({
            "key": keys, "shard": pa.array([f"train-{(first + i) // 1000:06d}.tar" for i in range(m)]),
            "kept": kept, "schema_version": pa.array(np.ones(m, np.int32)),
            "dialogue_id": keys, "num_turns": turns, "num_media": turns,
            "num_memory_questions": (turns // 3).astype(np.int32),
            "num_spoken_messages": pa.array(np.zeros(m, np.int32)),
            "max_memory_distance": pa.array(np.minimum(turns - 1, 12).astype(np.int32)),
            "token_text": tokens, "token_image": zeros, "token_video": zeros, "token_audio": zeros,
            "token_total": tokens, "failed_filters": pa.array([[] if k else ["token_budget"] for k in kept],
                                                              pa.list_(pa.string())),
            "has_preference": pa.array(np.zeros(m, bool)), "bytes": pa.array(tokens * 100),
            "seed": zeros, "config_hash": pa.repeat(pa.scalar("cfg"), m),
        }, schema=SCHEMAS["samples"])
        total_turns = int(turns.sum())
        owner = np.repeat(np.arange(m), turns)
        index = (np.arange(total_turns) - np.repeat(np.cumsum(turns) - turns, turns)).astype(np.int32)
        qt = pc.take(qtypes, pa.array(rng.integers(0, len(QUESTION_TYPES), total_turns)))
        is_memory = pc.is_in(qt, value_set=pa.array(MEMORY_TYPES))
        distance = pa.array(np.maximum(index, 1), pa.int32())
        no_offsets = pa.array(np.zeros(total_turns + 1, np.int32))
        empty_i = pa.ListArray.from_arrays(no_offsets, pa.array([], pa.int32()))
        empty_s = pa.ListArray.from_arrays(no_offsets, pa.array([], pa.string()))
        blank = pa.repeat(pa.scalar(""), total_turns)
        nulls = pa.nulls(total_turns, pa.string())
        turn_table = pa.table({
            "key": pc.take(keys, pa.array(owner)), "turn": index, "question_type": qt, "is_memory": is_memory,
            "memory_distance": pc.if_else(is_memory, distance, pa.scalar(None, pa.int32())),
            "memory_turns": empty_i, "memory_members": empty_s, "user_text": blank, "assistant_text": blank,
            "answer_key": blank, "user_media": empty_s, "user_speech": nulls, "assistant_speech": nulls,
            "fact_ids": empty_s,
        }, schema=SCHEMAS["turns"])
        yield samples, turn_table


def build(root: Path, n: int) -> None:
    for name in SCHEMAS:
        (root / CATALOG_DIR / name).mkdir(parents=True)
    writers = {name: pq.ParquetWriter(root / CATALOG_DIR / name / "all.parquet", SCHEMAS[name], compression="zstd")
               for name in ("samples", "turns")}
    for samples, turns in synthetic_tables(n):
        writers["samples"].write_table(samples, row_group_size=256_000)
        writers["turns"].write_table(turns, row_group_size=1_000_000)
    for w in writers.values():
        w.close()
    for name in SCHEMAS:
        if name not in writers:
            pq.write_table(SCHEMAS[name].empty_table(), root / CATALOG_DIR / name / "all.parquet")
    write_catalog_views(str(root), SCHEMAS)


def timed(fn, repeats: int) -> tuple[float, object]:
    result = fn()  # warm-up (file metadata, page cache)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        build(root, args.samples)
        con = open_catalog(root)
        rows = con.execute("SELECT count(*) FROM turns").fetchone()[0]
        print(f"catalog: {args.samples:,} samples, {rows:,} turns, built in {time.perf_counter() - start:.1f} s")

        duck_count_ms, duck_count = timed(lambda: con.execute(FILTERED_COUNT).fetchone()[0], args.repeats)
        duck_group_ms, duck_group = timed(lambda: con.execute(GROUP_BY_TYPE).fetchall(), args.repeats)

        samples_ds = pds.dataset(root / CATALOG_DIR / "samples")
        turns_ds = pds.dataset(root / CATALOG_DIR / "turns")

        def arrow_count() -> int:
            expr = (pc.field("kept")) & (pc.field("num_turns") >= 10) & (pc.field("token_total") > 8000)
            return samples_ds.count_rows(filter=expr)

        def arrow_group() -> list[tuple[str, int]]:
            t = turns_ds.to_table(columns=["question_type"]).group_by("question_type").aggregate(
                [("question_type", "count")])
            return sorted(zip(t["question_type"].to_pylist(), t["question_type_count"].to_pylist()),
                          key=lambda r: -r[1])

        arrow_count_ms, arrow_count_value = timed(arrow_count, args.repeats)
        arrow_group_ms, arrow_group_value = timed(arrow_group, args.repeats)
        con.close()
        assert duck_count == arrow_count_value, (duck_count, arrow_count_value)
        assert sorted(duck_group) == sorted(arrow_group_value)
        print(f"filtered count ({duck_count:,} rows match): DuckDB view {duck_count_ms:.1f} ms, "
              f"pyarrow dataset scan {arrow_count_ms:.1f} ms")
        print(f"group-by question type over {rows:,} turns: DuckDB view {duck_group_ms:.1f} ms, "
              f"pyarrow scan + group_by {arrow_group_ms:.1f} ms")
        print(f"filtered count speed-up vs pyarrow: {arrow_count_ms / duck_count_ms:.2f}x")
        print(f"catalog queries (both) vs pyarrow compute scan: "
              f"{(arrow_count_ms + arrow_group_ms) / (duck_count_ms + duck_group_ms):.2f}x")


if __name__ == "__main__":
    main()
