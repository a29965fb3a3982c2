"""A curation run on a Ray cluster, partition by partition: media, cross-partition dedup, dialogues + commit.

The driver holds one small record per partition. Each partition's work is a Ray task that may run on any
node: it reads its sources' list and writes its results on the work location (the dataset's storage), and
hands decoded media to the shared actor pools as bytes. A partition commits its shards and catalog fragment
on its own; the manifest, listing every shard, is written last.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import ray
from ray import ObjectRefGenerator
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from pipelines.dataset.location import DatasetLocation, as_location
from pipelines.dataset.writer import PartitionFragment, commit_partitions, write_partition
from pipelines.eval_stage import EvalShare
from pipelines.media_resume import (STAGE, PartitionMedia, ledger_usage, load_partition_media, partition_dir,
                                    partition_ledger, partition_media, source_keys, staged_signatures)
from pipelines.partitions import PartitionPlan, partition_sources, stage_partitions
from pipelines.run_ledger import fingerprint, ledger_schema, ledger_table
from schemas.config import CurateConfig
from schemas.dataset_format import MANIFEST_FILE, Manifest
from schemas.media import QuarantineRecord
from schemas.usage import USAGE_TABLE, usage_schema, usage_table
from schemas.validation import from_json, to_json

log = logging.getLogger(__name__)

COMMITS_DIR = "commits"
MAX_DEDUP_BUCKETS = 16
"""Reducers of the cross-partition duplicate search (the answer does not depend on their number)."""


class CurateFailed(RuntimeError):
    """Too many sources failed (errors left after retries): the run committed nothing."""


def work_location(cfg: CurateConfig) -> DatasetLocation:
    return as_location(cfg.work_path)


@dataclass(kw_only=True, slots=True)
class MediaTotals:
    """The media phase over all partitions, as the driver keeps it: a few numbers per partition."""

    partitions: list[PartitionMedia] = field(default_factory=list)

    @property
    def sources(self) -> int:
        return sum(p.sources for p in self.partitions)

    @property
    def failed(self) -> int:
        return sum(p.failed for p in self.partitions)

    @property
    def first_error(self) -> str:
        return next((p.first_error for p in sorted(self.partitions, key=lambda p: p.partition) if p.first_error), "")

    def counters(self) -> dict[str, int]:
        counts: Counter = Counter()
        for p in self.partitions:
            counts.update(p.counters)
        return dict(counts)


def _storage_options(cfg: CurateConfig) -> dict:
    """Tasks that read or write the dataset's storage: anywhere when it is a bucket; on the driver's node
    when it is a local directory and the cluster has other nodes (which cannot see that disk)."""
    local = "://" not in cfg.work_path or "://" not in cfg.output
    if local and len([n for n in ray.nodes() if n.get("Alive")]) > 1:
        return {"scheduling_strategy": NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(),
                                                                      soft=False)}
    return {}


def _in_flight(cfg: CurateConfig) -> int:
    nodes = len([n for n in ray.nodes() if n.get("Alive")])
    return cfg.partitions_in_flight or max(2, 2 * nodes)


def _bounded(submit: Callable[[int], ray.ObjectRef | ObjectRefGenerator], partitions: Iterable[int], limit: int,
             done: Callable[[object], None], told: Callable[[int, object], None] | None = None) -> None:
    """Keep at most ``limit`` partition tasks running; hand each result to ``done`` as it arrives. A task that
    streams (``num_returns="streaming"``) tells ``told(partition, value)`` each value it yields before its last,
    which is its result."""
    pending: dict[ray.ObjectRef | ObjectRefGenerator, int] = {}
    heard: dict[ObjectRefGenerator, object] = {}
    """A streaming task's latest value: told once the next arrives, its result once the stream ends."""

    def wait_one() -> None:
        [ready], _ = ray.wait(list(pending), num_returns=1)  # a generator is ready when its next value is
        if isinstance(ready, ray.ObjectRef):
            pending.pop(ready)
            done(ray.get(ready))
            return
        try:
            value = ray.get(next(ready))
        except StopIteration:
            pending.pop(ready)
            done(heard.pop(ready))
            return
        if ready in heard and told is not None:
            told(pending[ready], heard[ready])
        heard[ready] = value

    for partition in partitions:
        pending[submit(partition)] = partition
        while len(pending) >= limit:
            wait_one()
    while pending:
        wait_one()


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="source", disable=not enabled, leave=True)


