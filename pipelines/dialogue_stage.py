"""One partition's dialogue stage: plan, write, build, filter, deduplicate and speak its samples.

Template writing runs in the partition's own task (many partitions run at once); model-backed writers and
the TTS live in actor pools the whole run shares, which get records and give back records and bytes.
"""

from __future__ import annotations

import functools
import logging
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from curators.dialogue_plan import DialoguePlan, plan_dialogues
from curators.dialogue_write import DialogueWriter, make_writer
from curators.filters import (FilterContext, MemoryAnswerCheck, NearDuplicateIndex, TokenBudgetFilter, apply_filters,
                              default_filters)
from curators.filters.memory_validity import make_answer_check
from curators.filters.near_duplicate import dhash
from curators.preference import PREFERENCE_VERSION, answer_pool, preference_pair
from curators.sample_build import build_sample, estimate_tokens
from pipelines.clip_bundles import ClipBundle, check_file_name, relative_clip, unpack_clip
from schemas.config import CurateConfig
from schemas.dialogue import CuratedSample
from schemas.media import AnnotatedClip
from schemas.usage import StageUsage, total_usage

log = logging.getLogger(__name__)

PLANS_PER_TASK = 8
"""Plans written and filtered by one call to a writer actor."""
SAMPLES_PER_SPEECH_CALL = 4
MAX_CONSECUTIVE_SPEECH_FAILURES = 5
"""More failed renders than this in a row means a broken TTS set-up, not bad samples: the stage stops."""


def clip_media_hash(clip: AnnotatedClip) -> int | None:
    """dHash of the clip's picture: the image itself, or a video's first sampled frame."""
    path = clip.clip.media_path if clip.clip.kind == "image" else (clip.clip.frame_paths or [None])[0]
    if path is None:
        return None
    try:
        return dhash(path)
    except OSError as exc:  # unreadable picture: the text half of the duplicate test still applies
        log.warning("no perceptual hash for %s: %s", clip.clip.clip_id, exc)
        return None


def curate_plans(plans: list[DialoguePlan], clips: dict[str, AnnotatedClip], cfg: CurateConfig,
                 writer: DialogueWriter, pool: dict[str, list[str]] | None = None, *,
                 media: dict[str, AnnotatedClip] | None = None,
                 usage: list[StageUsage] | None = None) -> list[CuratedSample]:
    """Write, build, filter and pair a batch of plans (no Ray here: the tasks and actors below call it).

    ``media``: the same clips pointed at this process's copies of their files, for the models that look at
    them (a media writer, a model answerer); the samples name ``clips``' files. ``usage`` gets what the
    writer's and the answerer's model requests cost in this call."""
    seen = media or clips
    context = FilterContext(facts={f.fact_id: f for c in clips.values() for f in c.facts}, clips=seen)
    pool = pool if pool is not None else answer_pool(context.facts)
    check = answer_check(cfg, writer)
    filters = default_filters(cfg.tokens, cfg.dialogue.language, check)
    config_hash = cfg.config_hash()
    spent_before = writer.usage() if hasattr(writer, "usage") else None
    out = []
    for written in writer.write_batch(plans, seen):
        curated = build_sample(written, clips, seed=cfg.seed, config_hash=config_hash, decode=cfg.decode,
                               accounting=cfg.tokens)
        curated = apply_filters(curated, filters, context)
        pair = preference_pair(curated.sample.dialogue, context.facts, pool, cfg.seed)
        lineage = curated.sample.lineage
        lineage = replace(lineage, operators={**lineage.operators, "preference": PREFERENCE_VERSION})
        out.append(replace(curated, sample=replace(curated.sample, preference=pair, lineage=lineage)))
    if usage is not None:
        if spent_before is not None:
            usage.append(writer.usage().minus(spent_before))
        if check is not None and check.client is not None:
            usage.append(check.client.usage())
    return out


def answer_check(cfg: CurateConfig, writer: DialogueWriter) -> MemoryAnswerCheck | None:
    """The memory answerer's check (``memory_check``), or None for rules only."""
    check = cfg.memory_check
    cache = writer_cache(cfg)
    return make_answer_check(check, getattr(writer, "complete", None),
                             str(Path(cache).with_name("answerer-cache")) if cache else None)


