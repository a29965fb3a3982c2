"""One partition's eval sets, planned from its held-out clips only, and their commit as datasets of their own.

Each set (``OUTPUT/eval/memory``, ``OUTPUT/eval/speech``) is a dataset like the training one (shards, catalog,
manifest) plus ``questions.jsonl`` and ``answer_key.jsonl``, which the scorer reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from curators.dialogue_plan import derive_seed, plan_dialogues
from curators.evalset import eval_item, fill_cells, fully_spoken, plan_memory_set
from pipelines.dataset.location import DatasetLocation, as_location
from pipelines.dataset.writer import PartitionFragment, commit_partitions, fragment_name, write_partition
from pipelines.dialogue_stage import DialogueActors, run_dialogue_stage
from schemas.config import CurateConfig
from schemas.dataset_format import ANSWER_KEY_FILE, EVAL_DIR, EVAL_ITEMS_DIR, MANIFEST_FILE, QUESTIONS_FILE
from schemas.dialogue import CuratedSample
from schemas.evalset import EvalAnswerKey, EvalQuestion
from schemas.media import AnnotatedClip
from schemas.validation import from_dict, to_dict


@dataclass(kw_only=True, slots=True, frozen=True)
class EvalShare:
    """A partition's part of the eval sets: dialogues per memory-grid cell, and speech dialogues."""

    memory: dict[str, int] = field(default_factory=dict)
    speech: int = 0


EVAL_SETS = ("memory", "speech")
"""Every eval set a run can make, each under ``eval/<name>/``."""


def wanted_sets(cfg: CurateConfig) -> list[str]:
    """The eval sets this run makes."""
    if not cfg.eval.enabled:
        return []
    sizes = {"memory": cfg.eval.memory.dialogues, "speech": cfg.eval.speech.dialogues}
    return [name for name in EVAL_SETS if sizes[name]]


def eval_path(name: str) -> str:
    """An eval set's place relative to the dataset root (what the manifest records)."""
    return f"{EVAL_DIR}/{name}"


def eval_location(cfg: CurateConfig, name: str) -> DatasetLocation:
    return as_location(f"{cfg.output.rstrip('/')}/{eval_path(name)}")


def speech_set_config(cfg: CurateConfig) -> CurateConfig:
    """The run's settings as the speech set speaks: speech on, the answers spoken too."""
    return replace(cfg, speech=replace(cfg.speech, enabled=True, speak_assistant=True))


def _silent(cfg: CurateConfig) -> CurateConfig:
    return replace(cfg, speech=replace(cfg.speech, enabled=False))


def plan_memory(clips: list[AnnotatedClip], cfg: CurateConfig, actors: DialogueActors, wanted: dict[str, int],
                scratch: str | Path) -> list[CuratedSample]:
    """Candidates per cell written and filtered (silently), the first kept ones filling each cell, then those
    spoken as the run speaks."""
    spec = cfg.eval.memory
    candidates = plan_memory_set(clips, spec, wanted, cfg.seed)
    written = run_dialogue_stage(clips, _silent(cfg), actors, scratch=scratch, plans=[p for _, p in candidates])
    chosen = set(fill_cells(written, spec, wanted))
    if not cfg.speech.enabled or not chosen:
        return [s for s in written if s.sample.key in chosen]
    plans = [p for (_, p), s in zip(candidates, written) if s.sample.key in chosen]
    return run_dialogue_stage(clips, cfg, actors, scratch=scratch, plans=plans)


def plan_speech(clips: list[AnnotatedClip], cfg: CurateConfig, actors: DialogueActors, wanted: int,
                scratch: str | Path) -> list[CuratedSample]:
    """Dialogues of 2-10 turns planned as training ones are; the kept candidates spoken (answers too); the first
    ``wanted`` spoken in full make the set (rejected ones stay in its catalog)."""
    spec = cfg.eval.speech
    dialogue = replace(cfg.dialogue, dialogues=wanted * spec.candidates, min_turns=spec.min_turns,
                       max_turns=spec.max_turns,
                       max_memory_distance=min(cfg.dialogue.max_memory_distance, spec.max_turns - 1))
    plans = plan_dialogues(clips, dialogue, derive_seed("eval-speech", cfg.seed))
    written = run_dialogue_stage(clips, _silent(cfg), actors, scratch=scratch, plans=plans)
    kept = [p for p, s in zip(plans, written) if s.kept]
    if not kept:
        return [s for s in written if not s.kept]
    spoken = run_dialogue_stage(clips, speech_set_config(cfg), actors, scratch=scratch, plans=kept)
    full = [s for s in spoken if s.kept and fully_spoken(s.sample)][:wanted]
    return [*full, *(s for s in spoken if not s.kept)]


def held_out_check(train: list, held: dict[str, list]) -> None:
    """The split's guard: no source feeds both training and an eval set."""
    from curators.evalset import shared_sources

    both = shared_sources([s.sample for s in train if s.kept], [s.sample for ss in held.values() for s in ss if s.kept])
    if both:
        raise RuntimeError(f"sources on both sides of the train/eval split: {sorted(both)[:5]}")


