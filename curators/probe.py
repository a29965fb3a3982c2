"""Media preflight (ffprobe, PyAV for still images): accept a source as a MediaAsset or refuse it with a reason."""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import subprocess
from functools import lru_cache
from pathlib import Path

from schemas.config import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, ProbePolicy
from schemas.media import MediaAsset, MediaKind, QuarantineReason, QuarantineRecord

ACCEPTED_EXTENSIONS = VIDEO_EXTENSIONS + AUDIO_EXTENSIONS + IMAGE_EXTENSIONS
ISO_BMFF_EXTENSIONS = ("mp4", "mov", "m4a")
ISO_BMFF_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid", b"styp", b"moof"})
# Image codecs that ffprobe reports for still pictures.
IMAGE_CODECS = frozenset({"mjpeg", "png", "webp", "jpegls", "bmp", "tiff", "gif"})
STAGE = "probe"
# Still PNG and JPEG files are probed in-process with PyAV, as a process per file costs far more than the
# probe (about 60 ms a file against under 1 ms, bench/bench_probe.py): their demuxers read one header, the
# stream info needs one frame decoded by two of libavcodec's most fuzzed decoders, and the caps below,
# checked on the header (read by PIL) before libav sees the file, bound the work and memory. Everything
# else keeps the ffprobe subprocess and its timeout, so that a hang or a native crash costs one file: video
# and audio demuxers read and decode as much as the file makes them (stream info over seconds of media,
# index rebuilds, duration scans), and their files cost far more to decode than a process does. WebP stays
# there too: PyAV's newer libavcodec reads animated WebP, which this ffmpeg does not. The media stage runs
# ``probe_file`` in its decoders' isolated child (pipelines/isolation.py), so there a crash or a hang in the
# in-process probe costs one file as well.
IN_PROCESS_FAMILIES = frozenset({"png", "jpeg"})
IN_PROCESS_MAX_BYTES = 16 * 1024**2
IN_PROCESS_MAX_PIXELS = 8192 * 8192


class Refusal(Exception):
    """A per-file refusal carrying its quarantine reason."""

    def __init__(self, reason: QuarantineReason, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sniff_container(head: bytes) -> str | None:
    """The container family that the first bytes announce, or None when they look like no media."""
    if len(head) >= 8 and head[4:8] in ISO_BMFF_BOXES:
        return "iso_bmff"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"RIFF"):
        return "riff"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mpeg_audio"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"GIF8"):
        return "gif"
    return None


def iso_bmff_problem(path: str | Path, size: int) -> str | None:
    """Why an ISO BMFF file is cut short (a box running past the end, no moov), or None when whole."""
    seen = set()
    offset = 0
    with open(path, "rb") as fh:
        while offset < size:
            fh.seek(offset)
            header = fh.read(16)
            if len(header) < 8:
                return f"{size - offset} stray bytes after the last box at {offset}"
            box_size, box_type = struct.unpack(">I4s", header[:8])
            if box_size == 1:
                if len(header) < 16:
                    return f"box {box_type!r} header cut at {offset}"
                box_size = struct.unpack(">Q", header[8:16])[0]
            elif box_size == 0:
                box_size = size - offset
            if box_size < 8:
                return f"box {box_type!r} at {offset} has impossible size {box_size}"
            if offset + box_size > size:
                name = box_type.decode("latin-1")
                return f"box {name!r} at {offset} needs {box_size} bytes, file ends after {size - offset}"
            seen.add(box_type)
            offset += box_size
    if b"moov" not in seen and b"moof" not in seen:
        return "no moov box"
    return None


@lru_cache(maxsize=1)
def ffmpeg_decodable_codecs() -> frozenset[str]:
    """Names of the codecs this ffmpeg decodes as decode runs it, as ffprobe names a stream's codec.

    A decoder and its codec are named apart (decoder ``msmpeg4`` decodes codec ``msmpeg4v3``, ``amrnb``
    decodes ``amr_nb``, ``libdav1d`` ``av1``): ``ffmpeg -decoders`` adds ``(codec X)`` where they differ.
    A decoder flagged experimental does not count: ffmpeg refuses it without ``-strict experimental``.
    The ffmpeg CLI is asked (once per process) because it is what decodes; PyAV bundles another build.
    """
    out = subprocess.run(["ffmpeg", "-hide_banner", "-decoders"], capture_output=True, text=True, check=False,
                         timeout=30).stdout
    names = set()
    started = False
    for line in out.splitlines():
        if line.strip().startswith("------"):
            started = True
            continue
        parts = line.split()
        if not started or len(parts) < 2 or len(parts[0]) < 4 or parts[0][3] == "X":
            continue
        codec = re.search(r"\(codec (\S+)\)$", line.rstrip())
        names.add(codec.group(1) if codec else parts[1])
    return frozenset(names)