def deduplicate(samples: list[CuratedSample], media_hashes: dict[str, int]) -> list[CuratedSample]:
    """A near_duplicate verdict on every sample that passed the other filters, first copy kept."""
    index = NearDuplicateIndex()
    out = []
    for s in samples:
        if not s.kept:
            out.append(s)
            continue
        hashes = [media_hashes[m.clip_id] for m in s.sample.dialogue.media if m.clip_id in media_hashes]
        verdict = index.check(s.sample, hashes)
        out.append(replace(s, sample=replace(s.sample, verdicts=[*s.sample.verdicts, verdict])))
    return out


def speak_samples(samples: list[CuratedSample], clips: dict[str, AnnotatedClip], cfg: CurateConfig, speaker,
                  asr, out_dir: str | Path) -> list[CuratedSample]:
    """Speak kept samples into ``out_dir``; their token estimate and budget verdict are redone with the speech
    counted."""
    from curators.speech import render_failed, speak_sample

    budget = TokenBudgetFilter(cfg.tokens)
    out = []
    consecutive_failures = 0
    for s in samples:
        if not s.kept:
            out.append(s)
            continue
        try:
            spoken, seconds = speak_sample(s, speaker, asr, cfg.speech, out_dir, cfg.seed)
            consecutive_failures = 0
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:  # one sample's render, not the run
            consecutive_failures += 1
            if consecutive_failures >= MAX_CONSECUTIVE_SPEECH_FAILURES:
                raise RuntimeError(f"speech failed for {consecutive_failures} samples in a row; last: {exc}") from exc
            out.append(replace(s, sample=replace(s.sample, verdicts=[*s.sample.verdicts, render_failed(exc)])))
            continue
        sample = spoken.sample
        sample = replace(sample, tokens=estimate_tokens(sample.dialogue, clips, cfg.tokens, speech_seconds=seconds),
                         verdicts=[v for v in sample.verdicts if v.filter != budget.name])
        sample = replace(sample, verdicts=[*sample.verdicts, *budget.verdicts(sample, FilterContext())])
        out.append(CuratedSample(sample=sample, files=spoken.files))
    return out


def _clips_for(plans: list[DialoguePlan], clips: dict[str, AnnotatedClip]) -> dict[str, AnnotatedClip]:
    return {cid: clips[cid] for p in plans for cid in p.clip_ids}


def models_see_media(cfg: CurateConfig) -> tuple[bool, bool]:
    """(pictures, sound): whether the writer or the memory answerer is a model that looks at the clips' pictures,
    and whether one of them hears the sound (``input_audio``)."""
    media_writer = cfg.dialogue.writer in ("vlm_endpoint", "local_vlm")
    media_answerer = cfg.memory_check.answerer in ("endpoint", "local_vlm")
    sound = (media_writer and cfg.dialogue.writer_audio == "input_audio") or \
        (media_answerer and cfg.memory_check.audio == "input_audio")
    return media_writer or media_answerer, sound


def media_bundle(annotated: AnnotatedClip, sound: bool) -> ClipBundle:
    """The files a model looks at (a still, a video's sampled frames, with ``sound`` the wav) as bytes: the
    writer actors share no disk with this process. A video's own mp4 stays here."""
    clip = annotated.clip
    names = [*([clip.media_path] if clip.kind == "image" else []), *clip.frame_paths,
             *([clip.audio_path] if sound and clip.audio_path else [])]
    files = {check_file_name(Path(p).name): Path(p).read_bytes() for p in dict.fromkeys(names) if Path(p).is_file()}
    return ClipBundle(clip=relative_clip(annotated).clip, files=files)


@dataclass(frozen=True, slots=True)
class DialogueActors:
    """The run's writer and speech pools (empty when the template writer is used, or speech is off)."""

    writers: list
    speakers: list


