"""A partition's media work: dedup signatures kept with the staged bytes, duplicates left staged, and progress told
as a fixed number of counts."""

from pathlib import Path

from curators.corpus_synth import synth_corpus
from curators.media_dedup import clip_signature
from pipelines import media_actors
from pipelines.dataset.location import as_location
from pipelines.media_resume import load_partition_media, media_batches, partition_media, staged_signatures
from pipelines.partitions import partition_sources, stage_partitions
from schemas.config import CurateConfig
from schemas.media import SourceItem


def staged_partition(tmp_path: Path, seed: int, **counts):
    """A synth corpus of ``counts`` in one partition, its source list staged: the config, work location, sources."""
    corpus = tmp_path / "corpus"
    synth_corpus(corpus, seed=seed, **counts)
    cfg = CurateConfig(input=str(corpus), output=str(tmp_path / "out"), partitions=1)
    work = as_location(cfg.work_path)
    stage_partitions(cfg, work)
    return cfg, work, partition_sources(work, 0)


def test_signatures_from_the_decoded_bytes_match_those_of_the_unstaged_clips(tmp_path: Path, ray_local):
    cfg, work, sources = staged_partition(tmp_path, 3, videos=2, audio=1, images=3)
    actors = media_actors.start_media_actors(cfg, ray_local.cluster_resources())
    try:
        list(partition_media(cfg, 0, sources, actors, work, batch_size=2))
    finally:
        media_actors.release_media_actors()
    unstaged = load_partition_media(cfg, 0, sources, work, tmp_path / "scratch").clips
    expected = [clip_signature(c.clip, 0) for c in unstaged]
    batches = len(media_batches(sources, 2))
    assert batches > 1 and len(work.listdir("media", "p00000")) == batches, "one staging file per batch"
    assert staged_signatures(cfg, 0, sources, work) == expected
    assert {s.kind for s in expected} == {"image", "video", "audio"}
    assert all((s.picture_hash is None) == (s.kind == "audio") for s in expected)
    # a staging file written before signatures were kept: the caller is told to hash the staged bytes instead
    import pyarrow.parquet as pq

    staged = tmp_path / "out" / ".work" / "media" / "p00000" / sorted(work.listdir("media", "p00000"))[0]
    pq.write_table(pq.read_table(staged).replace_schema_metadata(None), staged)
    assert staged_signatures(cfg, 0, sources, work) is None


def test_clips_left_out_come_back_as_stored_and_only_the_others_are_unstaged(tmp_path: Path, ray_local):
    cfg, work, sources = staged_partition(tmp_path, 3, videos=0, audio=0, images=3)
    actors = media_actors.start_media_actors(cfg, ray_local.cluster_resources(), sound=False)
    try:
        list(partition_media(cfg, 0, sources, actors, work, batch_size=2))
    finally:
        media_actors.release_media_actors()
    every = load_partition_media(cfg, 0, sources, work, tmp_path / "all").clips
    duplicate = every[1].clip.clip_id
    media = load_partition_media(cfg, 0, sources, work, tmp_path / "some", leave_out={duplicate})
    assert [c.clip.clip_id for c in media.clips] == [c.clip.clip_id for c in every if c.clip.clip_id != duplicate]
    assert [c.clip.clip_id for c in media.left_out] == [duplicate]
    assert sorted(p.name for p in (tmp_path / "some").iterdir()) == sorted(c.clip.clip_id for c in media.clips)
    assert all(Path(c.clip.media_path).is_file() for c in media.clips)
    assert media.left_out[0].clip.media_path == Path(every[1].clip.media_path).name, "a bare name, not a path"


def test_a_batch_holds_batch_size_sources_that_may_carry_sound_or_four_stills_for_each():
    items = [SourceItem(uri=f"/c/{name}") for name in
             [*(f"s{i}.jpg" for i in range(5)), "v0.mp4", *(f"t{i}.png" for i in range(4)), "a0.wav", "a1.flac",
              "v1.mkv"]]
    batches = [[item.uri.rsplit("/", 1)[1] for item in batch] for batch in media_batches(items, 2)]
    assert batches == [["s0.jpg", "s1.jpg", "s2.jpg", "s3.jpg", "s4.jpg"],  # a video more would weigh nine stills
                       ["v0.mp4", "t0.png", "t1.png", "t2.png", "t3.png"], ["a0.wav", "a1.flac"], ["v1.mkv"]]
    assert [len(b) for b in media_batches(items[:5], 1)] == [4, 1]
    assert [len(b) for b in media_batches(items[5:6], 1)] == [1], "one video fills a batch of one"
    assert media_batches([], 8) == []


def test_progress_is_a_fixed_number_of_counts_so_a_task_run_again_neither_counts_twice_nor_yields_more(
        tmp_path: Path, ray_local):
    cfg, work, sources = staged_partition(tmp_path, 4, videos=0, audio=0, images=6)
    actors = media_actors.start_media_actors(cfg, ray_local.cluster_resources(), sound=False)
    try:
        told = list(partition_media(cfg, 0, sources, actors, work, batch_size=1))  # four stills a batch
        # the task run again (as Ray retries it): the ledger has every source, so it repeats 6 as often
        again = partition_media(cfg, 0, sources, actors, work, batch_size=1)
        told_again = []
        while True:
            try:
                told_again.append(next(again))
            except StopIteration as end:
                summary = end.value
                break
    finally:
        media_actors.release_media_actors()
    assert told == [4, 6]
    assert told_again == [6, 6]
    assert len(told) == len(media_batches(sources, 1))
    assert (summary.sources, summary.failed, summary.clips) == (6, 0, 6)
