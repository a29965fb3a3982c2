"""Near-duplicate media across partitions: clip signatures, their LSH band keys, and which copy of a match goes."""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

from curators.filters.near_duplicate import colour_distance, hamming, picture_signature
from schemas.media import Clip, MediaKind
from schemas.validation import require

MAX_HAMMING = 6
MAX_COLOUR_DISTANCE = 32
"""The largest per-channel difference of mean colour (0-255) two near pictures may have: a re-encode, resize or
small brightness change stays well inside it; the same shapes on another background colour do not."""
"""The largest picture-hash distance the bands are guaranteed to find (see ``signature_bands``)."""
HASH_BYTES = 8
BYTE_PAIRS: tuple[tuple[int, int], ...] = tuple(combinations(range(HASH_BYTES), 2))
"""The 28 pairs of byte positions of a 64-bit picture hash; each pair is one band."""

DuplicateReason = Literal[
    "same_media",  # the same source bytes (media_id) at the same start
    "near_picture",  # picture hashes of the same kind within the hamming threshold
]


@dataclass(kw_only=True, slots=True, frozen=True)
class MediaSignature:
    """What the cross-partition dedup pass knows about one clip."""

    clip_id: str
    partition: int
    """The partition whose media stage produced the clip."""
    source_uri: str
    start_s: float
    kind: MediaKind
    media_id: str
    """Content address of the source file; identical bytes under two URIs share it (and so their clip ids)."""
    picture_hash: int | None = None
    """64-bit dHash of the image or of a video's first sampled frame; None for audio."""
    picture_colour: int | None = None
    """That picture's mean colour, R, G, B packed in 24 bits; None for audio (and for signatures staged before
    it was kept, which then match on the hash alone)."""

    def __post_init__(self) -> None:
        require(self.kind in ("image", "video", "audio"), "kind", f"unknown media kind {self.kind!r}")
        require(self.partition >= 0, "partition", "must not be negative")
        if self.picture_hash is not None:
            require(self.kind != "audio", "picture_hash", "audio has no picture")
            require(0 <= self.picture_hash < 1 << 64, "picture_hash", "must be an unsigned 64-bit integer")
        if self.picture_colour is not None:
            require(self.picture_hash is not None, "picture_colour", "a colour without a picture hash")
            require(0 <= self.picture_colour < 1 << 24, "picture_colour", "must be R, G, B packed in 24 bits")

    @property
    def order(self) -> tuple[str, float, str, int]:
        """The order that decides which copy is kept: the earliest of a duplicate pair survives."""
        return self.source_uri, float(self.start_s), self.clip_id, self.partition


@dataclass(kw_only=True, slots=True, frozen=True)
class Duplicate:
    """A clip to drop from its partition because an earlier clip of another partition shows the same media."""

    clip_id: str
    partition: int
    source_uri: str
    start_s: float
    duplicate_of: str
    """Clip id of the copy kept."""
    kept_partition: int
    kept_source_uri: str
    kept_start_s: float
    """The kept copy's place in the keep order, so reports from several buckets merge to the same earliest one."""
    distance: int
    """Hamming distance of the picture hashes; 0 for a ``same_media`` match."""
    reason: DuplicateReason

    @property
    def kept_order(self) -> tuple[str, float, str, int]:
        return self.kept_source_uri, float(self.kept_start_s), self.duplicate_of, self.kept_partition


def clip_signature(clip: Clip, partition: int, first_frame: bytes | None = None) -> MediaSignature:
    """The signature of a decoded clip: a still's own dHash, a video's first sampled frame's; none for audio.

    ``first_frame`` holds that frame's bytes when they are in memory (the clip's paths are then not read)."""
    picture = colour = None
    if clip.kind != "audio" and clip.frame_paths:
        picture, colour = picture_signature(io.BytesIO(first_frame) if first_frame is not None
                                            else clip.frame_paths[0])
    return MediaSignature(clip_id=clip.clip_id, partition=partition, source_uri=clip.source_uri,
                          start_s=clip.start_s, kind=clip.kind, media_id=clip.media_id, picture_hash=picture,
                          picture_colour=colour)


def signature_bands(sig: MediaSignature) -> list[str]:
    """LSH band keys of a signature: two signatures are compared only when they share one.

    One band holds the exact content (kind, media_id, start). A picture hash adds one band per pair of byte
    positions, keyed by the two byte values there. Two hashes within hamming distance 6 differ in at most 6
    of their 8 bytes, so (pigeonhole) at least two bytes agree at the same positions, and that pair's band
    is shared: every pair within ``MAX_HAMMING`` meets in some band, none is missed by chance. Pairs of bytes
    rather than single bytes keep a band's members near 1/65536 of the pictures instead of 1/256, so the
    pairwise check inside a band stays small as the corpus grows. Every key starts with the kind, so an
    image never meets a video frame or audio.
    """
    bands = [f"{sig.kind}/media/{sig.media_id}/{float(sig.start_s)!r}"]
    if sig.picture_hash is not None:
        octets = sig.picture_hash.to_bytes(HASH_BYTES, "big")
        bands += [f"{sig.kind}/picture/{i}{j}/{octets[i]:02x}{octets[j]:02x}" for i, j in BYTE_PAIRS]
    return bands


