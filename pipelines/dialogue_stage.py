"""The dialogue stage on Ray: plan, write, build, filter, deduplicate and speak samples over batches of plans."""

from __future__ import annotations

import functools
import logging
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from curators.dialogue_plan import DialoguePlan, plan_dialogues
from curators.dialogue_write import DialogueWriter, make_writer
from curators.filters import FilterContext, NearDuplicateIndex, TokenBudgetFilter, apply_filters, default_filters
from curators.filters.near_duplicate import dhash
from curators.preference import PREFERENCE_VERSION, answer_pool, preference_pair
from curators.sample_build import build_sample, estimate_tokens
from schemas.config import CurateConfig
from schemas.dialogue import CuratedSample, Verdict
from schemas.media import AnnotatedClip

log = logging.getLogger(__name__)

PLANS_PER_TASK = 8
"""Plans written and filtered by one Ray task; small enough to spread a demo corpus over two cores."""
SAMPLES_PER_SPEECH_CALL = 4
MAX_CONSECUTIVE_SPEECH_FAILURES = 5
"""More failed renders than this in a row means a broken TTS set-up, not bad samples: the stage stops."""


@dataclass(frozen=True, slots=True)
class CuratedBatch:
    samples: list[CuratedSample]
    media_hashes: dict[str, int]
    """Clip id -> perceptual hash of its image or first frame (clips without one are absent)."""


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
                 writer: DialogueWriter, pool: dict[str, list[str]] | None = None) -> list[CuratedSample]:
    """Write, build, filter and pair a batch of plans (no Ray here: the tasks and actors below call it)."""
    context = FilterContext(facts={f.fact_id: f for c in clips.values() for f in c.facts})
    pool = pool if pool is not None else answer_pool(context.facts)
    answerer = writer.complete if cfg.dialogue.validity_answerer == "model" else None
    filters = default_filters(cfg.tokens, cfg.dialogue.language, answerer)
    config_hash = cfg.config_hash()
    out = []
    for written in writer.write_batch(plans, clips):
        curated = build_sample(written, clips, seed=cfg.seed, config_hash=config_hash, decode=cfg.decode,
                               accounting=cfg.tokens)
        curated = apply_filters(curated, filters, context)
        pair = preference_pair(curated.sample.dialogue, context.facts, pool, cfg.seed)
        lineage = curated.sample.lineage
        lineage = replace(lineage, operators={**lineage.operators, "preference": PREFERENCE_VERSION})
        out.append(replace(curated, sample=replace(curated.sample, preference=pair, lineage=lineage)))
    return out


def curate_batch(plans, clips, cfg, writer, pool) -> CuratedBatch:
    hashes = {}
    for cid in sorted({cid for p in plans for cid in p.clip_ids}):
        h = clip_media_hash(clips[cid])
        if h is not None:
            hashes[cid] = h
    return CuratedBatch(curate_plans(plans, clips, cfg, writer, pool), hashes)


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
                  asr) -> list[CuratedSample]:
    """Speak kept samples; their token estimate and budget verdict are redone with the speech counted."""
    from curators.speech import speak_sample

    budget = TokenBudgetFilter(cfg.tokens)
    out_dir = Path(cfg.work_path) / "speech"
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
            failed = Verdict(filter="speech_wer", passed=False, reason=f"speech rendering failed: {exc}"[:500])
            out.append(replace(s, sample=replace(s.sample, verdicts=[*s.sample.verdicts, failed])))
            continue
        sample = spoken.sample
        sample = replace(sample, tokens=estimate_tokens(sample.dialogue, clips, cfg.tokens, speech_seconds=seconds),
                         verdicts=[v for v in sample.verdicts if v.filter != budget.name])
        sample = replace(sample, verdicts=[*sample.verdicts, *budget.verdicts(sample, FilterContext())])
        out.append(CuratedSample(sample=sample, files=spoken.files))
    return out


def _clips_for(plans: list[DialoguePlan], clips: dict[str, AnnotatedClip]) -> dict[str, AnnotatedClip]:
    return {cid: clips[cid] for p in plans for cid in p.clip_ids}


