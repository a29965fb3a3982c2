"""Which engine drives a partition's media work: our scheduling loop (run_media_stage) or Ray Data's streaming
executor (map / flat_map over actor pools with concurrency=(min, max)), on the same corpus and cluster.

Both do the same work with the same curators: probe, isolated decode (clips as bytes), ASR in a pool of
actors holding the model, visual facts, facts. Ray Data's side is built as NeMo Curator and Data-Juicer build
theirs: a dataset of source rows, function stages as tasks, model stages as class UDFs in actor pools. Each
engine runs once untimed (model loads, worker start-up), then ``--rounds`` timed rounds alternating; the
best round of each counts. Printed last: Ray Data wall time / ours (above 1: our loop is faster).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class DecodeUdf:
    """An isolated decoder process per actor; a source row in, its clips' rows (record + bytes) out."""

    def __init__(self, cfg):
        from pipelines.isolation import IsolatedDecoder

        self.cfg = cfg
        self.decoder = IsolatedDecoder()

    def __call__(self, row: dict) -> list[dict]:
        import shutil

        from pipelines.clip_bundles import pack_clip
        from schemas import from_json, to_json
        from schemas.media import MediaAsset, QuarantineRecord

        if row["asset"] is None:
            return [row]
        work = tempfile.mkdtemp(prefix="bench-decode-")
        try:
            result = self.decoder.decode(from_json(MediaAsset, row["asset"]), self.cfg.decode, work,
                                         self.cfg.probe.decode_timeout_s, cache_dir=work)
            if isinstance(result, QuarantineRecord):
                return [{**row, "asset": None, "quarantine": to_json(result)}]
            return [{**row, "clip": to_json(b.clip), "files": b.files} for b in map(pack_clip, result)]
        finally:
            shutil.rmtree(work, ignore_errors=True)


class AsrUdf:
    """One faster-whisper model per actor, as the media stage's ASR pool holds it."""

    def __init__(self, cfg):
        from curators.asr import Transcriber

        self.transcriber = Transcriber(cfg.asr)

    def __call__(self, row: dict) -> dict:
        from pipelines.clip_bundles import ClipBundle, unpacked
        from schemas import from_json, to_json
        from schemas.media import Clip

        if not row.get("clip"):
            return {**row, "transcript": None}
        clip = from_json(Clip, row["clip"])
        if not clip.audio_path:
            return {**row, "transcript": None}
        with unpacked(ClipBundle(clip=clip, files=row["files"])) as local:
            return {**row, "transcript": to_json(self.transcriber.transcribe(local))}


def ray_data_media(cfg, sources, asr_actors: int, decoders: int) -> int:
    """The media stage as a Ray Data pipeline; returns the number of annotated clips."""
    import ray

    def probe(row: dict) -> dict:
        from curators.probe import probe_source
        from schemas import to_json
        from schemas.media import QuarantineRecord

        asset = probe_source(row["uri"], cfg.probe)
        if isinstance(asset, QuarantineRecord):
            return {**row, "asset": None, "quarantine": to_json(asset)}
        return {**row, "asset": to_json(asset), "quarantine": None}

    def facts(row: dict) -> dict:
        from curators.facts import annotate_clip
        from curators.visual_facts import visual_facts
        from pipelines.clip_bundles import ClipBundle, unpacked
        from schemas import from_json, to_json
        from schemas.media import Clip, MediaAsset, Transcript

        if not row.get("clip"):
            return {"uri": row["uri"], "annotated": None}
        clip = from_json(Clip, row["clip"])
        visual = None
        if clip.frame_paths:
            with unpacked(ClipBundle(clip=clip, files=row["files"])) as local:
                visual = visual_facts(local, cfg.visual)
        transcript = from_json(Transcript, row["transcript"]) if row["transcript"] else None
        asset = from_json(MediaAsset, row["asset"])
        return {"uri": row["uri"], "annotated": to_json(annotate_clip(clip, transcript, visual, asset.metadata,
                                                                      asset.sha256))}

    ds = ray.data.from_items([{"uri": s.uri} for s in sources], override_num_blocks=len(sources))
    ds = ds.map(probe, num_cpus=0.5)
    pool = ray.data.ActorPoolStrategy
    ds = ds.flat_map(DecodeUdf, fn_constructor_args=(cfg,), compute=pool(min_size=1, max_size=decoders), num_cpus=0.5)
    ds = ds.map(AsrUdf, fn_constructor_args=(cfg,), compute=pool(min_size=1, max_size=asr_actors), num_cpus=0.5)
    ds = ds.map(facts, num_cpus=0.5)
    return sum(1 for row in ds.iter_rows() if row["annotated"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--audio", type=int, default=3)
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import ray

    from curators.corpus_synth import synth_corpus
    from curators.sources import list_sources
    from pipelines.media_actors import release_media_actors, start_media_actors
    from pipelines.media_stage import run_media_stage
    from pipelines.ray_runtime import ensure_ray
    from schemas.config import CurateConfig

    root = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    synth_corpus(root / "corpus", seed=11, videos=args.videos, audio=args.audio, images=args.images)
    cfg = CurateConfig(input=str(root / "corpus"), output=str(root / "out"))
    sources = list_sources(cfg.input)
    resources = ensure_ray(num_cpus=2)
    ray.data.DataContext.get_current().enable_progress_bars = False
    actors = start_media_actors(cfg, resources)

    def ours() -> int:
        return len(run_media_stage(cfg, sources, actors).clips)

    def ray_data() -> int:
        return ray_data_media(cfg, sources, len(actors.asr), len(actors.decoders))

    best = {"ours": float("inf"), "ray_data": float("inf")}
    clips = {}
    try:
        for rnd in range(args.rounds + 1):
            for name, run in (("ours", ours), ("ray_data", ray_data)):
                started = time.perf_counter()
                clips[name] = run()
                seconds = time.perf_counter() - started
                label = "warm-up" if rnd == 0 else f"round {rnd}"
                print(f"{label:8s} {name:9s} {seconds:6.2f} s  {clips[name]} clips", flush=True)
                if rnd:
                    best[name] = min(best[name], seconds)
    finally:
        release_media_actors()
    assert clips["ours"] == clips["ray_data"], clips
    print(f"sources {len(sources)}  clips {clips['ours']}  cluster CPUs {resources.get('CPU')}")
    print(f"ours     {best['ours']:.2f} s  ({len(sources) / best['ours']:.2f} sources/s)")
    print(f"ray data {best['ray_data']:.2f} s  ({len(sources) / best['ray_data']:.2f} sources/s)")
    print(f"ray data / ours (wall time, best round): {best['ray_data'] / best['ours']:.2f}x")


if __name__ == "__main__":
    main()
