"""The dialogue stage on Ray: plan, write, build and filter samples over batches of plans."""

from __future__ import annotations

import logging

from curators.dialogue_plan import DialoguePlan, plan_dialogues
from curators.dialogue_write import DialogueWriter, make_writer
from curators.filters import FilterContext, apply_filters, default_filters
from curators.sample_build import build_sample
from schemas.config import CurateConfig
from schemas.dialogue import CuratedSample
from schemas.media import AnnotatedClip

log = logging.getLogger(__name__)

PLANS_PER_TASK = 8
"""Plans written and filtered by one Ray task; small enough to spread a demo corpus over two cores."""


def curate_plans(plans: list[DialoguePlan], clips: dict[str, AnnotatedClip], cfg: CurateConfig,
                 writer: DialogueWriter) -> list[CuratedSample]:
    """Write, build and filter a batch of plans (no Ray here: the tasks and actors below call it)."""
    context = FilterContext(facts={f.fact_id: f for c in clips.values() for f in c.facts})
    filters = default_filters(cfg.tokens)
    config_hash = cfg.config_hash()
    out = []
    for written in writer.write_batch(plans, clips):
        curated = build_sample(written, clips, seed=cfg.seed, config_hash=config_hash, decode=cfg.decode,
                               accounting=cfg.tokens)
        out.append(apply_filters(curated, filters, context))
    return out


def _clips_for(plans: list[DialoguePlan], clips: dict[str, AnnotatedClip]) -> dict[str, AnnotatedClip]:
    return {cid: clips[cid] for p in plans for cid in p.clip_ids}


def _remote_curate_batch():
    import ray

    @ray.remote(num_cpus=1)
    def curate_batch(plans: list[DialoguePlan], clips: dict[str, AnnotatedClip], cfg: CurateConfig
                     ) -> list[CuratedSample]:
        return curate_plans(plans, clips, cfg, make_writer(cfg.dialogue))

    return curate_batch


def run_dialogue_stage(clips: list[AnnotatedClip], cfg: CurateConfig) -> list[CuratedSample]:
    """Curated samples, kept and rejected alike, in plan order (deterministic for a seed)."""
    import ray

    from pipelines.ray_runtime import ensure_ray

    ensure_ray(cfg.ray_address, num_cpus=2)
    plans = plan_dialogues(clips, cfg.dialogue, cfg.seed)
    by_id = {c.clip.clip_id: c for c in clips}
    curate_batch = _remote_curate_batch()
    futures = []
    for start in range(0, len(plans), PLANS_PER_TASK):
        batch = plans[start:start + PLANS_PER_TASK]
        futures.append(curate_batch.remote(batch, _clips_for(batch, by_id), cfg))
    samples = [s for batch in ray.get(futures) for s in batch]
    kept = sum(s.kept for s in samples)
    log.info("dialogue stage: %d plans, %d kept, %d rejected", len(plans), kept, len(samples) - kept)
    return samples
