"""The media stage on a local Ray, and the isolated decoder's time budget and crash handling."""

import os
from pathlib import Path

import pytest
from media_fixtures import card_image, counter_video, subtitles_only_mkv, tone, truncated_copy, unknown_codec_wav

from curators.corpus_synth import synth_corpus
from curators.probe import probe_source
from pipelines import media_actors
from pipelines.isolation import IsolatedCallError, IsolatedDecoder, decode_isolated
from pipelines.media_stage import run_media_stage
from schemas.config import AsrConfig, CurateConfig, DecodeConfig, ProbePolicy


def media_of(cfg: CurateConfig, sources=None, sound: bool = True):
    """The stage over ``sources`` (default: the input) with pools started for the call and released after."""
    import ray

    from curators.sources import list_sources

    actors = media_actors.start_media_actors(cfg, ray.cluster_resources(), sound=sound)
    try:
        return run_media_stage(cfg, list_sources(cfg.input) if sources is None else sources, actors)
    finally:
        media_actors.release_media_actors()


def test_media_stage_annotates_good_files_and_quarantines_bad_ones(tmp_path: Path, ray_local):
    corpus = tmp_path / "corpus"
    facts = {row["file"]: row for row in synth_corpus(corpus, seed=3, videos=1, audio=1, images=1)}
    (corpus / "empty.mp4").write_bytes(b"")
    truncated_copy(corpus / "video_00.mp4", corpus / "cut.mp4", keep=0.5)
    (corpus / "text.mp4").write_text("not a video")
    (corpus / "notes.txt").write_text("a stray file")
    subtitles_only_mkv(corpus / "subs.mkv")
    unknown_codec_wav(corpus / "odd.wav")
    counter_video(corpus / "silent.mp4", seconds=1.0, audio=False)
    tone(corpus / "surround.m4a", seconds=1.0, channels=6, rate=48000, extra=("-c:a", "aac"))
    cfg = CurateConfig(input=str(corpus), output=str(tmp_path / "out"),
                       decode=DecodeConfig(frames_per_clip=4, clip_seconds=3.0))
    result = media_of(cfg)
    assert media_actors._actor_pools == {}, "decoders and the ASR actor are released"
    for annotated in result.clips:  # bytes, not paths: the clip may have been decoded on another node
        clip = annotated.clip
        named = [clip.media_path, *clip.frame_paths, *([clip.audio_path] if clip.audio_path else [])]
        assert all("/" not in name for name in named)
        assert set(named) == set(result.files[clip.clip_id]) and all(result.files[clip.clip_id].values())

    assert {(Path(q.uri).name, q.reason) for q in result.quarantine} == {
        ("empty.mp4", "empty"), ("cut.mp4", "truncated"), ("text.mp4", "not_media"),
        ("notes.txt", "unsupported_extension"), ("subs.mkv", "no_streams"), ("odd.wav", "unsupported_codec")}
    keys = [(a.clip.source_uri, a.clip.start_s) for a in result.clips]
    assert keys == sorted(keys)
    by_file: dict[str, list] = {}
    for annotated in result.clips:
        by_file.setdefault(Path(annotated.clip.source_uri).name, []).append(annotated)
    assert set(by_file) == set(facts) | {"silent.mp4", "surround.m4a"}
    [silent] = by_file["silent.mp4"]
    assert silent.transcript is None and silent.visual is not None
    [surround] = by_file["surround.m4a"]
    assert surround.transcript is not None and surround.visual is None
    video = by_file["video_00.mp4"]
    assert len(video) == 2 and video[0].clip.end_s == video[1].clip.start_s  # 3 s windows over a 3-6 s video
    truth = facts["video_00.mp4"]
    values = {(f.kind, f.value) for a in video for f in a.facts}
    assert ("dominant_color", truth["background"]) in values
    assert ("on_screen_text", truth["on_screen_text"]) in values
    spoken = " ".join(a.transcript.text for a in video).lower()
    assert truth["shape"] in spoken
    image_values = {(f.kind, f.value) for f in by_file["image_00.jpg"][0].facts}
    assert ("on_screen_text", facts["image_00.jpg"]["on_screen_text"]) in image_values
    assert ("dominant_color", facts["image_00.jpg"]["background"]) in image_values
    audio = by_file[next(n for n in facts if n.startswith("speech"))]
    assert all(a.visual is None for a in audio) and any(f.kind == "spoken_text" for a in audio for f in a.facts)
    c = result.counters
    assert (c["sources"], c["accepted"], c["quarantined"], c["clips"]) == (11, 5, 6, len(result.clips))
    assert c["quarantined_truncated"] == 1 and c["transcribed"] == len(video) + len(audio) + 1


