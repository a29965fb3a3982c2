"""ffprobe preflight: good files become assets, every bad kind of file gets its own quarantine reason."""

from pathlib import Path

import pytest
from media_fixtures import card_image, counter_video, subtitles_only_mkv, tone, truncated_copy, unknown_codec_wav

from curators.probe import iso_bmff_problem, probe_source, sniff_container
from schemas.config import ProbePolicy
from schemas.media import MediaAsset, QuarantineRecord

POLICY = ProbePolicy()


def reason(record) -> str:
    assert isinstance(record, QuarantineRecord), f"expected a quarantine row, got {record}"
    assert record.stage == "probe"
    return record.reason


def test_video_asset_reports_streams_and_content_address(tmp_path: Path):
    path = counter_video(tmp_path / "v.mp4", seconds=1.0)
    asset = probe_source(str(path), POLICY, metadata={"title": "t"})
    assert isinstance(asset, MediaAsset)
    described = (asset.kind, asset.video_codec, asset.audio_codec, asset.width, asset.height)
    assert described == ("video", "h264", "aac", 160, 120)
    assert asset.fps == pytest.approx(10.0)
    assert asset.duration_s == pytest.approx(1.0, abs=0.1)
    assert asset.media_id == asset.sha256[:16]
    assert asset.metadata == {"title": "t"}


def test_audio_and_image_kinds(tmp_path: Path):
    audio = probe_source(str(tone(tmp_path / "a.flac", channels=2)), POLICY)
    image = probe_source(str(card_image(tmp_path / "i.png")), POLICY)
    assert (audio.kind, audio.channels, audio.width) == ("audio", 2, None)
    assert (image.kind, image.duration_s, image.width, image.height) == ("image", 0.0, 200, 150)


def test_the_three_bad_files_of_issue_two(tmp_path: Path):
    good = counter_video(tmp_path / "good.mp4", seconds=1.0)
    (tmp_path / "empty.mp4").write_bytes(b"")
    truncated_copy(good, tmp_path / "cut.mp4", keep=0.6)
    (tmp_path / "text.mp4").write_text("this is not a video\n")
    assert reason(probe_source(str(tmp_path / "empty.mp4"), POLICY)) == "empty"
    assert reason(probe_source(str(tmp_path / "cut.mp4"), POLICY)) == "truncated"
    assert reason(probe_source(str(tmp_path / "text.mp4"), POLICY)) == "not_media"


def test_truncated_faststart_mp4_is_caught_by_box_sizes(tmp_path: Path):
    good = counter_video(tmp_path / "fs.mp4", seconds=1.0, extra=("-movflags", "+faststart"))
    cut = truncated_copy(good, tmp_path / "fs_cut.mp4", keep=0.8)
    assert iso_bmff_problem(good, good.stat().st_size) is None
    assert "file ends" in iso_bmff_problem(cut, cut.stat().st_size)
    assert reason(probe_source(str(cut), POLICY)) == "truncated"


def test_other_quarantine_reasons(tmp_path: Path):
    video = counter_video(tmp_path / "v.mp4", seconds=2.0, size="320x240")
    assert reason(probe_source(str(subtitles_only_mkv(tmp_path / "subs.mkv")), POLICY)) == "no_streams"
    assert reason(probe_source(str(unknown_codec_wav(tmp_path / "odd.wav")), POLICY)) == "unsupported_codec"
    (tmp_path / "notes.txt").write_text("hello")
    assert reason(probe_source(str(tmp_path / "notes.txt"), POLICY)) == "unsupported_extension"
    assert reason(probe_source(str(video), ProbePolicy(max_duration_s=1.0))) == "too_long"
    assert reason(probe_source(str(video), ProbePolicy(min_duration_s=3.0, max_duration_s=10))) == "too_short"
    assert reason(probe_source(str(video), ProbePolicy(max_bytes=100))) == "too_large"
    assert reason(probe_source(str(video), ProbePolicy(max_pixels=160 * 120))) == "too_large"
    assert reason(probe_source(str(tmp_path / "missing.mp4"), POLICY)) == "unreadable"
    assert reason(probe_source(str(video), ProbePolicy(probe_timeout_s=0.001))) == "timeout"


def test_sniff_names_container_families():
    assert sniff_container(b"\x00\x00\x00\x18ftypisom") == "iso_bmff"
    assert sniff_container(b"\x1a\x45\xdf\xa3\x01") == "matroska"
    assert sniff_container(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    assert sniff_container(b"hello world, plain text") is None