# --- media ------------------------------------------------------------------------------------------------

@ray.remote(num_cpus=0, max_retries=2, num_returns="streaming")
def _media_partition(cfg: CurateConfig, partition: int, buckets: int, actors) -> Iterator[int | PartitionMedia]:
    """One partition's media (resumed from its ledger), then its clips' signatures for the dedup pass: streams
    how many of its sources are finished after each batch (``partition_media``), then its tallies."""
    from curators.media_dedup import clip_signature
    from pipelines.media_dedup import write_signatures

    work = work_location(cfg)
    sources = partition_sources(work, partition)
    summary = yield from partition_media(cfg, partition, sources, actors, work, batch_size=cfg.batch_size)
    signatures = staged_signatures(cfg, partition, sources, work)
    if signatures is None:  # media staged by an older version carry no signatures: hash the staged bytes
        scratch = tempfile.mkdtemp(prefix="omnicurate-partition-")
        try:
            media = load_partition_media(cfg, partition, sources, work, scratch)
            signatures = [clip_signature(c.clip, partition) for c in media.clips]
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    write_signatures(work, partition, signatures, buckets)
    yield summary


def dedup_buckets(plan: PartitionPlan) -> int:
    return max(1, min(MAX_DEDUP_BUCKETS, plan.count))


def run_media_phase(cfg: CurateConfig, plan: PartitionPlan, progress: bool = True) -> MediaTotals:
    """Every partition's media work, a bounded number at once, with the run's shared actor pools."""
    from pipelines.media_actors import release_media_actors, start_media_actors

    actors = start_media_actors(cfg, ray.cluster_resources(), sound=plan.sound)
    totals = MediaTotals()
    bar = _progress(plan.sources, "media", progress)
    options = _storage_options(cfg)
    finished: dict[int, int] = {}
    working = sum(1 for size in plan.sizes if size)  # partitions with sources

    def told(partition: int, count: int) -> None:
        finished[partition] = max(count, finished.get(partition, 0))
        bar.update(sum(finished.values()) - bar.n)

    def done(summary: PartitionMedia) -> None:
        totals.partitions.append(summary)
        bar.set_postfix(partitions=f"{len(totals.partitions)}/{working}", failed=totals.failed)

    try:
        _bounded(lambda p: _media_partition.options(**options).remote(cfg, p, dedup_buckets(plan), actors),
                 (p for p in range(plan.count) if plan.sizes[p]), _in_flight(cfg), done, told)
    finally:
        release_media_actors()
        bar.close()
    totals.partitions.sort(key=lambda p: p.partition)
    return totals


def check_failures(cfg: CurateConfig, totals: MediaTotals) -> None:
    """Refuse to commit when no source was listed, or more sources failed than ``max_failed_fraction``."""
    if totals.sources == 0:
        raise CurateFailed(f"no sources found in {cfg.input}: nothing to curate")
    if totals.failed > cfg.max_failed_fraction * totals.sources:
        raise CurateFailed(f"{totals.failed} of {totals.sources} sources failed (max_failed_fraction "
                           f"{cfg.max_failed_fraction:g}); nothing was committed. First error: {totals.first_error}. "
                           "Fix the cause, then run `omnicurate retry --failed` with the same arguments.")


# --- dedup ------------------------------------------------------------------------------------------------

def run_dedup_phase(cfg: CurateConfig, plan: PartitionPlan) -> int:
    """Near-duplicate media across partitions (the later copy is dropped); returns how many clips."""
    from pipelines.media_dedup import find_duplicates

    partitions = [p for p in range(plan.count) if plan.sizes[p]]
    return find_duplicates(work_location(cfg), partitions, dedup_buckets(plan), task_options=_storage_options(cfg))


