"""The media stage on Ray: probe + isolated decode (decoder actors) -> ASR (actor, model loaded once) + visual
facts -> facts.

Decoded clips travel between the tasks and actors as bytes (ClipBundle), so each may run on any node.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import ray

from curators.facts import annotate_clip
from curators.visual_facts import frame_groups
from pipelines.clip_bundles import ClipBundle, narrowed
from pipelines.media_actors import SPREAD, MediaActors
from schemas.config import IMAGE_EXTENSIONS, CurateConfig, VisualConfig
from schemas.media import AnnotatedClip, ClipCaption, MediaAsset, QuarantineRecord, SourceItem, Transcript, VisualFacts
from schemas.usage import StageUsage, total_usage

SOUND_WEIGHT = 4
"""What a source that may carry sound (audio, video) weighs in a decode group and in the window; a still weighs
one."""
WEIGHT_IN_FLIGHT_PER_CPU = 8
"""Weight between probe and annotate at once, per cluster CPU (at least ``MIN_WEIGHT_IN_FLIGHT``): the window
bounds memory and scratch space whatever the corpus size, and keeps every CPU fed (a batch bounds it too)."""
MIN_WEIGHT_IN_FLIGHT = 64
"""Four decode groups: while one group's stills are read, the next is decoded; sixteen videos."""
DECODE_GROUP_WEIGHT = 16
"""What one decoder call probes and decodes: sixteen stills, or four sources that may carry sound, or a mix
(fewer only for a batch's last sources). Probing in the decoder's call, not in a task of its own, fetches a remote
source once and saves a Ray call per group: a probe is short (a header read, one ffprobe). Measured on 2 cores:
eight stills a call (and a tesseract run) cost the flow 0.68x the CPU of four on 2,000 images; eight videos a call
cost it 1.28x of four on 200 videos, once, where the same kernels cost 1.13x (the box slower), so videos stay at
four; sixteen stills a call, three alternating pairs of flows on 2,000 images: 99-108 CPU-s against 110-119 for
eight."""
VISUAL_FRAMES_PER_TASK = 16
"""Frames one visual-facts task reads: the stills of a decode group share one task and one tesseract run (an
image costs 0.125 Ray calls, and a sixteenth of tesseract's start: measured on synth stills, 51 ms of OCR a still
in runs of 4, 43 in runs of 8, 37 in runs of 16), two video clips of eight frames share one; a clip with more
frames has one of its own."""
MAX_CONSECUTIVE_FAILURES = 200
"""This many quarantined sources in a row means the input or the set-up is wrong: stop."""


class MediaStageAborted(RuntimeError):
    """Too many consecutive sources were quarantined."""


@dataclass(slots=True)
class MediaStageResult:
    clips: list[AnnotatedClip] = field(default_factory=list)
    """Annotated clips sorted by source URI, then clip start; their files are named, not located."""
    files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    """Clip id -> the bytes of each file its record names."""
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    """Refused sources sorted by URI."""
    usage: dict[str, list[StageUsage]] = field(default_factory=dict)
    """Source URI -> what its clips' captions spent (stage ``captioner``), for sources an endpoint captioned."""
    counters: dict[str, int] = field(default_factory=dict)
    """sources, accepted, quarantined, quarantined_<reason>, clips, clips_<kind>, transcribed,
    asr_segments_rejected, facts, facts_<kind>, seconds, and the busy time of each operator:
    probe_ms, decode_ms, asr_ms, visual_ms (caption_ms, captioned, caption_refused when a captioner is on)."""


@ray.remote(num_cpus=0.5)
def visual_task(bundles: list[ClipBundle], cfg: VisualConfig) -> list[tuple[VisualFacts, float]]:
    """Visual facts of a few clips in one task and one tesseract run (see ``visual_groups``), with each clip's
    share of the seconds they took. The frames are read from the bundles' bytes, never written to this node's
    disk."""
    from curators.visual_facts import visual_facts_many

    started = time.perf_counter()
    facts = visual_facts_many([bundle.clip for bundle in bundles], cfg, files=[bundle.files for bundle in bundles])
    share = (time.perf_counter() - started) / max(1, len(bundles))
    return [(value, share) for value in facts]


def visual_groups(framed: list[tuple[int, ClipBundle]],
                  frames_per_task: int = VISUAL_FRAMES_PER_TASK) -> list[list[tuple[int, ClipBundle]]]:
    """Clips (with their source's index) in the order given, cut into visual tasks of at most
    ``frames_per_task`` frames; a clip with more frames has a task of its own."""
    counts = [len(bundle.clip.frame_paths) for _, bundle in framed]
    return [[framed[i] for i in group] for group in frame_groups(counts, frames_per_task)]