def run_ffprobe(path: str | Path, timeout_s: float) -> dict:
    """ffprobe's format and streams as JSON; raises Refusal on timeout or an unreadable file."""
    cmd = ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise Refusal("timeout", f"ffprobe ran past {timeout_s:g}s") from None
    message = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"ffprobe exit {done.returncode}"
    if done.returncode != 0:
        raise Refusal("decode_error", message)
    try:
        return json.loads(done.stdout or "{}")
    except json.JSONDecodeError:
        raise Refusal("decode_error", "ffprobe printed invalid JSON") from None


def header_pixels(path: str | Path) -> int | None:
    """Width x height that a PNG or JPEG header declares (PIL reads the header only), or None."""
    from PIL import Image

    try:
        with Image.open(path, formats=("PNG", "JPEG")) as image:
            width, height = image.size
    except (OSError, Image.DecompressionBombError):
        return None
    return width * height


def pyav_image_report(path: str | Path, timeout_s: float) -> dict | None:
    """ffprobe's report of a still image (format name, the stream's codec and frame size), read in-process
    by PyAV; None where PyAV cannot answer for sure (an error, a stream that is not video, no frame size)."""
    import av

    try:
        with av.open(str(path), timeout=timeout_s) as container:
            streams = []
            for stream in container.streams:
                context = stream.codec_context
                if stream.type != "video" or context is None or not (context.width and context.height):
                    return None
                attached_pic = bool(stream.disposition & av.stream.Disposition.attached_pic)
                streams.append({"index": stream.index, "codec_type": "video",
                                "codec_name": context.codec.canonical_name, "width": context.width,
                                "height": context.height, "disposition": {"attached_pic": int(attached_pic)}})
            fmt = {"format_name": container.format.name}
            if container.duration is not None:
                fmt["duration"] = f"{container.duration / av.time_base:.6f}"
    except av.error.FFmpegError:
        return None
    return {"format": fmt, "streams": streams} if streams else None


def probe_report(path: str | Path, family: str, size: int, policy: ProbePolicy) -> dict:
    """ffprobe's report of a file: read in-process where that is safe (see IN_PROCESS_FAMILIES), else by
    ffprobe; a file that in-process probing cannot answer for goes to ffprobe too. Raises Refusal."""
    if family in IN_PROCESS_FAMILIES and size <= IN_PROCESS_MAX_BYTES:
        pixels = header_pixels(path)
        # over the policy's limit it is refused all the same, by ffprobe's figures, out of this process
        if pixels is not None and pixels <= min(policy.max_pixels, IN_PROCESS_MAX_PIXELS):
            report = pyav_image_report(path, policy.probe_timeout_s)
            if report is not None:
                return report
    return run_ffprobe(path, policy.probe_timeout_s)