# --- dialogues and commit ---------------------------------------------------------------------------------

@dataclass(kw_only=True, slots=True)
class CommitRecord:
    """``work/commits/pNNNNN.json``: a committed partition, and the fingerprint of what it was made from."""

    fingerprint: str
    fragment: PartitionFragment
    eval_fragments: dict[str, PartitionFragment] = field(default_factory=dict)
    """The partition's part of each eval set (``memory``, ``speech``)."""


def _commit_fingerprint(cfg: CurateConfig, entries: list, duplicates: dict, dialogues: int | None,
                        eval_share: EvalShare | None = None) -> str:
    parts = [cfg.config_hash(), dialogues, sorted((e.item, e.status, e.blobs) for e in entries),
             sorted((cid, d.duplicate_of) for cid, d in duplicates.items())]
    return fingerprint(*parts, *([to_json(eval_share)] if eval_share is not None else []))


def _committed(cfg: CurateConfig, work: DatasetLocation, partition: int, print_: str) -> CommitRecord | None:
    from pipelines.eval_stage import eval_location

    name = f"{partition_dir(partition)}.json"
    if not work.exists(COMMITS_DIR, name):
        return None
    record = from_json(CommitRecord, work.read_bytes(COMMITS_DIR, name))
    located = [(as_location(cfg.output), record.fragment),
               *((eval_location(cfg, set_name), f) for set_name, f in record.eval_fragments.items())]
    if record.fingerprint != print_ or not all(loc.exists("shards", e.name) for loc, f in located for e in f.shards):
        return None
    return record


@ray.remote(num_cpus=0, max_retries=2)
def _commit_partition(cfg: CurateConfig, partition: int, dialogues: int | None, actors,
                      eval_share: EvalShare | None = None, eval_speakers: list | None = None) -> CommitRecord:
    from pipelines.dialogue_stage import DialogueActors, run_dialogue_stage
    from pipelines.eval_stage import held_out_check, run_eval_sets, split_partition, write_eval_partition
    from pipelines.media_dedup import duplicates_for

    work, out = work_location(cfg), as_location(cfg.output)
    sources = partition_sources(work, partition)
    keys = set(source_keys(cfg, sources).values())
    entries = [e for k, e in partition_ledger(work, partition).entries(STAGE).items() if k in keys]
    duplicates = duplicates_for(work, partition)
    print_ = _commit_fingerprint(cfg, entries, duplicates, dialogues, eval_share)
    if (record := _committed(cfg, work, partition, print_)) is not None:
        return record  # a committed partition is never redone
    scratch = tempfile.mkdtemp(prefix="omnicurate-partition-")
    try:
        media = load_partition_media(cfg, partition, sources, work, scratch, leave_out=duplicates)
        clips = media.clips
        dropped = [QuarantineRecord(uri=c.clip.source_uri, reason="duplicate", stage="dedup", sha256=c.source_sha256,
                                    detail=f"clip {c.clip.clip_id} ({c.clip.start_s:g}-{c.clip.end_s:g} s): "
                                           f"{d.reason} of clip {d.duplicate_of} (partition {d.kept_partition}, "
                                           f"distance {d.distance})")
                   for c in media.left_out for d in [duplicates[c.clip.clip_id]]]
        train_clips, eval_clips, straddling = split_partition(cfg, work, partition, clips)
        by_id = {c.clip.clip_id: c for c in clips}
        dropped += [QuarantineRecord(uri=d.source_uri, reason="duplicate", stage="dedup",
                                     sha256=by_id[d.clip_id].source_sha256,
                                     detail=f"clip {d.clip_id}: {d.reason} of clip {d.duplicate_of} on the other side "
                                            f"of the train/eval split (distance {d.distance})")
                    for d in straddling]
        usage = ledger_usage(media.ledger)  # the captioner's, kept with each source's media results
        samples = run_dialogue_stage(train_clips, cfg, actors, scratch=scratch, dialogues=dialogues, usage=usage)
        eval_fragments = {}
        if eval_share is not None:
            speech_actors = DialogueActors(writers=actors.writers, speakers=eval_speakers or [])
            sets = run_eval_sets(eval_clips, cfg, actors, speech_actors, eval_share, scratch)
            held_out_check(samples, sets)
            eval_fragments = {name: write_eval_partition(cfg, partition, name, held, eval_clips)
                              for name, held in sets.items()}
        fragment = write_partition(out, partition, samples, sorted([*media.quarantine, *dropped],
                                                                   key=lambda q: (q.uri, q.stage, q.detail)),
                                   shard=cfg.shard, extra_tables={"ledger": ledger_table(media.ledger),
                                                                  USAGE_TABLE: usage_table(usage, partition)},
                                   clips=train_clips)
        if eval_share is not None:
            fragment.counts["held_out_clips"] = len(eval_clips)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    record = CommitRecord(fingerprint=print_, fragment=fragment, eval_fragments=eval_fragments)
    work.write_bytes((COMMITS_DIR, f"{partition_dir(partition)}.json"), to_json(record).encode())
    return record


