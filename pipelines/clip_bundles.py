"""Decoded clips as bytes: what travels between Ray tasks and nodes instead of node-local paths.

A decoder writes a clip's files into one folder (``<clip_id>/image.jpg``, ``clip.mp4``, ``frame_000.jpg``,
``audio.wav``, ...). A bundle holds those files' bytes by name and the clip record with the bare names in
place of paths; ``unpack_clip`` writes them into a folder of the receiving process and points the record
there (a receiver that can read bytes, as visual facts do, reads them in memory instead). A path therefore never
leaves the process that wrote it.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from schemas.media import AnnotatedClip, Clip

_FILE_NAME = re.compile(r"^[a-z0-9_]{1,64}\.(jpg|png|mp4|flac|wav)$")
_CLIP_ID = re.compile(r"^[a-z0-9_-]{1,128}$")


@dataclass(kw_only=True, slots=True, frozen=True)
class ClipBundle:
    """A clip's record (file names, not paths) and the bytes of every file it names."""

    clip: Clip
    files: dict[str, bytes]
    """File name (as named in ``clip``) -> bytes."""


def _names(clip: Clip) -> list[str]:
    paths = [clip.media_path, *clip.frame_paths, *([clip.audio_path] if clip.audio_path else [])]
    return list(dict.fromkeys(paths))


def check_file_name(name: str) -> str:
    """Bundle and staging file names are flat and known: never a path (they may come from shared storage)."""
    if not _FILE_NAME.match(name):
        raise ValueError(f"unsafe clip file name {name!r:.80}")
    return name


def _renamed(clip: Clip, name_of) -> Clip:
    return replace(clip, media_path=name_of(clip.media_path), frame_paths=[name_of(p) for p in clip.frame_paths],
                   audio_path=name_of(clip.audio_path) if clip.audio_path else None)


def pack_clip(clip: Clip) -> ClipBundle:
    """Read every file ``clip`` names into a bundle."""
    files = {check_file_name(Path(p).name): Path(p).read_bytes() for p in _names(clip)}
    return ClipBundle(clip=_renamed(clip, lambda p: Path(p).name), files=files)


def narrowed(bundle: ClipBundle, *roles: str) -> ClipBundle:
    """The bundle with only the files of ``roles`` (``media``, ``frames``, ``audio``), for a receiver that
    needs part of the clip (ASR the audio, visual facts the frames)."""
    clip = bundle.clip
    wanted = {*([clip.media_path] if "media" in roles else []), *(clip.frame_paths if "frames" in roles else []),
              *([clip.audio_path] if "audio" in roles and clip.audio_path else [])}
    return ClipBundle(clip=clip, files={name: data for name, data in bundle.files.items() if name in wanted})


def check_clip_id(clip_id: str) -> str:
    if not _CLIP_ID.match(clip_id):
        raise ValueError(f"unsafe clip id {clip_id!r:.80}")
    return clip_id


def unpack_clip(bundle: ClipBundle, root: str | Path) -> Clip:
    """Write the bundle's files under ``root/<clip_id>/``; the clip record points at them."""
    folder = Path(root) / check_clip_id(bundle.clip.clip_id)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in bundle.files.items():
        (folder / check_file_name(name)).write_bytes(data)
    return _renamed(bundle.clip, lambda name: str(folder / check_file_name(name)))


def relative_clip(annotated: AnnotatedClip) -> AnnotatedClip:
    """The clip with bare file names instead of this process's paths (how it is stored in the ledger)."""
    return replace(annotated, clip=_renamed(annotated.clip, lambda p: Path(p).name))


def located_clip(annotated: AnnotatedClip, root: str | Path) -> AnnotatedClip:
    """A stored clip (bare names) pointed at its files under ``root/<clip_id>/``."""
    folder = Path(root) / check_clip_id(annotated.clip.clip_id)
    return replace(annotated, clip=_renamed(annotated.clip, lambda name: str(folder / check_file_name(name))))


@contextmanager
def unpacked(bundle: ClipBundle) -> Iterator[Clip]:
    """The bundle written into a private temporary folder for as long as the block runs."""
    root = tempfile.mkdtemp(prefix="omnicurate-clip-")
    try:
        yield unpack_clip(bundle, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
