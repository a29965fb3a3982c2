"""Partition staging streams the listing and stages exactly what sorting the whole listing did."""

import json
import tracemalloc
from pathlib import Path

import pytest

from curators.sources import list_sources
from pipelines import media_stage  # noqa: F401 - staging imports it: no import inside a measured peak
from pipelines.dataset.location import as_location
from pipelines.partitions import SOURCES_DIR, partition_count, partition_of, partition_sources, stage_partitions
from schemas.config import CurateConfig
from schemas.validation import to_json


def staged_by_sorting_the_listing(cfg: CurateConfig) -> dict[str, bytes]:
    """What staging wrote before it streamed: the whole listing sorted by URI, then split by partition."""
    items = list_sources(cfg.input)
    count = partition_count(cfg, len(items))
    return {f"p{p:05d}.jsonl": "".join(f"{to_json(i)}\n" for i in items if partition_of(i.uri, count) == p).encode()
            for p in range(count)}


def staged(work: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted((work / SOURCES_DIR).iterdir())}


def unsorted_manifest(path: Path, rows: int) -> Path:
    """A manifest whose rows are out of URI order, with repeated URIs carrying different metadata."""
    with path.open("w") as f:
        for n in range(rows):
            f.write(json.dumps({"uri": f"/media/{(n * 7919) % rows:06d}.jpg", "row": str(n)}) + "\n")
            if n % 50 == 0:
                f.write(json.dumps({"uri": f"/media/{(n * 7919) % rows:06d}.jpg", "row": f"{n}-again"}) + "\n")
    return path


def walked_tree(root: Path) -> Path:
    """A directory whose walk order is not URI order ("a.jpg" sorts after "a" + "/"... and before "a-b")."""
    for name in ["a/z.mp4", "a/b/c.wav", "a.jpg", "a-b/x.png", "b.mp4", "a/0.jpg", "zz/y/w.flac", ".hidden/h.jpg"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    return root


@pytest.mark.parametrize("partitions", [0, 3])
@pytest.mark.parametrize("corpus", ["manifest", "tree"])
def test_streamed_staging_writes_the_same_files_as_sorting_the_whole_listing(tmp_path: Path, partitions, corpus):
    source = unsorted_manifest(tmp_path / "list.jsonl", 600) if corpus == "manifest" else walked_tree(tmp_path / "in")
    cfg = CurateConfig(input=str(source), output=str(tmp_path / "out"), partitions=partitions, partition_sources=100)
    expected = staged_by_sorting_the_listing(cfg)
    plan = stage_partitions(cfg, as_location(str(tmp_path / "default")))
    assert staged(tmp_path / "default") == expected
    assert plan.sizes == [sum(1 for line in data.splitlines()) for data in expected.values()]
    assert plan.sound == any(not uri.endswith((".jpg", ".png")) for uri in
                             (json.loads(line)["uri"] for data in expected.values() for line in data.splitlines()))
    # every line flushed to its spill file at once: still the same bytes
    stage_partitions(cfg, as_location(str(tmp_path / "tiny")), partition_bytes=1, total_bytes=1)
    assert staged(tmp_path / "tiny") == expected
    if corpus == "manifest":
        assert len(expected) == (partitions or 7) and sum(plan.sizes) == 612
        again = partition_sources(as_location(str(tmp_path / "default")), 0)
        assert [s.uri for s in again] == sorted(s.uri for s in again)


def traced_peak(fn, *args, **kwargs) -> int:
    tracemalloc.start()
    try:
        fn(*args, **kwargs)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_staging_memory_stays_flat_as_the_listing_grows_tenfold(tmp_path: Path):
    peaks = {}
    for sources in (4_000, 40_000):  # 2,000 sources per partition either way
        cfg = CurateConfig(input=str(unsorted_manifest(tmp_path / f"list-{sources}.jsonl", sources)),
                           output=str(tmp_path / "out"), partitions=sources // 2_000)
        peaks[sources] = traced_peak(stage_partitions, cfg, as_location(str(tmp_path / f"work-{sources}")),
                                     total_bytes=1 << 16)
    whole_listing = traced_peak(list_sources, cfg.input)
    assert peaks[40_000] < 1.5 * peaks[4_000], peaks
    assert peaks[40_000] < whole_listing / 5, (peaks, whole_listing)