def may_carry_sound(item: SourceItem) -> bool:
    """Whether a source could hold an audio stream, judged by its name before probing."""
    return item.uri.rsplit(".", 1)[-1].lower() not in IMAGE_EXTENSIONS


def source_weight(item: SourceItem) -> int:
    """A source's share of a decode group and of the window: one for a still, ``SOUND_WEIGHT`` for the rest."""
    return SOUND_WEIGHT if may_carry_sound(item) else 1


def weighted_end(items: list[SourceItem], first: int, capacity: int) -> int:
    """Where a run of ``items`` from ``items[first]`` ends: as many sources as ``capacity`` holds (each weighs
    ``source_weight``), at least one."""
    end, weight = first, 0
    while end < len(items):
        weight += source_weight(items[end])
        if end > first and weight > capacity:
            break
        end += 1
    return end


def decode_group_end(items: list[SourceItem], first: int) -> int:
    """Where the decode group that starts at ``items[first]`` ends: as many sources as ``DECODE_GROUP_WEIGHT``
    holds, at least one."""
    return weighted_end(items, first, DECODE_GROUP_WEIGHT)


@dataclass(slots=True)
class _AssetState:
    item: SourceItem
    asset: MediaAsset | None = None
    clips: list[ClipBundle] = field(default_factory=list)
    transcripts: dict[str, Transcript] = field(default_factory=dict)
    visuals: dict[str, VisualFacts] = field(default_factory=dict)
    captions: dict[str, ClipCaption] = field(default_factory=dict)
    caption_inputs: dict[str, ray.ObjectRef] = field(default_factory=dict)
    """Clip id -> the bundle its captioner gets once the transcript is in (the caption reads it)."""
    waiting: int = 0


def _progress(done: int, total: int, counters: Counter, enabled: bool) -> None:
    # a redrawn line on a terminal; in a log, only the final count
    if enabled and (sys.stderr.isatty() or done == total):
        print(f"\rmedia: {done}/{total} sources, {counters['clips']} clips, {counters['quarantined']} quarantined",
              end="" if done < total else "\n", file=sys.stderr, flush=True)