@pytest.fixture
def probed_video(tmp_path: Path):
    path = counter_video(tmp_path / "v.mp4", seconds=1.0)
    return path, probe_source(str(path), ProbePolicy())


def test_a_hanging_decode_is_killed_at_its_budget_and_the_decoder_recovers(tmp_path: Path, probed_video):
    path, asset = probed_video
    good = counter_video(tmp_path / "good.mp4", seconds=1.0)
    good_asset = probe_source(str(good), ProbePolicy())
    path.unlink()
    os.mkfifo(path)  # opening a pipe nobody writes to blocks the decoder forever
    decoder = IsolatedDecoder()
    try:
        first = decoder.decode(good_asset, DecodeConfig(frames_per_clip=2), str(tmp_path / "w"), 60.0)
        child = decoder._process.pid
        second = decoder.decode(good_asset, DecodeConfig(frames_per_clip=3), str(tmp_path / "w"), 60.0)
        assert decoder._process.pid == child, "one child serves many requests"
        assert (len(first[0].frame_paths), len(second[0].frame_paths)) == (2, 3)
        record = decoder.decode(asset, DecodeConfig(), str(tmp_path / "w"), budget_s=3.0)
        assert (record.reason, record.stage, record.uri) == ("timeout", "decode", asset.uri)
        again = decoder.decode(good_asset, DecodeConfig(frames_per_clip=2), str(tmp_path / "w"), 60.0)
        assert decoder._process.pid != child and len(again) == 1
    finally:
        decoder.close()


def test_a_crashing_decoder_is_quarantined_and_a_buggy_one_raises(tmp_path: Path, probed_video):
    _, asset = probed_video
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "bad_decoders.py").write_text(
        "import os\n"
        "def abort(asset, cfg, work_dir, cache_dir):\n    os.abort()\n"
        "def typo(asset, cfg, work_dir, cache_dir):\n    return asset.no_such_field\n")
    record = decode_isolated(asset, DecodeConfig(), str(tmp_path / "w"), 30.0, decoder="bad_decoders:abort",
                             extra_pythonpath=(str(plugins),))
    assert (record.reason, record.detail) == ("crashed", "decoder process died of SIGABRT")
    with pytest.raises(IsolatedCallError, match="no_such_field"):
        decode_isolated(asset, DecodeConfig(), str(tmp_path / "w"), 30.0, decoder="bad_decoders:typo",
                        extra_pythonpath=(str(plugins),))
    clips = decode_isolated(asset, DecodeConfig(frames_per_clip=2), str(tmp_path / "w"), 60.0)
    assert len(clips) == 1 and len(clips[0].frame_paths) == 2


def test_a_probe_runs_in_the_isolated_child_where_a_crash_or_hang_costs_one_file(tmp_path: Path):
    """The decoder's child probes too: a prober that aborts or hangs is a probe quarantine row (crashed,
    timeout), not a dead actor, and the next probe in a fresh child gives what probing in-process gives."""
    image = card_image(tmp_path / "card.png")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "bad_probers.py").write_text(
        "import os, time\n"
        "def abort(path, policy, uri, metadata):\n    os.abort()\n"
        "def hang(path, policy, uri, metadata):\n    time.sleep(600)\n")
    policy = ProbePolicy(probe_timeout_s=0.5)
    for prober, reason, detail in [("bad_probers:abort", "crashed", "prober process died of SIGABRT"),
                                   ("bad_probers:hang", "timeout", "probe ran past its budget of 1.0s and was killed")]:
        isolated = IsolatedDecoder(extra_pythonpath=(str(plugins),), prober=prober)
        try:
            record = isolated.probe(image, policy, uri="s3://b/card.png", metadata={"k": "v"})
        finally:
            isolated.close()
        assert (record.reason, record.detail, record.stage, record.uri) == (reason, detail, "probe", "s3://b/card.png")
        assert record.size_bytes == image.stat().st_size
    isolated = IsolatedDecoder()
    try:
        asset = isolated.probe(image, ProbePolicy(), metadata={"k": "v"})
        assert isolated.probe(tmp_path / "missing.png", ProbePolicy()).reason == "unreadable"
    finally:
        isolated.close()
    assert asset == probe_source(str(image), ProbePolicy(), metadata={"k": "v"})
    assert (asset.kind, asset.metadata) == ("image", {"k": "v"})