@dataclass(kw_only=True, slots=True, frozen=True)
class SplitPools:
    """A partition's askable clips on each side of the train/eval split, read from its ledger alone."""

    partition: int
    train: int
    held_out: int
    held_out_recallable: int
    """Held-out clips a memory question can recall (what media cells need)."""


@ray.remote(num_cpus=0, max_retries=2)
def _split_pools(cfg: CurateConfig, partition: int) -> SplitPools:
    """What the driver divides the dialogue counts by; no media is read."""
    import json

    from curators.dialogue_plan import is_askable
    from curators.evalset import is_recallable
    from pipelines.eval_stage import split_partition
    from pipelines.media_dedup import duplicates_for
    from schemas.media import AnnotatedClip
    from schemas.validation import from_dict

    work = work_location(cfg)
    keys = set(source_keys(cfg, partition_sources(work, partition)).values())
    duplicates = duplicates_for(work, partition)
    clips = [c for k, e in partition_ledger(work, partition).entries(STAGE).items() if k in keys and e.status == "done"
             for c in (from_dict(AnnotatedClip, raw) for raw in json.loads(e.result))
             if c.clip.clip_id not in duplicates and is_askable(c)]
    train, held, _ = split_partition(cfg, work, partition, clips)
    return SplitPools(partition=partition, train=len(train), held_out=len(held),
                      held_out_recallable=sum(is_recallable(c) for c in held))


def eval_shares(cfg: CurateConfig, pools: list[SplitPools]) -> dict[int, EvalShare]:
    """Each partition's part of every memory-grid cell and of the speech set, by its held-out clips (largest
    remainder per cell, so each cell's total is what the grid asks); a cell that shows media goes only to
    partitions holding the recallable clips it needs, by how many they hold."""
    from curators.evalset import cell_name, cell_targets, media_needed

    targets = cell_targets(cfg.eval.memory)
    memory: dict[int, dict[str, int]] = {p.partition: {} for p in pools}
    for cell in cfg.eval.memory.cells():
        need = media_needed(cell)
        able = {p.partition: p.held_out_recallable if need else p.held_out for p in pools
                if p.held_out and p.held_out_recallable >= need}
        for partition, n in dialogue_shares(targets.get(cell_name(cell), 0), able).items():
            if n:
                memory[partition][cell_name(cell)] = n
    speech = dialogue_shares(cfg.eval.speech.dialogues, {p.partition: p.held_out for p in pools if p.held_out})
    return {p.partition: EvalShare(memory=memory[p.partition], speech=speech.get(p.partition) or 0) for p in pools}


def dialogue_shares(total: int, clips: dict[int, int]) -> dict[int, int | None]:
    """Each partition's share of a corpus-wide dialogue count, by its clips (largest remainder; None when
    the count is left to the per-pool default)."""
    if total <= 0 or not clips:
        return {p: None for p in clips}
    all_clips = sum(clips.values()) or 1
    exact = {p: total * n / all_clips for p, n in clips.items()}
    shares = {p: int(v) for p, v in exact.items()}
    for p in sorted(exact, key=lambda p: (shares[p] - exact[p], p))[:total - sum(shares.values())]:
        shares[p] += 1
    return shares


