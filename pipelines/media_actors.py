"""The media stage's long-lived Ray actors (decoders, ASR and caption models), their CPU reservations and pools.

Clips reach and leave the actors as bytes (``ClipBundle``), never as paths: an actor may sit on another node.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from pipelines.clip_bundles import ClipBundle, pack_clip, unpacked
from schemas.config import AsrConfig, CurateConfig, DecodeConfig, ProbePolicy, VisualConfig
from schemas.media import AnnotatedClip, ClipCaption, MediaAsset, QuarantineRecord, SourceItem, Transcript
from schemas.usage import StageUsage
from schemas.validation import to_json

log = logging.getLogger(__name__)


SPREAD = "SPREAD"
"""Decoders and visual facts go round the nodes (I/O and decoding scale out); Ray's default packs
work onto the driver's node first."""


@dataclass(frozen=True, slots=True)
class Reservations:
    """CPUs the stage reserves per actor and per visual-facts task on a cluster."""

    decoders: int
    decoder: float
    asr: float
    caption: float
    visual: float
    """A visual-facts task: one busy tesseract thread."""


def reservations(cluster_cpus: float, asr_actors: int, captioners: int,
                 smallest_node_cpus: float | None = None) -> Reservations:
    """One decoder per four CPUs (at least one: probing and decord decoding are the lightest of the media work);
    every long-lived actor takes half a CPU. The actors are scaled down until a visual-facts task of half a CPU
    (on a one-CPU cluster, a quarter) still fits beside them all, or a small cluster (one CPU, or many ASR actors
    on two) would wait forever for a visual slot.

    Visual-facts tasks share what the actors leave so that as many run at once as the cluster has CPUs: each
    keeps a core busy, and more than that only time-slices tesseract (measured on 2 cores: three 4-still
    tesseract runs at once cost 0.34 CPU-s each, one or two at once 0.27-0.28). A visual task never takes more
    than fits beside a decoder on the smallest node (``smallest_node_cpus``), or a one-CPU node holding the
    decoder would run none."""
    least = 0.5 * min(1.0, max(cluster_cpus, 0.5) / 2)  # the smallest visual task
    decoders = max(1, int(cluster_cpus) // 4)
    wanted = 0.5 * (decoders + asr_actors + int(captioners))
    scale = min(1.0, (cluster_cpus - least) / wanted)

    def cpus(value: float) -> float:  # Ray counts CPUs to 1e-4: round down so the sum never overshoots
        return math.floor(value * 1e4) / 1e4

    actor = cpus(0.5 * scale)  # each decoder, ASR actor and captioner
    held = (decoders + asr_actors + int(captioners)) * actor
    node = cluster_cpus if smallest_node_cpus is None else smallest_node_cpus
    visual = max(least, cpus(min((cluster_cpus - held) / max(cluster_cpus, 1.0), node - actor)))
    return Reservations(decoders=decoders, decoder=actor, asr=actor, caption=actor, visual=visual)


@dataclass(frozen=True, slots=True)
class SourceDecoded:
    """One source through a decoder: its probe's verdict, then (when it was accepted) its clips or the decode's."""

    probe: MediaAsset | QuarantineRecord
    decoded: list[ClipBundle] | QuarantineRecord | None
    """None when the probe refused the source."""
    probe_s: float
    decode_s: float


# a killed actor process is restarted and its call retried (probing and decoding are deterministic), so the run goes on
@ray.remote(num_cpus=0.5, max_restarts=3, max_task_retries=3)
class DecodeActor:
    """Probes sources and decodes the accepted ones in its one isolated decoder process; a fixed pool of these
    bounds the decoders alive at once."""

    def __init__(self):
        from pipelines.isolation import IsolatedDecoder

        self.decoder = IsolatedDecoder()

    def probe_and_decode(self, items: list[SourceItem], policy: ProbePolicy,
                         cfg: DecodeConfig) -> list[SourceDecoded]:
        """Probe each source (one call takes a few) and decode the accepted ones, both in the isolated decoder
        process, into a private folder of this call; hand their clips back as bytes. A remote source is fetched
        once, for both. The folder holds one call's sources (a decode group: a few) and goes when the call ends:
        one folder a call, not one a source, as creating and removing a folder costs more than writing a still."""
        import shutil
        import tempfile

        work = tempfile.mkdtemp(prefix="omnicurate-decode-")
        try:
            return [self._one(item, policy, cfg, work) for item in items]
        finally:
            shutil.rmtree(work, ignore_errors=True)  # the fetched copies of remote sources live in here too

    def _one(self, item: SourceItem, policy: ProbePolicy, cfg: DecodeConfig, work: str) -> SourceDecoded:
        from curators.probe import source_file

        started = time.perf_counter()
        path = source_file(item.uri, work)
        asset = path if isinstance(path, QuarantineRecord) else \
            self.decoder.probe(path, policy, uri=item.uri, metadata=item.metadata)
        probed = time.perf_counter()
        if isinstance(asset, QuarantineRecord):
            return SourceDecoded(asset, None, probed - started, 0.0)
        result = self.decoder.decode(asset, cfg, work, policy.decode_timeout_s, cache_dir=work)
        if not isinstance(result, QuarantineRecord):
            result = [pack_clip(clip) for clip in result]
        return SourceDecoded(asset, result, probed - started, time.perf_counter() - probed)

    def close(self) -> None:
        self.decoder.close()


# Half a CPU: the actor may outlive one call (keep_actors) and must leave room for other stages' tasks.
@ray.remote(num_cpus=0.5)
class AsrActor:
    """Holds one faster-whisper model for the life of the stage."""

    def __init__(self, cfg: AsrConfig):
        from curators.asr import Transcriber

        self.transcriber = Transcriber(cfg)

    def transcribe(self, bundle: ClipBundle) -> tuple[Transcript, float]:
        started = time.perf_counter()
        with unpacked(bundle) as clip:
            return self.transcriber.transcribe(clip), time.perf_counter() - started


@ray.remote(num_cpus=0.5)
class CaptionActor:
    """Holds the configured captioner (a local VLM is loaded once)."""

    def __init__(self, cfg: VisualConfig):
        from curators.captioner import make_captioner

        self.captioner = make_captioner(cfg)

    def caption(self, bundle: ClipBundle,
                transcript: Transcript | None) -> tuple[tuple[ClipCaption, StageUsage | None], float]:
        """The clip's caption from its frames (and sound) and its transcript, or a refusal saying why, with what
        this call spent (None for a local VLM). Calls run one at a time, so the counter's difference is this call's."""
        from curators.captioner import caption_or_refusal

        started = time.perf_counter()
        spent_before = self.usage()
        with unpacked(bundle) as clip:
            caption = caption_or_refusal(self.captioner, AnnotatedClip(clip=clip, facts=[], transcript=transcript))
        spent = self.usage().minus(spent_before) if spent_before is not None else None
        return (caption, spent), time.perf_counter() - started

    def usage(self) -> StageUsage | None:
        """What this actor's endpoint captioner has spent so far (stage ``captioner``); None for a local VLM."""
        client = getattr(self.captioner, "client", None)
        return client.usage() if client is not None else None


@dataclass(slots=True)
class ActorPool:
    """Long-lived actors and the placement group that holds their CPUs (and GPUs) for as long as they live."""

    actors: list
    group: PlacementGroup


_actor_pools: dict[tuple, ActorPool] = {}
"""Long-lived actors of this Ray job, by role and settings: a run that calls the stage batch by batch starts
its decoder processes and loads its models once, then calls release_media_actors."""
PLACEMENT_WAIT_S = 10.0
"""How long a stage waits for its actors' resources before probing anyway (a cluster still scaling up)."""


def _pool(key: tuple, count: int, bundle: dict[str, float], start) -> list:
    """The pool under ``key``, or ``count`` new actors from ``start(strategy)``, each in its own reserved
    bundle: reserved before the stage's short tasks are queued, so those never take the actors' place
    while the actors' processes start (nor, on a small cluster, for good). Bundles go round the nodes."""
    key = (ray.get_runtime_context().get_job_id(), *key)
    if key not in _actor_pools:
        # settings or the cluster's size changed since the last batch: the old pool of this role goes first
        _release([k for k in _actor_pools if k[:2] == key[:2]])
        group = placement_group([bundle] * count, strategy=SPREAD)
        if not group.wait(PLACEMENT_WAIT_S):
            log.warning("resources for %s actors not yet free after %.0f s; going on", key[1], PLACEMENT_WAIT_S)
        _actor_pools[key] = ActorPool(actors=[start(PlacementGroupSchedulingStrategy(group, i)) for i in range(count)],
                                      group=group)
    return _actor_pools[key].actors


def asr_actor_count(cfg: AsrConfig, resources: dict[str, float]) -> int:
    """``cfg.actors``, or for 0 one actor per four CPUs (per GPU on ``cuda``), at least one."""
    if cfg.actors:
        return cfg.actors
    if cfg.device.startswith("cuda"):
        return max(1, int(resources.get("GPU", 0)))
    return max(1, int(resources.get("CPU", 1)) // 4)


def asr_actors(cfg: AsrConfig, cpus: float = 0.5, count: int = 1) -> list:
    """``count`` ASR actors for these settings (see asr_actor_count); a killed one is restarted and its call
    retried."""
    gpus = 1 if cfg.device.startswith("cuda") else 0
    bundle = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}
    return _pool(("asr", to_json(cfg), cpus, count), count, bundle, lambda strategy: AsrActor.options(
        num_cpus=cpus, num_gpus=gpus, max_restarts=3, max_task_retries=3, scheduling_strategy=strategy).remote(cfg))


def decode_actors(count: int, cpus: float) -> list:
    """``count`` decoder actors, each owning one isolated decoder process, spread over the nodes."""
    return _pool(("decode", count, cpus), count, {"CPU": cpus},
                 lambda strategy: DecodeActor.options(num_cpus=cpus, scheduling_strategy=strategy).remote())


def caption_actor_count(cfg: VisualConfig, resources: dict[str, float]) -> int:
    """``cfg.captioner_actors``, or for 0 one per GPU for a local VLM on a GPU cluster, else one per four CPUs."""
    if cfg.captioner == "none":
        return 0
    if cfg.captioner_actors:
        return cfg.captioner_actors
    if cfg.captioner == "local_vlm" and resources.get("GPU", 0) >= 1:
        return int(resources["GPU"])
    return max(1, int(resources.get("CPU", 1)) // 4)


def caption_actors(cfg: VisualConfig, cpus: float, count: int = 1, gpus: int = 0) -> list:
    """``count`` captioner actors for these settings (none when captioning is off), one GPU each if ``gpus``."""
    if cfg.captioner == "none" or count == 0:
        return []
    bundle = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}
    return _pool(("caption", to_json(cfg), cpus, count), count, bundle, lambda strategy: CaptionActor.options(
        num_cpus=cpus, num_gpus=gpus, scheduling_strategy=strategy).remote(cfg))


def release_media_actors() -> None:
    """Stop every actor the stage keeps and free their reservations: decoders close their child process,
    models are freed."""
    _release(list(_actor_pools))


def _release(keys: list[tuple]) -> None:
    pools = [(key, _actor_pools.pop(key)) for key in keys]
    decoders = [actor for key, pool in pools if key[1] == "decode" for actor in pool.actors]
    # idle decoders stop their child at once; a child stuck behind a failed run exits when its actor dies
    if decoders:
        ray.wait([d.close.remote() for d in decoders], num_returns=len(decoders), timeout=10)
    for _, pool in pools:
        for actor in pool.actors:
            ray.kill(actor)
        remove_placement_group(pool.group)


@dataclass(frozen=True, slots=True)
class MediaActors:
    """The pools one run's media work shares: started by the driver once, handed to every partition's task."""

    decoders: list
    asr: list
    captioner: list
    visual: float
    """CPUs of one visual-facts task."""


def start_media_actors(cfg: CurateConfig, resources: dict[str, float], sound: bool = True) -> MediaActors:
    """Pools sized to the cluster's resources (see reservations); the ASR pool first, as its model load is the
    longest start (none when no source can carry ``sound``). Stop them with release_media_actors."""
    asr_count = asr_actor_count(cfg.asr, resources) if sound else 0
    captioners = caption_actor_count(cfg.visual, resources)
    nodes = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0) > 0]
    cpus = reservations(resources.get("CPU", 2), asr_count, captioners, min(nodes, default=None))
    asr = asr_actors(cfg.asr, cpus.asr, asr_count) if sound else []
    gpu = 1 if cfg.visual.captioner == "local_vlm" and resources.get("GPU", 0) >= 1 else 0
    return MediaActors(decoders=decode_actors(cpus.decoders, cpus.decoder), asr=asr,
                       captioner=caption_actors(cfg.visual, cpus.caption, captioners, gpu),
                       visual=cpus.visual)
