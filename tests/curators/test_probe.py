"""ffprobe preflight: good files become assets, every bad kind of file gets its own quarantine reason."""

import re
import subprocess
from pathlib import Path

import pytest
from media_fixtures import (card_image, counter_video, ffmpeg, subtitles_only_mkv, tone, truncated_copy,
                            unknown_codec_wav)

from curators.decode import VideoFrames
from curators.probe import Refusal, asset_from_probe, iso_bmff_problem, probe_source, sniff_container
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


def ffmpeg_listing(option: str) -> list[str]:
    out = subprocess.run(["ffmpeg", "-hide_banner", option], capture_output=True, text=True, check=True).stdout
    return out.split("------", 1)[1].splitlines()


def video_and_audio_decoders() -> dict[str, tuple[str, str]]:
    """Each video and audio decoder of this ffmpeg, by ``ffmpeg -codecs`` (another listing than the probe
    reads): its stream type and the codec it decodes, which is what ffprobe reports for a stream."""
    decoders = {}
    for row in ffmpeg_listing("-codecs"):
        parts = row.split()
        if len(parts) >= 2 and parts[0][0] == "D" and parts[0][2] in "VA":
            listed = re.search(r"\(decoders: ([^)]*)\)", row)
            for decoder in listed.group(1).split() if listed else [parts[1]]:
                decoders[decoder] = ("video" if parts[0][2] == "V" else "audio", parts[1])
    return decoders


def experimental_decoders() -> set[str]:
    return {row.split()[1] for row in ffmpeg_listing("-decoders") if row.split() and row.split()[0][3:4] == "X"}


def one_stream_report(codec_type: str, codec: str) -> dict:
    """What ffprobe reports for a one-second file whose only stream is in ``codec``."""
    stream = {"index": 0, "codec_type": codec_type, "codec_name": codec}
    stream.update({"width": 64, "height": 48, "avg_frame_rate": "10/1"} if codec_type == "video"
                  else {"sample_rate": "16000", "channels": 1})
    return {"format": {"format_name": "matroska,webm", "duration": "1.0"}, "streams": [stream]}


def test_every_codec_this_ffmpeg_decodes_is_accepted():
    decoders = video_and_audio_decoders()
    experimental = experimental_decoders()
    assert decoders["msmpeg4"] == ("video", "msmpeg4v3") and len(decoders) > 100
    usable = {codec for decoder, (_, codec) in decoders.items() if decoder not in experimental}
    verdicts = {}
    for decoder, (codec_type, codec) in sorted(decoders.items()):
        try:
            asset_from_probe("x.mkv", "mkv", one_stream_report(codec_type, codec), "0" * 64, 1, POLICY)
            verdicts[codec] = "accepted"
        except Refusal as refusal:
            verdicts[codec] = refusal.detail
    # ffmpeg refuses an experimental decoder unless told -strict experimental, which decode never is
    assert verdicts == {codec: "accepted" if codec in usable else f"no decoder for {codec}" for codec in verdicts}
    with pytest.raises(Refusal, match="no decoder for no_such_codec") as unknown:
        asset_from_probe("x.mkv", "mkv", one_stream_report("video", "no_such_codec"), "0" * 64, 1, POLICY)
    assert unknown.value.reason == "unsupported_codec"


def test_msmpeg4v3_avi_is_accepted(tmp_path: Path):
    # ffmpeg's encoder for the msmpeg4v3 codec is named msmpeg4
    path = counter_video(tmp_path / "old.avi", seconds=1.0, vcodec="msmpeg4", acodec="mp3")
    asset = probe_source(str(path), POLICY)
    assert isinstance(asset, MediaAsset), asset
    assert (asset.kind, asset.container, asset.video_codec, asset.audio_codec) == ("video", "avi", "msmpeg4v3", "mp3")
    assert len(VideoFrames(str(path))) == 10


def test_subtitle_data_and_attachment_streams_never_refuse_a_file(tmp_path: Path):
    video = counter_video(tmp_path / "v.mp4", seconds=1.0)
    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    (tmp_path / "notes.txt").write_text("not a font")
    # more streams than the policy allows, all but two of them subtitle tracks or an attachment
    tracks = [arg for _ in range(POLICY.max_streams) for arg in ("-map", "1:0")]
    ffmpeg("-i", str(video), "-i", str(srt), "-map", "0:v", "-map", "0:a", *tracks, "-c:v", "copy", "-c:a", "copy",
           "-c:s", "srt", "-attach", str(tmp_path / "notes.txt"), "-metadata:s:t", "mimetype=text/plain",
           str(tmp_path / "subs.mkv"))
    # a timecode (data) track and a mov_text subtitle track
    ffmpeg("-i", str(video), "-i", str(srt), "-map", "0", "-map", "1", "-c:v", "copy", "-c:a", "copy",
           "-c:s", "mov_text", "-timecode", "00:00:00:00", str(tmp_path / "tc.mp4"))
    for name in ("subs.mkv", "tc.mp4"):
        asset = probe_source(str(tmp_path / name), POLICY)
        assert isinstance(asset, MediaAsset), asset
        assert (asset.kind, asset.video_codec, asset.audio_codec) == ("video", "h264", "aac")
    assert reason(probe_source(str(tmp_path / "subs.mkv"), ProbePolicy(max_streams=1))) == "too_large"
    assert reason(probe_source(str(subtitles_only_mkv(tmp_path / "only.mkv")), POLICY)) == "no_streams"


