"""The media stage on Ray: probe -> isolated decode -> ASR (actor, model loaded once) + visual facts -> facts."""

from __future__ import annotations

import hashlib
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import ray

from curators.facts import annotate_clip
from curators.sources import drop_local_copy, list_sources
from pipelines.media_actors import (SPREAD, asr_actor_count, asr_actors, caption_actors, decode_actors,
                                    release_media_actors, reservations)
from schemas.config import IMAGE_EXTENSIONS, CurateConfig, ProbePolicy, VisualConfig
from schemas.media import AnnotatedClip, Clip, MediaAsset, QuarantineRecord, SourceItem, Transcript, VisualFacts
from schemas.validation import to_json

ASSETS_IN_FLIGHT_PER_CPU = 2
"""Sources between probe and annotate at once, per cluster CPU (at least 8): the window bounds memory
and scratch space whatever the corpus size, and keeps every CPU fed."""
MAX_CONSECUTIVE_FAILURES = 200
"""This many quarantined sources in a row means the input or the set-up is wrong: stop."""


class MediaStageAborted(RuntimeError):
    """Too many consecutive sources were quarantined."""


@dataclass(slots=True)
class MediaStageResult:
    clips: list[AnnotatedClip] = field(default_factory=list)
    """Annotated clips sorted by source URI, then clip start."""
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    """Refused sources sorted by URI."""
    counters: dict[str, int] = field(default_factory=dict)
    """sources, accepted, quarantined, quarantined_<reason>, clips, clips_<kind>, transcribed,
    asr_segments_rejected, facts, facts_<kind>, seconds, and the busy time of each operator:
    probe_ms, decode_ms, asr_ms, visual_ms (caption_ms, captioned, caption_errors when a captioner is on)."""


@ray.remote(num_cpus=0.5)
def probe_task(item: SourceItem, policy: ProbePolicy, cache_dir: str) -> tuple[MediaAsset | QuarantineRecord, float]:
    from curators.probe import probe_source

    started = time.perf_counter()
    return probe_source(item.uri, policy, metadata=item.metadata, cache_dir=cache_dir), time.perf_counter() - started


@ray.remote(num_cpus=0.5)
def visual_task(clip: Clip, cfg: VisualConfig) -> tuple[VisualFacts, float]:
    from curators.visual_facts import visual_facts

    started = time.perf_counter()
    return visual_facts(clip, cfg), time.perf_counter() - started


def may_carry_sound(item: SourceItem) -> bool:
    """Whether a source could hold an audio stream, judged by its name before probing."""
    return item.uri.rsplit(".", 1)[-1].lower() not in IMAGE_EXTENSIONS


@dataclass(slots=True)
class _AssetState:
    item: SourceItem
    asset: MediaAsset | None = None
    clips: list[Clip] = field(default_factory=list)
    transcripts: dict[str, Transcript] = field(default_factory=dict)
    visuals: dict[str, VisualFacts] = field(default_factory=dict)
    captions: dict[str, str | None] = field(default_factory=dict)
    waiting: int = 0


def _progress(done: int, total: int, counters: Counter, enabled: bool) -> None:
    # a redrawn line on a terminal; in a log, only the final count
    if enabled and (sys.stderr.isatty() or done == total):
        print(f"\rmedia: {done}/{total} sources, {counters['clips']} clips, {counters['quarantined']} quarantined",
              end="" if done < total else "\n", file=sys.stderr, flush=True)


