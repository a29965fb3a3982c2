"""The dialogue stage with a media writer on a local Ray: frames travel to the writer actors as bytes, samples
still name the partition's own files, and the model requests' cost comes back per stage."""

import base64
from pathlib import Path

from writer_media_fixtures import FRAMES_PER_VIDEO, media_pool

from openai_server import RecordingProxy, openai_server  # noqa: F401 (the fixture)
from pipelines.dialogue_stage import run_dialogue_stage
from schemas.config import CurateConfig, DialogueConfig, SpeechConfig


def test_writer_actors_get_frame_bytes_and_report_usage(ray_local, openai_server, tmp_path):  # noqa: F811
    clips = media_pool(tmp_path / "partition-scratch")
    by_id = {c.clip.clip_id: c for c in clips}
    with RecordingProxy(openai_server.base_url) as proxy:
        cfg = CurateConfig(input=str(tmp_path), output=str(tmp_path / "out"), work_dir=str(tmp_path / "work"), seed=3,
                           dialogue=DialogueConfig(dialogues=2, min_turns=3, max_turns=3, writer="vlm_endpoint",
                                                   writer_model=openai_server.vlm, endpoint_url=proxy.base_url,
                                                   writer_max_tokens=16, writer_frames=FRAMES_PER_VIDEO,
                                                   writer_actors=1),
                           speech=SpeechConfig(enabled=False))
        usage = []
        samples = run_dialogue_stage(clips, cfg, scratch=tmp_path / "scratch", usage=usage)
    assert len(samples) == 2
    for s in samples:
        assert s.sample.lineage.models["writer"] == openai_server.vlm
        # the samples name this process's files, not the actor's copies
        assert s.files == {m.member: by_id[m.clip_id].clip.media_path for m in s.sample.dialogue.media}
    shown = {m.clip_id for s in samples for m in s.sample.dialogue.media if by_id[m.clip_id].clip.kind != "audio"}
    sent = {p["image_url"]["url"].split(";base64,", 1)[1] for r in proxy.requests
            for p in r["messages"][-1]["content"] if p["type"] == "image_url"}
    for cid in shown:  # every picture and frame of the shown clips reached the server, read by the actor
        assert {base64.b64encode(Path(p).read_bytes()).decode() for p in by_id[cid].clip.frame_paths} <= sent
    (writer,) = [u for u in usage if u.stage == "writer"]
    assert writer.requests == len(proxy.requests) and writer.completion_tokens == 16 * len(proxy.requests)
    assert writer.prompt_tokens > 0 and writer.failures == 0


def test_a_media_bundle_holds_what_the_models_look_at(tmp_path):
    from pipelines.clip_bundles import unpack_clip
    from pipelines.dialogue_stage import media_bundle

    clips = media_pool(tmp_path / "media")
    video, image, audio = clips[0], clips[1], clips[2]
    assert (video.clip.kind, image.clip.kind, audio.clip.kind) == ("video", "image", "audio")
    seen = media_bundle(video, sound=False)
    assert sorted(seen.files) == [f"frame_{f:03d}.jpg" for f in range(FRAMES_PER_VIDEO)]  # no mp4, no wav
    assert seen.clip.frame_paths == sorted(seen.files) and seen.clip.frame_times_s == video.clip.frame_times_s
    heard = media_bundle(audio, sound=True)
    assert sorted(heard.files) == ["audio.wav"] and media_bundle(audio, sound=False).files == {}
    assert sorted(media_bundle(image, sound=True).files) == ["image.jpg"]
    copy = unpack_clip(seen, tmp_path / "actor")
    assert [Path(p).read_bytes() for p in copy.frame_paths] == [Path(p).read_bytes() for p in video.clip.frame_paths]
    assert all(p.startswith(str(tmp_path / "actor")) for p in copy.frame_paths)
