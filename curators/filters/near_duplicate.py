"""Near-duplicate dialogues: MinHash over word shingles of the text plus perceptual hashes of the media."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import BinaryIO, ClassVar

import numpy as np

from curators.writers.grounding import normalize
from schemas.dialogue import Sample, Verdict

MINHASH_PERMUTATIONS = 64
LSH_BANDS = 16
"""64 permutations in 16 bands of 4: pairs above about 0.6 Jaccard share a band with high probability."""
SHINGLE_WORDS = 3
NEAR_DUPLICATE_FILTER = "near_duplicate"


def _shingle_hashes(text: str) -> np.ndarray:
    words = normalize(text).split()
    grams = {" ".join(words[i:i + SHINGLE_WORDS]) for i in range(max(1, len(words) - SHINGLE_WORDS + 1))}
    return np.array([int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "big") for g in grams],
                    dtype=np.uint64)


_rng = np.random.default_rng(20240611)
_A = _rng.integers(1, 2**63, MINHASH_PERMUTATIONS, dtype=np.uint64) | np.uint64(1)
_B = _rng.integers(0, 2**63, MINHASH_PERMUTATIONS, dtype=np.uint64)


def minhash(text: str) -> np.ndarray:
    """A signature whose agreement rate estimates the Jaccard similarity of two texts' shingle sets.

    Each permutation is a multiply-shift hash (odd multiplier, arithmetic mod 2**64, top 32 bits kept).
    """
    shingles = _shingle_hashes(text)
    with np.errstate(over="ignore"):
        hashed = (_A[:, None] * shingles[None, :] + _B[:, None]) >> np.uint64(32)
    return hashed.min(axis=1)


def dhash(image: str | BinaryIO, size: int = 8) -> int:
    """64-bit difference hash: bright/dark gradients of a 9x8 greyscale thumbnail (of a file, or its bytes)."""
    return picture_signature(image, size)[0]


def picture_signature(image: str | BinaryIO, size: int = 8) -> tuple[int, int]:
    """The dHash and the mean colour (R, G, B packed in 24 bits) of a picture, from one decode.

    dHash sees only gradients: two flat backgrounds of different colours with the same shape on them hash
    alike. The mean colour tells them apart (see ``colour_distance``)."""
    from PIL import Image

    with Image.open(image) as img:
        grey = np.asarray(img.convert("L").resize((size + 1, size), Image.BILINEAR), dtype=np.int16)
        colour = np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float64)
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    r, g, b = (int(round(v)) for v in colour.reshape(-1, 3).mean(axis=0))
    return int("".join("1" if bit else "0" for bit in bits), 2), (r << 16) | (g << 8) | b


def colour_distance(a: int, b: int) -> int:
    """The largest difference of one channel between two packed mean colours (0-255)."""
    # spelled out, not a generator: the dedup pass calls it for every close pair of pictures
    return max(abs((a >> 16) - (b >> 16)), abs(((a >> 8) & 0xFF) - ((b >> 8) & 0xFF)), abs((a & 0xFF) - (b & 0xFF)))


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def dialogue_text(sample: Sample) -> str:
    return " ".join(f"{t.user.text} {t.assistant.text}" for t in sample.dialogue.turns)


@dataclass(slots=True)
class _Entry:
    key: str
    signature: np.ndarray
    media: list[int]


@dataclass(slots=True)
class NearDuplicateIndex:
    """Samples seen so far; a new one close to an earlier one in text and media is a duplicate.

    Order decides which copy survives, so the stage feeds samples in its deterministic order.
    """

    name: str = NEAR_DUPLICATE_FILTER
    codes: ClassVar[frozenset[str]] = frozenset({"near_duplicate"})
    """The closed set of reason codes of its failed verdicts."""
    text_threshold: float = 0.8
    media_max_hamming: int = 6
    media_threshold: float = 0.5
    entries: list[_Entry] = field(default_factory=list)
    buckets: dict[tuple[int, bytes], list[int]] = field(default_factory=dict)

    def _media_overlap(self, a: list[int], b: list[int]) -> float:
        if not a and not b:
            return 1.0
        if not a or not b:
            return 0.0
        close = sum(any(hamming(x, y) <= self.media_max_hamming for y in b) for x in a)
        return close / len(a)

    def check(self, sample: Sample, media_hashes: list[int]) -> Verdict:
        """The sample's verdict; kept samples join the index so later copies of them are caught."""
        sig = minhash(dialogue_text(sample))
        rows = MINHASH_PERMUTATIONS // LSH_BANDS
        bands = [(b, sig[b * rows:(b + 1) * rows].tobytes()) for b in range(LSH_BANDS)]
        candidates = sorted({i for band in bands for i in self.buckets.get(band, [])})
        for i in candidates:
            other = self.entries[i]
            jaccard = float(np.mean(other.signature == sig))
            overlap = self._media_overlap(media_hashes, other.media)
            if jaccard >= self.text_threshold and overlap >= self.media_threshold:
                return Verdict(filter=self.name, passed=False, code="near_duplicate", score=round(jaccard, 4),
                               detail=f"near duplicate of {other.key} (text {jaccard:.2f}, media {overlap:.2f})")
        self.entries.append(_Entry(sample.key, sig, list(media_hashes)))
        for band in bands:
            self.buckets.setdefault(band, []).append(len(self.entries) - 1)
        return Verdict(filter=self.name, passed=True, score=0.0)