def test_no_sources_gives_an_empty_result(tmp_path: Path, ray_local):
    result = media_of(CurateConfig(input=str(tmp_path), output=str(tmp_path / "out")), sources=[])
    assert (result.clips, result.quarantine, result.counters["sources"]) == ([], [], 0)


def test_shared_actors_serve_every_batch_then_are_released(tmp_path: Path, ray_local):
    import ray

    corpus = tmp_path / "corpus"
    synth_corpus(corpus, seed=5, videos=1, audio=1, images=1)
    cfg = CurateConfig(input=str(corpus), output=str(tmp_path / "out"), asr=AsrConfig(actors=2))
    from curators.sources import list_sources

    actors = media_actors.start_media_actors(cfg, ray.cluster_resources())
    first = run_media_stage(cfg, list_sources(cfg.input)[:2], actors)
    pools = {key: list(pool.actors) for key, pool in media_actors._actor_pools.items()}
    groups = [pool.group for pool in media_actors._actor_pools.values()]
    assert {key[1] for key in pools} == {"asr", "decode"} and len(next(p for k, p in pools.items() if k[1] == "asr")) == 2
    pids = {key: ray.get([a.__ray_call__.remote(lambda self: os.getpid()) for a in pool]) for key, pool in pools.items()}
    second = run_media_stage(cfg, list_sources(cfg.input)[2:], actors)
    assert {key: pool.actors for key, pool in media_actors._actor_pools.items()} == pools, "the same actors again"
    assert pids == {key: ray.get([a.__ray_call__.remote(lambda self: os.getpid()) for a in pool])
                    for key, pool in pools.items()}
    assert first.clips and second.clips and any(c.transcript for c in first.clips + second.clips)
    media_actors.release_media_actors()
    assert media_actors._actor_pools == {}
    for pool in pools.values():
        for actor in pool:
            with pytest.raises(ray.exceptions.RayActorError):
                ray.get(actor.__ray_ready__.remote(), timeout=30)
    table = ray.util.placement_group_table()
    assert all(table[group.id.hex()]["state"] == "REMOVED" for group in groups), "reservations freed"


def test_a_resized_asr_pool_replaces_the_old_one(ray_local):
    import ray

    [first] = media_actors.asr_actors(AsrConfig(), 0.25, count=1)
    second = media_actors.asr_actors(AsrConfig(), 0.25, count=2)
    assert len(second) == 2 and [k[1] for k in media_actors._actor_pools] == ["asr"]
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(first.__ray_ready__.remote(), timeout=30)
    media_actors.release_media_actors()


def test_only_image_sources_start_no_speech_model(tmp_path: Path, ray_local):
    import ray

    from curators.sources import list_sources
    from pipelines.dataset.location import as_location
    from pipelines.partitions import stage_partitions

    corpus = tmp_path / "corpus"
    synth_corpus(corpus, seed=6, videos=0, audio=0, images=2)
    cfg = CurateConfig(input=str(corpus), output=str(tmp_path / "out"))
    plan = stage_partitions(cfg, as_location(cfg.work_path))
    assert (plan.sizes, plan.sound) == ([2], False)
    actors = media_actors.start_media_actors(cfg, ray.cluster_resources(), sound=plan.sound)
    result = run_media_stage(cfg, list_sources(cfg.input), actors)
    assert len(result.clips) == 2
    assert {key[1] for key in media_actors._actor_pools} == {"decode"}
    media_actors.release_media_actors()