def still_images(folder: Path) -> list[Path]:
    """PNG and JPEG files of the kinds a corpus holds: colour models, bit depths, progressive, EXIF, misnamed."""
    from PIL import Image

    base = Image.open(card_image(folder / "card.png", size=(320, 200))).convert("RGB")
    paths = [folder / "card.png"]

    def save(name: str, image: Image.Image, **options) -> None:
        image.save(folder / name, **options)
        paths.append(folder / name)

    save("rgba.png", base.convert("RGBA"))
    save("palette.png", base.convert("P"))
    save("grey.png", base.convert("L"))
    save("deep.png", base.convert("I;16"))
    save("odd.png", base.resize((1, 7)))
    save("corpus.jpg", base, quality=92)
    save("progressive.jpeg", base, quality=80, progressive=True)
    save("grey.jpg", base.convert("L"))
    save("cmyk.jpg", base.convert("CMYK"))
    save("full_chroma.jpg", base, subsampling=0)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the stored size is what both report
    save("rotated.jpg", base, exif=exif)
    save("png_named.jpg", base, format="PNG")
    save("large.jpg", base.resize((1920, 1080)))
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64", "-frames:v", "1", "-pix_fmt", "yuvj422p",
           str(folder / "ffmpeg.jpg"))
    paths.append(folder / "ffmpeg.jpg")
    return paths


def broken_images(folder: Path, good: list[Path]) -> list[Path]:
    paths = [truncated_copy(path, folder / f"cut{round(keep * 100)}_{path.name}", keep)
             for path in good[:1] + good[6:8] for keep in (0.05, 0.5, 0.9)]
    (folder / "signature.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (folder / "soi.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 200)
    return [*paths, folder / "signature.png", folder / "soi.jpg"]


@pytest.fixture
def ffprobe_calls(monkeypatch) -> list[str]:
    import curators.probe as probe

    calls = []
    real = probe.run_ffprobe

    def counted(path, timeout_s):
        calls.append(Path(path).name)
        return real(path, timeout_s)

    monkeypatch.setattr(probe, "run_ffprobe", counted)
    return calls


def probe_by_ffprobe(monkeypatch, path: Path, policy: ProbePolicy = POLICY):
    with monkeypatch.context() as patch:
        patch.setattr("curators.probe.IN_PROCESS_FAMILIES", frozenset())
        return probe_source(str(path), policy)


def test_still_images_are_probed_in_process_as_ffprobe_reports_them(tmp_path: Path, monkeypatch, ffprobe_calls):
    images = still_images(tmp_path)
    ours = {path.name: probe_source(str(path), POLICY) for path in images}
    assert ffprobe_calls == []
    theirs = {path.name: probe_by_ffprobe(monkeypatch, path) for path in images}
    assert all(isinstance(asset, MediaAsset) for asset in theirs.values()), theirs
    assert ours == theirs
    assert {(asset.kind, asset.video_codec) for asset in ours.values()} == {("image", "png"), ("image", "mjpeg")}
    assert (ours["deep.png"].container, ours["deep.png"].width, ours["deep.png"].height) == ("png_pipe", 320, 200)


def test_bad_and_oversized_images_get_the_reasons_ffprobe_gives(tmp_path: Path, monkeypatch, ffprobe_calls):
    broken = broken_images(tmp_path, still_images(tmp_path))
    large = tmp_path / "large.jpg"
    small = ProbePolicy(max_pixels=1920 * 1080 - 1)
    ours = {path.name: probe_source(str(path), POLICY) for path in broken} | {"large": probe_source(str(large), small)}
    left_to_ffprobe = set(ffprobe_calls)
    theirs = {path.name: probe_by_ffprobe(monkeypatch, path) for path in broken}
    theirs["large"] = probe_by_ffprobe(monkeypatch, large, small)
    assert ours == theirs
    assert reason(ours["large"]) == "too_large" and reason(ours["signature.png"]) == "decode_error"
    # a cut JPEG still shows its frame size to both; what PyAV cannot size goes to ffprobe
    assert isinstance(ours["cut90_corpus.jpg"], MediaAsset) and "cut90_corpus.jpg" not in left_to_ffprobe
    assert {"large.jpg", "signature.png", "soi.jpg"} <= left_to_ffprobe