@functools.cache
def _ray_parts():
    """The stage's remote functions and actors, defined once per process (Ray exports each definition)."""
    import ray

    @ray.remote(num_cpus=1)
    def template_batch(plans, clips, cfg, pool) -> CuratedBatch:
        return curate_batch(plans, clips, cfg, make_writer(cfg.dialogue), pool)

    @ray.remote(num_cpus=1)
    class WriterActor:
        """Holds a model-backed writer (local LLM weights, or an endpoint client with its concurrency limit)."""

        def __init__(self, cfg: CurateConfig):
            self.cfg = cfg
            self.writer = make_writer(cfg.dialogue, str(Path(cfg.work_path) / "writer-cache"))

        def curate(self, plans, clips, pool) -> CuratedBatch:
            return curate_batch(plans, clips, self.cfg, self.writer, pool)

    @ray.remote(num_cpus=1)
    class SpeechActor:
        """Holds the TTS voice and the round-trip Whisper model."""

        def __init__(self, cfg: CurateConfig):
            from curators.speech import RoundTripAsr, make_speaker

            self.cfg = cfg
            self.speaker = make_speaker(cfg.speech.backend)
            self.asr = RoundTripAsr(cfg.asr.model_path, cfg.asr.device, cfg.asr.compute_type)

        def speak(self, samples, clips) -> list[CuratedSample]:
            return speak_samples(samples, clips, self.cfg, self.speaker, self.asr)

    return ray, template_batch, WriterActor, SpeechActor


def _writer_actor_options(ray, cfg: CurateConfig) -> dict:
    if cfg.dialogue.writer == "local_llm" and ray.cluster_resources().get("GPU", 0) >= 1:
        return {"num_gpus": 1}
    return {}


def run_dialogue_stage(clips: list[AnnotatedClip], cfg: CurateConfig) -> list[CuratedSample]:
    """Curated samples, kept and rejected alike, in plan order (deterministic for a seed)."""
    from pipelines.ray_runtime import ensure_ray

    ensure_ray(cfg.ray_address, num_cpus=2)
    ray, template_batch, WriterActor, SpeechActor = _ray_parts()
    plans = plan_dialogues(clips, cfg.dialogue, cfg.seed)
    by_id = {c.clip.clip_id: c for c in clips}
    pool = answer_pool({f.fact_id: f for c in clips for f in c.facts})
    batches = [plans[i:i + PLANS_PER_TASK] for i in range(0, len(plans), PLANS_PER_TASK)]
    if cfg.dialogue.writer == "template" and len(batches) <= 1:
        # one task's worth of template plans costs less here than a worker's start and a round trip
        results = [curate_batch(b, _clips_for(b, by_id), cfg, make_writer(cfg.dialogue), pool) for b in batches]
    elif cfg.dialogue.writer == "template":
        results = ray.get([template_batch.remote(b, _clips_for(b, by_id), cfg, pool) for b in batches])
    else:
        actor = WriterActor.options(**_writer_actor_options(ray, cfg)).remote(cfg)
        results = ray.get([actor.curate.remote(b, _clips_for(b, by_id), pool) for b in batches])
    samples = [s for r in results for s in r.samples]
    media_hashes = {cid: h for r in results for cid, h in r.media_hashes.items()}
    samples = deduplicate(samples, media_hashes)
    if cfg.speech.enabled:
        speaker = SpeechActor.remote(cfg)
        chunks = [samples[i:i + SAMPLES_PER_SPEECH_CALL] for i in range(0, len(samples), SAMPLES_PER_SPEECH_CALL)]
        spoken = ray.get([speaker.speak.remote(c, {cid: by_id[cid] for s in c for cid in
                                                   (m.clip_id for m in s.sample.dialogue.media)}) for c in chunks])
        samples = [s for chunk in spoken for s in chunk]
    kept = sum(s.kept for s in samples)
    log.info("dialogue stage: %d plans, %d kept, %d rejected", len(plans), kept, len(samples) - kept)
    return samples