def test_a_hung_decoder_exits_when_its_parent_dies(tmp_path: Path, probed_video):
    import signal
    import subprocess
    import sys
    import time

    path, asset = probed_video
    path.unlink()
    os.mkfifo(path)
    script = (
        "import sys\n"
        "from pipelines.isolation import IsolatedDecoder\n"
        "from schemas.config import DecodeConfig\n"
        "from schemas.media import MediaAsset\n"
        "from schemas.validation import from_json\n"
        "decoder = IsolatedDecoder()\n"
        "asset = from_json(MediaAsset, sys.argv[1])\n"
        "decoder._start()\n"
        "print(decoder._process.pid, flush=True)\n"
        "decoder.decode(asset, DecodeConfig(), sys.argv[2], budget_s=600)\n")
    from schemas.validation import to_json

    parent = subprocess.Popen([sys.executable, "-c", script, to_json(asset), str(tmp_path / "w")],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    child = int(parent.stdout.readline())
    time.sleep(1.0)
    os.kill(child, 0)  # the child is alive, stuck on the pipe
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the orphaned decoder kept running")


def test_visual_groups_put_stills_together_and_a_long_clip_alone():
    from pipelines.clip_bundles import ClipBundle
    from pipelines.media_stage import visual_groups
    from schemas.media import Clip

    def bundle(name: str, frames: int) -> ClipBundle:
        clip = Clip(clip_id=name, media_id=name, source_uri=f"file:///{name}", kind="image" if frames == 1 else "video",
                    start_s=0.0, end_s=1.0, media_path="image.jpg",
                    frame_paths=[f"frame_{i:03d}.jpg" for i in range(frames)], frame_times_s=[0.0] * frames)
        return ClipBundle(clip=clip, files={})

    framed = [(0, bundle("a", 1)), (1, bundle("b", 1)), (1, bundle("c", 3)), (2, bundle("d", 6)),
              (3, bundle("e", 1)), (3, bundle("f", 2))]
    groups = visual_groups(framed, frames_per_task=4)
    assert [[b.clip.clip_id for _, b in g] for g in groups] == [["a", "b"], ["c"], ["d"], ["e", "f"]]
    assert [i for g in groups for i, _ in g] == [0, 1, 1, 2, 3, 3]  # every clip once, in order, with its source
    assert visual_groups([]) == []


def test_a_decode_group_holds_sixteen_stills_or_four_sources_that_may_carry_sound():
    from pipelines.media_stage import decode_group_end
    from schemas.media import SourceItem

    items = [SourceItem(uri=f"/c/{name}") for name in
             [*(f"s{i}.jpg" for i in range(20)), "v0.mp4", "v1.mp4", "a0.wav", "v2.mkv", "v3.mp4", "s20.png"]]
    assert decode_group_end(items, 0) == 16  # sixteen stills
    assert decode_group_end(items, 16) == 23  # four stills and three sounding sources weigh sixteen
    assert decode_group_end(items, 23) == 26  # what is left
    assert decode_group_end(items, 20) == 24  # four videos and audio files
    assert decode_group_end(items, 26) == 26  # none left


def test_a_remote_source_is_fetched_once_for_its_probe_and_its_decode(tmp_path: Path, ray_local):
    """The decoder probes what it decodes: an HTTP source (a server on 127.0.0.1 that counts requests) is read
    once, whole, not once by a probe task and again by the decoder."""
    import json
    import threading
    from collections import Counter
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    corpus = tmp_path / "corpus"
    facts = synth_corpus(corpus, seed=4, videos=1, audio=0, images=2)
    gets: Counter = Counter()

    class Counting(SimpleHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server name
            gets[self.path] += 1
            super().do_GET()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Counting, directory=str(corpus)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        manifest = tmp_path / "sources.jsonl"
        manifest.write_text("".join(json.dumps({"uri": f"{base}/{row['file']}"}) + "\n" for row in facts))
        result = media_of(CurateConfig(input=str(manifest), output=str(tmp_path / "out"),
                                       decode=DecodeConfig(frames_per_clip=2)))
    finally:
        server.shutdown()
    assert result.quarantine == [] and {Path(a.clip.source_uri).name for a in result.clips} == {
        row["file"] for row in facts}
    assert all(a.clip.source_uri.startswith(base) for a in result.clips)
    assert gets == Counter({f"/{row['file']}": 1 for row in facts}), gets