def run_media_stage(cfg: CurateConfig, sources: list[SourceItem], actors: MediaActors,
                    progress: bool = False) -> MediaStageResult:
    """Probe, decode and annotate ``sources`` on Ray with the run's shared ``actors``.

    The result holds the clips' bytes, not paths. Output order is sorted, so it does not depend on which
    task finished first.
    """
    resources = ray.cluster_resources()
    window = max(MIN_WEIGHT_IN_FLIGHT, int(WEIGHT_IN_FLIGHT_PER_CPU * resources.get("CPU", 2)))
    started = time.monotonic()
    items = sorted(sources, key=lambda s: s.uri)
    counters: Counter = Counter(sources=len(items))
    annotated: list[AnnotatedClip] = []
    files: dict[str, dict[str, bytes]] = {}
    quarantine: list[QuarantineRecord] = []
    usage: dict[str, list[StageUsage]] = {}
    visual = {"num_cpus": actors.visual, "scheduling_strategy": SPREAD}
    asr_pool = actors.asr
    asr_busy = [0] * len(asr_pool)
    decoders = actors.decoders
    decoder_busy = [0] * len(decoders)
    captioners = actors.captioner
    captions_sent = 0
    pending: dict[ray.ObjectRef, tuple[str, int | tuple[int, ...], str | tuple[str, ...]]] = {}
    """What each call in flight is for: (stage, the source's index, or the group's for decode and visual facts, and
    the clip id, or the group's clip ids for visual facts; for ASR the actor's slot too, for decode its slot
    alone)."""
    states: dict[int, _AssetState] = {}
    next_item = 0
    finished = 0
    consecutive_failures = 0

    def admit() -> None:
        nonlocal next_item
        # whole groups (freed weight waits for a group's worth) unless the window is empty; each group goes to the
        # least busy decoder, which probes it and decodes what it accepts
        while next_item < len(items):
            first, end = next_item, decode_group_end(items, next_item)
            in_flight = sum(source_weight(state.item) for state in states.values())
            if states and sum(map(source_weight, items[first:end])) > window - in_flight:
                return
            next_item = end
            for index in range(first, next_item):
                states[index] = _AssetState(item=items[index])
            slot = decoder_busy.index(min(decoder_busy))
            decoder_busy[slot] += 1
            call = decoders[slot].probe_and_decode.remote(items[first:next_item], cfg.probe, cfg.decode)
            pending[call] = ("decode", tuple(range(first, next_item)), str(slot))

    def close(index: int, record: QuarantineRecord | None) -> None:
        nonlocal finished, consecutive_failures
        state = states.pop(index)
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
            for bundle in state.clips:
                clip_id = bundle.clip.clip_id
                result = annotate_clip(bundle.clip, state.transcripts.get(clip_id), state.visuals.get(clip_id),
                                       state.asset.metadata, state.asset.sha256, state.captions.get(clip_id))
                annotated.append(result)
                files[clip_id] = bundle.files
                counters["facts"] += len(result.facts)
                counters.update(f"facts_{fact.kind}" for fact in result.facts)
        _progress(finished, len(items), counters, progress)

    def send_caption(index: int, clip_id: str, bundle, transcript: Transcript | None) -> None:
        nonlocal captions_sent
        captioner = captioners[captions_sent % len(captioners)]
        captions_sent += 1
        pending[captioner.caption.remote(bundle, transcript)] = ("caption", index, clip_id)

    def one_done(index: int) -> None:
        state = states[index]
        state.waiting -= 1
        if state.waiting == 0:
            close(index, None)

    def decoded(index: int, value: list[ClipBundle] | QuarantineRecord, framed: list[tuple[int, ClipBundle]]) -> None:
        """A source's clips are in: send their audio to ASR and their frames to ``framed`` (visual facts)."""
        state = states[index]
        if isinstance(value, QuarantineRecord):
            close(index, value)
            return
        state.clips = value
        counters["clips"] += len(value)
        for bundle in value:
            clip = bundle.clip
            counters[f"clips_{clip.kind}"] += 1
            if clip.audio_path and not asr_pool:
                counters["untranscribed"] += 1  # a sound track in a corpus named as images only
            elif clip.audio_path:
                slot = asr_busy.index(min(asr_busy))  # the least busy actor
                asr_busy[slot] += 1
                pending[asr_pool[slot].transcribe.remote(narrowed(bundle, "audio"))] = (
                    "asr", index, f"{slot}:{clip.clip_id}")
                state.waiting += 1
            if clip.frame_paths:
                frames = narrowed(bundle, "frames")  # a captioner gets its own copy: frames are small
                framed.append((index, frames))
                state.waiting += 1
                if captioners:
                    caption_input = narrowed(bundle, "frames", "audio") if cfg.visual.captioner_audio == \
                        "input_audio" else frames
                    if clip.audio_path and asr_pool:  # captioned once its transcript is in
                        state.caption_inputs[clip.clip_id] = caption_input
                    else:
                        send_caption(index, clip.clip_id, caption_input, None)
                    state.waiting += 1
        if state.waiting == 0:
            close(index, None)

    admit()
    while pending:
        [ref], _ = ray.wait(list(pending), num_returns=1)
        stage, index, clip_id = pending.pop(ref)
        if stage == "decode":  # a group of sources, probed and the accepted ones decoded
            decoder_busy[int(clip_id)] -= 1
            framed: list[tuple[int, ClipBundle]] = []
            for source, done in zip(index, ray.get(ref)):
                counters["probe_ms"] += round(done.probe_s * 1000)
                if isinstance(done.probe, QuarantineRecord):
                    close(source, done.probe)
                    continue
                states[source].asset = done.probe
                counters["decode_ms"] += round(done.decode_s * 1000)
                decoded(source, done.decoded, framed)
            for group in visual_groups(framed):
                call = visual_task.options(**visual).remote([bundle for _, bundle in group], cfg.visual)
                pending[call] = ("visual", tuple(i for i, _ in group), tuple(b.clip.clip_id for _, b in group))
            admit()
            continue
        if stage == "visual":
            for source, clip, (value, seconds) in zip(index, clip_id, ray.get(ref)):
                counters["visual_ms"] += round(seconds * 1000)
                states[source].visuals[clip] = value
                one_done(source)
            admit()
            continue
        value, seconds = ray.get(ref)
        counters[f"{stage}_ms"] += round(seconds * 1000)
        state = states[index]
        if stage == "asr":
            slot, _, clip_id = clip_id.partition(":")
            asr_busy[int(slot)] -= 1
            state.transcripts[clip_id] = value
            counters["transcribed"] += 1
            counters["asr_segments_rejected"] += value.rejected_segments
            if clip_id in state.caption_inputs:
                send_caption(index, clip_id, state.caption_inputs.pop(clip_id), value)
        elif stage == "caption":
            caption, spent = value
            state.captions[clip_id] = caption
            if spent is not None:
                usage[state.item.uri] = total_usage([*usage.get(state.item.uri, []), spent])
            counters["caption_refused" if caption.refused else "captioned"] += 1
        one_done(index)
        admit()
    annotated.sort(key=lambda a: (a.clip.source_uri, a.clip.start_s, a.clip.clip_id))
    quarantine.sort(key=lambda q: (q.uri, q.stage))
    counters["seconds"] = round(time.monotonic() - started)
    return MediaStageResult(clips=annotated, files=files, quarantine=quarantine, usage=usage, counters=dict(counters))
