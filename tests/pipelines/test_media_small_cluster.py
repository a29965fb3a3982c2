"""The media stage finishes on a one-CPU Ray cluster (its long-lived actors must not starve the visual tasks)."""

import subprocess
import sys
import textwrap


def test_media_stage_completes_on_one_cpu(tmp_path):
    from curators.corpus_synth import synth_corpus

    synth_corpus(tmp_path / "corpus", seed=1, videos=1, audio=1, images=1)
    script = textwrap.dedent(f"""
        import ray
        from curators.sources import list_sources
        from pipelines.media_actors import start_media_actors
        from pipelines.media_stage import run_media_stage
        from schemas.config import CurateConfig
        ray.init(num_cpus=1, include_dashboard=False)
        cfg = CurateConfig(input={str(tmp_path / 'corpus')!r}, output={str(tmp_path / 'out')!r})
        result = run_media_stage(cfg, list_sources(cfg.input), start_media_actors(cfg, ray.cluster_resources()))
        print("CLIPS", len(result.clips), "QUARANTINED", len(result.quarantine))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False,
                          env={**__import__("os").environ, "RAY_USAGE_STATS_ENABLED": "0"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "CLIPS 3 QUARANTINED 0" in done.stdout


def test_long_lived_actors_always_leave_room_for_a_visual_task():
    from pipelines.media_actors import reservations

    for cluster in (0.5, 1, 1.5, 2, 3, 4, 8, 16, 64):
        for asr in (1, 2, 4, 8):
            for captioner in (False, True):
                r = reservations(cluster, asr, captioner)
                held = r.decoders * r.decoder + asr * r.asr + (r.caption if captioner else 0)
                assert r.decoders >= 1 and r.decoder > 0 and r.visual > 0, (cluster, asr, captioner, r)
                assert held + r.visual <= cluster, (cluster, asr, captioner, r)
    roomy = reservations(2, 1, False)
    assert (roomy.decoders, roomy.decoder, roomy.asr, roomy.visual) == (1, 0.5, 0.5, 0.5), "two CPUs need no scaling"
    big = reservations(16, 1, True)
    assert big.decoders == 4 and int((16 - 0.5 * 6) / big.visual) >= 13, "most of a big cluster is left to visual tasks"


def test_as_many_visual_tasks_run_at_once_as_there_are_cpus():
    from pipelines.media_actors import reservations

    images = reservations(2, 0, False)  # a decoder only: two visual tasks beside it, not three
    assert images.visual == 0.75 and int((2 - images.decoder) / images.visual) == 2
    assert reservations(2, 1, False).visual == 0.5  # the ASR actor holds half a CPU too
    big = reservations(64, 16, False)
    assert int((64 - 16 * 0.5 - 16 * 0.5) / big.visual) == 64
    # two one-CPU nodes: a visual task must still fit beside the decoder on its node
    assert reservations(2, 0, False, smallest_node_cpus=1).visual == 0.5


def test_asr_pool_is_sized_to_the_cluster_unless_set():
    from pipelines.media_actors import asr_actor_count
    from schemas.config import AsrConfig

    assert [asr_actor_count(AsrConfig(), {"CPU": c}) for c in (1, 2, 4, 7, 8, 64)] == [1, 1, 1, 1, 2, 16]
    assert asr_actor_count(AsrConfig(device="cuda"), {"CPU": 64, "GPU": 8}) == 8
    assert asr_actor_count(AsrConfig(device="cuda"), {"CPU": 4}) == 1
    assert asr_actor_count(AsrConfig(actors=3), {"CPU": 64}) == 3


def test_captioner_writer_and_speech_pools_are_sized_to_the_cluster_unless_set():
    from pipelines.dialogue_stage import pool_size
    from pipelines.media_actors import caption_actor_count
    from schemas.config import VisualConfig

    endpoint = VisualConfig(captioner="endpoint", captioner_model="m", captioner_url="http://127.0.0.1:1")
    assert caption_actor_count(VisualConfig(), {"CPU": 64}) == 0
    assert [caption_actor_count(endpoint, {"CPU": c}) for c in (2, 8, 64)] == [1, 2, 16]
    local = VisualConfig(captioner="local_vlm", captioner_model="/models/vlm")
    assert caption_actor_count(local, {"CPU": 64, "GPU": 4}) == 4
    assert caption_actor_count(VisualConfig(captioner="local_vlm", captioner_model="m", captioner_actors=3),
                               {"CPU": 64, "GPU": 4}) == 3
    assert [pool_size(0, {"CPU": c}, per_gpu=False) for c in (1, 8, 64)] == [1, 2, 16]
    assert pool_size(0, {"CPU": 64, "GPU": 8}, per_gpu=True) == 8 and pool_size(5, {"CPU": 1}, per_gpu=True) == 5