def run_commit_phase(cfg: CurateConfig, plan: PartitionPlan, totals: MediaTotals,
                     progress: bool = True) -> list[PartitionFragment]:
    """Dialogues, speech, shards and catalog fragment of every partition (skipping committed ones)."""
    from pipelines.dialogue_stage import release_dialogue_actors, start_dialogue_actors

    from pipelines.dialogue_stage import start_speech_actors
    from pipelines.eval_stage import eval_location, speech_set_config, wanted_sets

    as_location(cfg.output).remove(MANIFEST_FILE)  # the dataset is about to change: it no longer reads as committed
    for name in wanted_sets(cfg):
        eval_location(cfg, name).remove(MANIFEST_FILE)
    train_pool = {p.partition: p.clips for p in totals.partitions}
    held: dict[int, EvalShare | None] = {p: None for p in train_pool}
    if cfg.eval.enabled:
        options = _storage_options(cfg)
        pools = ray.get([_split_pools.options(**options).remote(cfg, p) for p in sorted(train_pool)])
        train_pool = {p.partition: p.train for p in pools}
        held = dict(eval_shares(cfg, pools))
    shares = dialogue_shares(cfg.dialogue.dialogues, train_pool)
    actors = start_dialogue_actors(cfg, ray.cluster_resources())
    eval_speakers = (start_speech_actors(speech_set_config(cfg), ray.cluster_resources())
                     if "speech" in wanted_sets(cfg) else [])
    records: list[CommitRecord] = []
    bar = _progress(plan.sources, "dialogues -> shards", progress)
    options = _storage_options(cfg)

    def done(record: CommitRecord) -> None:
        records.append(record)
        bar.update(plan.sizes[record.fragment.partition])
        bar.set_postfix(samples=sum(r.fragment.counts.get("samples", 0) for r in records))

    try:
        _bounded(lambda p: _commit_partition.options(**options).remote(cfg, p, shares.get(p), actors, held.get(p),
                                                                        eval_speakers),
                 sorted(shares), _in_flight(cfg), done)
    finally:
        release_dialogue_actors(actors)
        for actor in eval_speakers:
            ray.kill(actor)
        bar.close()
    return sorted(records, key=lambda r: r.fragment.partition)


def commit_run(cfg: CurateConfig, plan: PartitionPlan, totals: MediaTotals, records: list[CommitRecord],
               duplicates: int) -> Manifest:
    """Each eval set committed, then the manifest over every partition's shards, naming the eval sets, last."""
    from pipelines.eval_stage import EVAL_SETS, commit_eval_sets

    eval_sets = commit_eval_sets(cfg, {name: [r.eval_fragments[name] for r in records if name in r.eval_fragments]
                                       for name in EVAL_SETS})
    extra = {"sources": totals.sources, "clips": sum(p.clips for p in totals.partitions),
             "failed_sources": totals.failed, "partitions": plan.count, "duplicate_clips": duplicates}
    return commit_partitions(cfg.output, [r.fragment for r in records], config_hash=cfg.config_hash(), seed=cfg.seed,
                             extra_counts=extra, extra_schemas={"ledger": ledger_schema(), USAGE_TABLE: usage_schema()},
                             eval_sets=eval_sets)


def plan_run(cfg: CurateConfig) -> PartitionPlan:
    """List the input into partitions staged on the work location."""
    return stage_partitions(cfg, work_location(cfg))


def forget_failed_sources(cfg: CurateConfig) -> int:
    """Forget every partition's failed ledger entries (``retry --failed``); returns how many."""
    work = work_location(cfg)
    return sum(partition_ledger(work, int(name[1:])).forget_failed()
               for name in work.listdir("ledger") if name.startswith("p") and name[1:].isdigit())