def run_media_stage(cfg: CurateConfig, sources: list[SourceItem] | None = None, progress: bool = True, *,
                    keep_actors: bool = False) -> MediaStageResult:
    """Probe, decode and annotate every source of ``cfg.input`` (or ``sources``) on Ray.

    Decoded media land in ``cfg.work_path/clips/<clip_id>/``. Output order is sorted, so it does not
    depend on which task finished first. ``keep_actors`` leaves the decoders and the ASR and caption models
    running for the next call (a caller feeding the stage batch by batch starts them once, then calls
    release_media_actors); a call that fails releases them, so a retry starts afresh.
    """
    from pipelines.ray_runtime import ensure_ray

    resources = ensure_ray(cfg.ray_address, num_cpus=2)
    in_flight = max(8, int(ASSETS_IN_FLIGHT_PER_CPU * resources.get("CPU", 2)))
    started = time.monotonic()
    items = list_sources(cfg.input) if sources is None else sorted(sources, key=lambda s: s.uri)
    work = Path(cfg.work_path)
    # decoded clips are keyed by content and span; settings that change them get their own folder
    clip_dir = str(work / "clips" / hashlib.sha256(to_json(cfg.decode).encode()).hexdigest()[:12])
    cache_dir = str(work / "fetch")
    counters: Counter = Counter(sources=len(items))
    annotated: list[AnnotatedClip] = []
    quarantine: list[QuarantineRecord] = []
    asr_count = asr_actor_count(cfg.asr, resources)
    cpus = reservations(resources.get("CPU", 2), asr_count, cfg.visual.captioner != "none")
    light = {"num_cpus": cpus.light, "scheduling_strategy": SPREAD}  # probes and visual facts
    # speech recognition is the longest chain: its model starts loading first, while the first sources are
    # probed and decoded (a decoder is not needed before the first probe is back)
    asr_pool = asr_actors(cfg.asr, cpus.asr, asr_count) if any(map(may_carry_sound, items)) else []
    asr_busy = [0] * asr_count
    decoders = decode_actors(cpus.decoders, cpus.decoder)
    decoder_busy = [0] * len(decoders)
    captioner = next(iter(caption_actors(cfg.visual, cpus.caption)), None)
    pending: dict[ray.ObjectRef, tuple[str, int, str]] = {}
    states: dict[int, _AssetState] = {}
    next_item = 0
    finished = 0
    consecutive_failures = 0

    def admit() -> None:
        nonlocal next_item
        while next_item < len(items) and len(states) < in_flight:
            states[next_item] = _AssetState(item=items[next_item])
            probe = probe_task.options(**light).remote(items[next_item], cfg.probe, cache_dir)
            pending[probe] = ("probe", next_item, "")
            next_item += 1

    def close(index: int, record: QuarantineRecord | None) -> None:
        nonlocal finished, consecutive_failures
        state = states.pop(index)
        drop_local_copy(state.item.uri, cache_dir)
        finished += 1
        if record is not None:
            quarantine.append(record)
            counters["quarantined"] += 1
            counters[f"quarantined_{record.reason}"] += 1
            consecutive_failures += 1
            if consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
                raise MediaStageAborted(f"{consecutive_failures} sources in a row were quarantined "
                                        f"(last: {record.uri}: {record.reason}: {record.detail})")
        else:
            consecutive_failures = 0
            counters["accepted"] += 1
            for clip in state.clips:
                result = annotate_clip(clip, state.transcripts.get(clip.clip_id), state.visuals.get(clip.clip_id),
                                       state.asset.metadata, state.asset.sha256, state.captions.get(clip.clip_id))
                annotated.append(result)
                counters["facts"] += len(result.facts)
                counters.update(f"facts_{fact.kind}" for fact in result.facts)
        _progress(finished, len(items), counters, progress)

    try:
        admit()
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            stage, index, clip_id = pending.pop(ref)
            value, seconds = ray.get(ref)
            counters[f"{stage}_ms"] += round(seconds * 1000)
            state = states[index]
            if stage == "probe":
                if isinstance(value, QuarantineRecord):
                    close(index, value)
                else:
                    state.asset = value
                    slot = decoder_busy.index(min(decoder_busy))
                    decoder_busy[slot] += 1
                    pending[decoders[slot].decode.remote(value, cfg.decode, clip_dir, cache_dir,
                                                         cfg.probe.decode_timeout_s)] = ("decode", index, str(slot))
            elif stage == "decode":
                decoder_busy[int(clip_id)] -= 1
                if isinstance(value, QuarantineRecord):
                    close(index, value)
                else:
                    state.clips = value
                    counters["clips"] += len(value)
                    for clip in value:
                        counters[f"clips_{clip.kind}"] += 1
                        if clip.audio_path:
                            # a sound track in a file named as an image
                            asr_pool = asr_pool or asr_actors(cfg.asr, cpus.asr, asr_count)
                            slot = asr_busy.index(min(asr_busy))  # the least busy actor
                            asr_busy[slot] += 1
                            pending[asr_pool[slot].transcribe.remote(clip)] = ("asr", index, f"{slot}:{clip.clip_id}")
                            state.waiting += 1
                        if clip.frame_paths:
                            visual = visual_task.options(**light).remote(clip, cfg.visual)
                            pending[visual] = ("visual", index, clip.clip_id)
                            state.waiting += 1
                        if clip.frame_paths and captioner is not None:
                            pending[captioner.caption.remote(clip)] = ("caption", index, clip.clip_id)
                            state.waiting += 1
                    if state.waiting == 0:
                        close(index, None)
            else:
                if stage == "asr":
                    slot, _, clip_id = clip_id.partition(":")
                    asr_busy[int(slot)] -= 1
                    state.transcripts[clip_id] = value
                    counters["transcribed"] += 1
                    counters["asr_segments_rejected"] += value.rejected_segments
                elif stage == "caption":
                    state.captions[clip_id] = value
                    counters["captioned" if value else "caption_errors"] += 1
                else:
                    state.visuals[clip_id] = value
                state.waiting -= 1
                if state.waiting == 0:
                    close(index, None)
            admit()
    except BaseException:
        release_media_actors()
        raise
    if not keep_actors:
        release_media_actors()
    annotated.sort(key=lambda a: (a.clip.source_uri, a.clip.start_s, a.clip.clip_id))
    quarantine.sort(key=lambda q: (q.uri, q.stage))
    counters["seconds"] = round(time.monotonic() - started)
    return MediaStageResult(clips=annotated, quarantine=quarantine, counters=dict(counters))