@functools.cache
def _actor_classes():
    """The stage's actors, defined once per process (Ray exports each definition)."""
    import ray

    @ray.remote(num_cpus=1)
    class WriterActor:
        """Holds a model-backed writer (local LLM weights, or an endpoint client with its concurrency limit)."""

        def __init__(self, cfg: CurateConfig):
            self.cfg = cfg
            self.writer = make_writer(cfg.dialogue, writer_cache(cfg))

        def curate(self, plans, clips, pool, media=None) -> tuple[list[CuratedSample], list[StageUsage]]:
            """``clips``' paths are the caller's and only named in the samples; models that look at media get
            ``media`` (clip bundles), written here for the call."""
            import shutil
            import tempfile

            usage: list[StageUsage] = []
            if not media:
                return curate_plans(plans, clips, self.cfg, self.writer, pool, usage=usage), usage
            root = tempfile.mkdtemp(prefix="omnicurate-writer-media-")
            try:
                seen = {cid: replace(clips[cid], clip=unpack_clip(bundle, root)) for cid, bundle in media.items()}
                return curate_plans(plans, clips, self.cfg, self.writer, pool, media=seen, usage=usage), usage
            finally:
                shutil.rmtree(root, ignore_errors=True)

    @ray.remote(num_cpus=1)
    class SpeechActor:
        """Holds the TTS voice and the round-trip Whisper model; gives speech back as bytes."""

        def __init__(self, cfg: CurateConfig):
            from curators.speech import RoundTripAsr, make_speaker

            self.cfg = cfg
            self.speaker = make_speaker(cfg.speech.backend)
            self.asr = RoundTripAsr(cfg.asr.model_path, cfg.asr.device, cfg.asr.compute_type)

        def speak(self, samples, clips) -> tuple[list[CuratedSample], dict[str, dict[str, bytes]]]:
            import shutil
            import tempfile

            out_dir = tempfile.mkdtemp(prefix="omnicurate-speech-")
            try:
                spoken = speak_samples(samples, clips, self.cfg, self.speaker, self.asr, out_dir)
                speech = {s.sample.key: {suffix: Path(path).read_bytes() for suffix, path in s.files.items()
                                         if path.startswith(out_dir)} for s in spoken}
            finally:
                shutil.rmtree(out_dir, ignore_errors=True)
            return spoken, speech

    return WriterActor, SpeechActor


def writer_cache(cfg: CurateConfig) -> str | None:
    """The endpoint writer's request cache: under a local work dir; a bucket work dir keeps none by default."""
    return None if "://" in cfg.work_path else str(Path(cfg.work_path) / "writer-cache")