_Key = tuple[int, str, str, float, "int | None", "int | None"]
"""What a comparison reads of a signature, unpacked once per band rather than once per pair: partition, kind,
media id, start, picture hash and packed mean colour."""


def _key(sig: MediaSignature) -> _Key:
    return sig.partition, sig.kind, sig.media_id, float(sig.start_s), sig.picture_hash, sig.picture_colour


def _match(kept: _Key, later: _Key, max_hamming: int) -> tuple[DuplicateReason, int] | None:
    """Whether ``later`` copies ``kept`` (keys of two clips of one kind or not), and how far apart they are."""
    if kept[1] != later[1]:
        return None
    if kept[2] == later[2] and kept[3] == later[3]:
        return "same_media", 0
    if kept[4] is None or later[4] is None:
        return None
    distance = hamming(kept[4], later[4])
    if distance > max_hamming:
        return None
    if kept[5] is not None and later[5] is not None and colour_distance(kept[5], later[5]) > MAX_COLOUR_DISTANCE:
        return None
    return "near_picture", distance


def _distinct_clips(signatures: Iterable[MediaSignature]) -> list[MediaSignature]:
    # a partition holding identical files has the same clip twice; it stands for them by its earliest copy
    earliest: dict[tuple[int, str], MediaSignature] = {}
    for sig in signatures:
        key = (sig.partition, sig.clip_id)
        if key not in earliest or sig.order < earliest[key].order:
            earliest[key] = sig
    return sorted(earliest.values(), key=lambda s: s.order)


def duplicates_among(signatures: list[MediaSignature], max_hamming: int = MAX_HAMMING) -> list[Duplicate]:
    """The clips to drop among signatures that share a band, each with the earliest copy it duplicates.

    Clips are ordered by (source_uri, start_s, clip_id); a clip is dropped when an earlier clip of another
    partition matches it (same media_id and start, or pictures of the same kind within ``max_hamming`` whose mean
    colours are within ``MAX_COLOUR_DISTANCE``), and
    is reported as a duplicate of the earliest such clip. Pairs inside one partition are left to the
    per-partition sample filter. The earlier clip need not survive itself: in a chain A~B~C where A and C
    are far apart, B and C are both dropped. The rule looks at pairs only, so it is the same whether it runs
    on all signatures at once or on band groups merged with ``merge_duplicates`` (within ``MAX_HAMMING``
    every matching pair shares a band); the earliest clip of any group of copies is always kept.
    """
    require(0 <= max_hamming <= MAX_HAMMING, "max_hamming",
            f"must be 0..{MAX_HAMMING}: the bands find farther pairs only by chance")
    ordered = _distinct_clips(signatures)
    keys = [_key(sig) for sig in ordered]
    found: list[Duplicate] = []
    for index, later in enumerate(ordered):
        later_key = keys[index]
        for position in range(index):
            kept_key = keys[position]
            if kept_key[0] == later_key[0]:  # the same partition
                continue
            match = _match(kept_key, later_key, max_hamming)
            if match is None:
                continue
            kept, (reason, distance) = ordered[position], match
            found.append(Duplicate(clip_id=later.clip_id, partition=later.partition, source_uri=later.source_uri,
                                   start_s=later.start_s, duplicate_of=kept.clip_id, kept_partition=kept.partition,
                                   kept_source_uri=kept.source_uri, kept_start_s=kept.start_s, distance=distance,
                                   reason=reason))
            break
    return found


def merge_duplicates(duplicates: Iterable[Duplicate]) -> list[Duplicate]:
    """One report per dropped clip (partition, clip id): the one naming the earliest kept copy, sorted by partition
    and keep order. Reports of several bands or buckets merge to the same answer in any order."""
    earliest: dict[tuple[int, str], Duplicate] = {}
    for dup in duplicates:
        key = (dup.partition, dup.clip_id)
        held = earliest.get(key)
        if held is None or (dup.kept_order, dup.source_uri) < (held.kept_order, held.source_uri):
            earliest[key] = dup
    return sorted(earliest.values(), key=lambda d: (d.partition, d.source_uri, float(d.start_s), d.clip_id))
