"""The media stage finishes on a one-CPU Ray cluster (its long-lived actors must not starve the probes)."""

import subprocess
import sys
import textwrap


def test_media_stage_completes_on_one_cpu(tmp_path):
    from curators.corpus_synth import synth_corpus

    synth_corpus(tmp_path / "corpus", seed=1, videos=1, audio=1, images=1)
    script = textwrap.dedent(f"""
        import ray
        from pipelines.media_stage import run_media_stage
        from schemas.config import CurateConfig
        ray.init(num_cpus=1, include_dashboard=False)
        result = run_media_stage(CurateConfig(input={str(tmp_path / 'corpus')!r}, output={str(tmp_path / 'out')!r}),
                                 progress=False)
        print("CLIPS", len(result.clips), "QUARANTINED", len(result.quarantine))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False,
                          env={**__import__("os").environ, "RAY_USAGE_STATS_ENABLED": "0"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "CLIPS 3 QUARANTINED 0" in done.stdout