def pool_size(configured: int, resources: dict[str, float], per_gpu: bool) -> int:
    """``configured``, or for 0 one actor per GPU (``per_gpu``) or per four CPUs, at least one."""
    if configured:
        return configured
    if per_gpu and resources.get("GPU", 0) >= 1:
        return int(resources["GPU"])
    return max(1, int(resources.get("CPU", 1)) // 4)


def start_dialogue_actors(cfg: CurateConfig, resources: dict[str, float]) -> DialogueActors:
    """Writer and speech pools sized to the cluster (``dialogue.writer_actors``, ``speech.actors``)."""
    WriterActor, _ = _actor_classes()
    writers, speakers = [], []
    if cfg.dialogue.writer != "template":
        local = cfg.dialogue.writer in ("local_llm", "local_vlm")
        local_gpu = local and resources.get("GPU", 0) >= 1
        count = pool_size(cfg.dialogue.writer_actors, resources, per_gpu=local)
        writers = [WriterActor.options(num_gpus=1 if local_gpu else 0).remote(cfg) for _ in range(count)]
    if cfg.speech.enabled:
        speakers = start_speech_actors(cfg, resources)
    return DialogueActors(writers=writers, speakers=speakers)


def start_speech_actors(cfg: CurateConfig, resources: dict[str, float]) -> list:
    """A speech pool speaking as ``cfg.speech`` says (``speech.actors``, or one per four CPUs)."""
    _, SpeechActor = _actor_classes()
    return [SpeechActor.remote(cfg) for _ in range(pool_size(cfg.speech.actors, resources, per_gpu=False))]


def release_dialogue_actors(actors: DialogueActors) -> None:
    import ray

    for actor in (*actors.writers, *actors.speakers):
        ray.kill(actor)


def run_dialogue_stage(clips: list[AnnotatedClip], cfg: CurateConfig, actors: DialogueActors | None = None, *,
                       scratch: str | Path, dialogues: int | None = None,
                       plans: list[DialoguePlan] | None = None,
                       usage: list[StageUsage] | None = None) -> list[CuratedSample]:
    """Curated samples of one media pool, kept and rejected alike, in plan order (deterministic for a seed).

    ``dialogues`` overrides ``cfg.dialogue.dialogues`` (a partition's share of a corpus-wide count); ``plans``
    replaces the planner (the eval sets plan their own); speech is written under ``scratch``; ``usage`` gets
    the model requests' cost per stage and model.
    """
    import ray

    if plans is None:
        dialogue_cfg = cfg.dialogue if dialogues is None else replace(cfg.dialogue, dialogues=dialogues)
        plans = plan_dialogues(clips, dialogue_cfg, cfg.seed)
    by_id = {c.clip.clip_id: c for c in clips}
    pool = answer_pool({f.fact_id: f for c in clips for f in c.facts})
    media_hashes = {cid: h for cid in sorted({cid for p in plans for cid in p.clip_ids})
                    if (h := clip_media_hash(by_id[cid])) is not None}
    spent: list[StageUsage] = []
    if cfg.dialogue.writer == "template":
        samples = curate_plans(plans, by_id, cfg, make_writer(cfg.dialogue), pool, usage=spent)
    else:
        writers = (actors or start_dialogue_actors(cfg, ray.cluster_resources())).writers
        batches = [plans[i:i + PLANS_PER_TASK] for i in range(0, len(plans), PLANS_PER_TASK)]
        pictures, sound = models_see_media(cfg)
        results = ray.get([writers[i % len(writers)].curate.remote(
            b, _clips_for(b, by_id), pool,
            {cid: media_bundle(c, sound) for cid, c in _clips_for(b, by_id).items()} if pictures else None)
            for i, b in enumerate(batches)])
        samples = [s for batch, _ in results for s in batch]
        spent.extend(u for _, batch_usage in results for u in batch_usage)
    samples = deduplicate(samples, media_hashes)
    if cfg.speech.enabled:
        speakers = (actors or start_dialogue_actors(cfg, ray.cluster_resources())).speakers
        chunks = [samples[i:i + SAMPLES_PER_SPEECH_CALL] for i in range(0, len(samples), SAMPLES_PER_SPEECH_CALL)]
        spoken = ray.get([speakers[i % len(speakers)].speak.remote(
            c, {cid: by_id[cid] for s in c for cid in (m.clip_id for m in s.sample.dialogue.media)})
            for i, c in enumerate(chunks)])
        samples = [_with_speech_files(s, speech, Path(scratch)) for chunk, speech in spoken for s in chunk]
    kept = sum(s.kept for s in samples)
    log.info("dialogue stage: %d plans, %d kept, %d rejected", len(plans), kept, len(samples) - kept)
    if usage is not None:
        usage.extend(total_usage(spent))
    return samples


def _with_speech_files(curated: CuratedSample, speech: dict[str, dict[str, bytes]], scratch: Path) -> CuratedSample:
    """Write a sample's speech bytes under ``scratch/speech/<key>/`` and point its files there."""
    from schemas.dataset_format import check_key, split_member

    spoken = speech.get(curated.sample.key, {})
    if not spoken:
        return curated
    folder = scratch / "speech" / check_key(curated.sample.key)
    folder.mkdir(parents=True, exist_ok=True)
    files = dict(curated.files)
    for suffix, data in spoken.items():
        split_member(f"{curated.sample.key}.{suffix}")  # a known member suffix, never a path
        (folder / suffix).write_bytes(data)
        files[suffix] = str(folder / suffix)
    return CuratedSample(sample=curated.sample, files=files)