def _float(value, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _rate(text: str | None) -> float | None:
    if not text or text in ("0/0", "0"):
        return None
    num, _, den = text.partition("/")
    value = _float(num) / (_float(den, 1.0) or 1.0)
    return value or None


def _codec_refusal(streams: list[dict]) -> Refusal | None:
    decodable = ffmpeg_decodable_codecs()
    for stream in streams:
        codec = stream.get("codec_name")
        if not codec or codec == "none":
            return Refusal("unsupported_codec", f"stream {stream.get('index')} has an unknown codec "
                                                f"(tag {stream.get('codec_tag_string', '?')})")
        if decodable and codec not in decodable:
            return Refusal("unsupported_codec", f"no decoder for {codec}")
    return None


def asset_from_probe(uri: str, ext: str, info: dict, sha256: str, size: int, policy: ProbePolicy,
                     metadata: dict[str, str] | None = None) -> MediaAsset:
    """Turn ffprobe's report into a MediaAsset, applying the policy; raises Refusal."""
    fmt = info.get("format") or {}
    streams = info.get("streams") or []
    video = [s for s in streams if s.get("codec_type") == "video"
             and not (s.get("disposition") or {}).get("attached_pic")]
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    if not video and not audio:
        raise Refusal("no_streams", f"{fmt.get('format_name', '?')} container without audio or video streams")
    # Only the streams a clip can use count: subtitle, data (timecode) and attachment (font) tracks are
    # never decoded, so however many a file carries, they refuse nothing.
    if len(video) + len(audio) > policy.max_streams:
        raise Refusal("too_large", f"{len(video) + len(audio)} video and audio streams, "
                                   f"policy allows {policy.max_streams}")
    # a clip is cut from the first video stream (a cover picture aside) and the first audio stream
    refusal = _codec_refusal(video[:1] + audio[:1])
    if refusal:
        raise refusal
    if ext in IMAGE_EXTENSIONS or (video and video[0].get("codec_name") in IMAGE_CODECS and not audio
                                  and _float(fmt.get("duration")) <= 0.05):
        kind: MediaKind = "image"
    elif video:
        kind = "video"
    else:
        kind = "audio"
    duration = 0.0 if kind == "image" else _float(fmt.get("duration"))
    if kind != "image" and duration <= 0:
        duration = max((_float(s.get("duration")) for s in streams), default=0.0)
    v = video[0] if video else {}
    a = audio[0] if audio else {}
    width, height = int(v.get("width") or 0) or None, int(v.get("height") or 0) or None
    if kind in ("image", "video") and not (width and height):
        raise Refusal("decode_error", "video stream without frame size")
    if width and height and width * height > policy.max_pixels:
        raise Refusal("too_large", f"{width}x{height} frame over {policy.max_pixels} pixels")
    if kind != "image":
        if duration <= 0:
            raise Refusal("decode_error", "no duration")
        if duration > policy.max_duration_s:
            raise Refusal("too_long", f"{duration:.1f}s over {policy.max_duration_s:g}s")
        if duration < policy.min_duration_s:
            raise Refusal("too_short", f"{duration:.2f}s under {policy.min_duration_s:g}s")
    return MediaAsset(
        media_id=sha256[:16], uri=uri, kind=kind, sha256=sha256, size_bytes=size,
        container=str(fmt.get("format_name", "")), duration_s=round(duration, 3),
        video_codec=v.get("codec_name") if v else None, width=width, height=height,
        fps=_rate(v.get("avg_frame_rate")) or _rate(v.get("r_frame_rate")) if v and kind == "video" else None,
        audio_codec=a.get("codec_name") if a else None,
        sample_rate=int(a["sample_rate"]) if a.get("sample_rate") else None,
        channels=int(a["channels"]) if a.get("channels") else None,
        metadata=dict(metadata or {}),
    )


def probe_file(path: str | Path, policy: ProbePolicy, *, uri: str | None = None,
               metadata: dict[str, str] | None = None) -> MediaAsset | QuarantineRecord:
    """Probe a local file; ``uri`` names it in the records when it was fetched from elsewhere."""
    uri = uri or str(path)
    size = 0
    sha = None
    try:
        try:
            size = os.stat(path).st_size
        except OSError as exc:
            raise Refusal("unreadable", f"cannot stat: {exc.strerror}") from None
        if not os.path.isfile(path):
            raise Refusal("unreadable", "not a regular file")
        if size == 0:
            raise Refusal("empty", "zero bytes")
        ext = Path(uri).suffix.lower().lstrip(".")
        if ext not in ACCEPTED_EXTENSIONS:
            raise Refusal("unsupported_extension", f".{ext or '(none)'} is not one of {', '.join(ACCEPTED_EXTENSIONS)}")
        if size > policy.max_bytes:
            raise Refusal("too_large", f"{size} bytes over {policy.max_bytes}")
        try:
            with open(path, "rb") as fh:
                head = fh.read(64)
            sha = file_sha256(path)
        except OSError as exc:
            raise Refusal("unreadable", f"cannot read: {exc.strerror}") from None
        family = sniff_container(head)
        if family is None:
            raise Refusal("not_media", "content is not a known media container")
        if family == "iso_bmff":
            problem = iso_bmff_problem(path, size)
            if problem:
                raise Refusal("truncated", problem)
        info = probe_report(path, family, size, policy)
        return asset_from_probe(uri, ext, info, sha, size, policy, metadata)
    except Refusal as refusal:
        return QuarantineRecord(uri=uri, reason=refusal.reason, detail=refusal.detail, stage=STAGE,
                                size_bytes=size, sha256=sha)


def source_file(uri: str, cache_dir: str | Path | None = None) -> Path | QuarantineRecord:
    """The local file holding a source's bytes: the path itself, or a remote object copied into ``cache_dir``;
    a fetch that fails is a quarantine row."""
    from curators.sources import local_copy

    try:
        return local_copy(uri, cache_dir)
    except OSError as exc:
        return QuarantineRecord(uri=uri, reason="unreadable", detail=f"cannot fetch: {exc}", stage=STAGE)


def probe_source(uri: str, policy: ProbePolicy, *, metadata: dict[str, str] | None = None,
                 cache_dir: str | Path | None = None) -> MediaAsset | QuarantineRecord:
    """Probe one source: a local path, or an fsspec URL first copied into ``cache_dir``."""
    path = source_file(uri, cache_dir)
    if isinstance(path, QuarantineRecord):
        return path
    return probe_file(path, policy, uri=uri, metadata=metadata)