def split_partition(cfg: CurateConfig, work: DatasetLocation, partition: int, clips: list) -> tuple[list, list, list]:
    """A partition's clips on each side of the train/eval split, less the later copy of any near-duplicate pair
    across it (the cross-partition pass compares only clips of different partitions); and those copies."""
    from curators.evalset import split_pool, straddling_duplicates
    from pipelines.media_dedup import partition_signatures

    train, held = split_pool(clips, cfg.eval.share)
    if not held:
        return train, held, []
    sigs = {s.clip_id: s for s in partition_signatures(work, partition)}
    side = lambda pool: [sigs[c.clip.clip_id] for c in pool if c.clip.clip_id in sigs]
    straddling = straddling_duplicates(side(train), side(held))
    gone = {d.clip_id for d in straddling}
    return ([c for c in train if c.clip.clip_id not in gone], [c for c in held if c.clip.clip_id not in gone],
            straddling)


def run_eval_sets(clips: list[AnnotatedClip], cfg: CurateConfig, actors: DialogueActors,
                  speech_actors: DialogueActors, share: EvalShare,
                  scratch: str | Path) -> dict[str, list[CuratedSample]]:
    """A partition's eval dialogues, set by set, from its held-out ``clips`` only."""
    out: dict[str, list[CuratedSample]] = {name: [] for name in wanted_sets(cfg)}
    if clips and sum(share.memory.values()):
        out["memory"] = plan_memory(clips, cfg, actors, share.memory, scratch)
    if clips and share.speech:
        out["speech"] = plan_speech(clips, cfg, speech_actors, share.speech, scratch)
    return out


def write_eval_partition(cfg: CurateConfig, partition: int, name: str, samples: list[CuratedSample],
                         clips: list[AnnotatedClip]) -> PartitionFragment:
    """An eval set's shards and catalog fragment for one partition, and its items (``items/pNNNNN.jsonl``)."""
    location = eval_location(cfg, name)
    used = {m.clip_id for s in samples for m in s.sample.dialogue.media}
    fragment = write_partition(location, partition, samples, [], shard=cfg.shard,
                               clips=[c for c in clips if c.clip.clip_id in used])
    lines = []
    for s in samples:
        if s.kept:
            question, key = eval_item(s.sample, name, cfg.eval.memory)
            lines.append(json.dumps({"question": to_dict(question), "key": to_dict(key)}, sort_keys=True) + "\n")
    location.write_bytes((EVAL_ITEMS_DIR, f"{fragment_name(partition)}.jsonl"), "".join(lines).encode())
    return fragment


def commit_eval_sets(cfg: CurateConfig, fragments: dict[str, list[PartitionFragment]]) -> dict[str, str]:
    """Commit each eval set (manifest last within it) with its merged question and answer-key files; returns
    where each is, relative to the dataset, for the main manifest. A set that an earlier run into this output
    made and this one does not is removed first (its manifest before its files, so it never reads as a
    current set), all before the main manifest is written."""
    where = {}
    for name in sorted(set(EVAL_SETS) - set(wanted_sets(cfg))):
        location = eval_location(cfg, name)
        location.remove(MANIFEST_FILE)
        location.remove()
    if not wanted_sets(cfg):
        as_location(cfg.output).remove(EVAL_DIR)
    for name in wanted_sets(cfg):
        location = eval_location(cfg, name)
        location.remove(MANIFEST_FILE)
        mine = sorted(fragments.get(name, []), key=lambda f: f.partition)
        names = {f"{fragment_name(f.partition)}.jsonl" for f in mine}
        for stale in set(location.listdir(EVAL_ITEMS_DIR)) - names:
            location.remove(EVAL_ITEMS_DIR, stale)
        rows = []
        for item_file in sorted(names):
            text = location.read_bytes(EVAL_ITEMS_DIR, item_file).decode()
            rows.extend(json.loads(line) for line in text.splitlines() if line)
        rows.sort(key=lambda r: r["key"]["id"])
        location.write_bytes((QUESTIONS_FILE,), "".join(json.dumps(r["question"], sort_keys=True) + "\n"
                                                         for r in rows).encode())
        location.write_bytes((ANSWER_KEY_FILE,), "".join(json.dumps(r["key"], sort_keys=True) + "\n"
                                                          for r in rows).encode())
        wanted = cfg.eval.memory.dialogues if name == "memory" else cfg.eval.speech.dialogues
        commit_partitions(location, mine, config_hash=cfg.config_hash(), seed=cfg.seed,
                          extra_counts={"wanted": wanted, "items": len(rows)})
        where[name] = eval_path(name)
    return where


def read_eval_set(folder: str | Path | DatasetLocation) -> tuple[list[EvalQuestion], list[EvalAnswerKey]]:
    """An eval set's questions and answer keys, read strictly."""
    location = as_location(folder)
    questions = [from_dict(EvalQuestion, json.loads(line))
                 for line in location.read_bytes(QUESTIONS_FILE).decode().splitlines() if line]
    keys = [from_dict(EvalAnswerKey, json.loads(line))
            for line in location.read_bytes(ANSWER_KEY_FILE).decode().splitlines() if line]
    return questions, keys
