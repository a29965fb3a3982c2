"""Cross-partition media dedup: band keys, the duplicate verdict, and the kept copy."""

import random
from collections import defaultdict
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from curators.filters.near_duplicate import dhash, hamming
from curators.media_dedup import (MAX_HAMMING, MediaSignature, clip_signature, duplicates_among, merge_duplicates,
                                  signature_bands)
from schemas.media import Clip
from schemas.validation import SchemaError


def sig(clip_id, partition, uri, *, kind="image", media_id=None, start_s=0.0, picture_hash=None):
    return MediaSignature(clip_id=clip_id, partition=partition, source_uri=uri, start_s=start_s, kind=kind,
                          media_id=media_id or f"m-{clip_id}", picture_hash=picture_hash)


def flip(value, bits):
    for bit in bits:
        value ^= 1 << bit
    return value


def picture(path, seed):
    """A smooth random picture (its dHash is stable under mild edits)."""
    cells = (np.random.default_rng(seed).random((6, 6, 3)) * 255).astype(np.uint8)
    Image.fromarray(cells).resize((96, 96), Image.BICUBIC).save(path)
    return str(path)


def by_bands(signatures, max_hamming=MAX_HAMMING):
    """The dedup pass as the Ray side runs it: group by band, verify each group, merge."""
    groups = defaultdict(list)
    for s in signatures:
        for band in signature_bands(s):
            groups[band].append(s)
    return merge_duplicates(d for members in groups.values() for d in duplicates_among(members, max_hamming))


def test_exact_copies_across_partitions_drop_the_later_source():
    a = sig("c1", 2, "s3://in/a.mp4", kind="video", media_id="m1", start_s=10.0)
    b = sig("c1", 0, "s3://in/b.mp4", kind="video", media_id="m1", start_s=10.0)
    other_span = sig("c2", 1, "s3://in/c.mp4", kind="video", media_id="m1", start_s=20.0)
    (dup,) = duplicates_among([b, other_span, a])
    assert (dup.clip_id, dup.partition, dup.source_uri) == ("c1", 0, "s3://in/b.mp4")
    assert (dup.duplicate_of, dup.kept_partition, dup.kept_source_uri) == ("c1", 2, "s3://in/a.mp4")
    assert (dup.reason, dup.distance) == ("same_media", 0)
    audio = [sig("a1", 0, "x.wav", kind="audio", media_id="m9"), sig("a1", 1, "y.wav", kind="audio", media_id="m9")]
    assert [(d.partition, d.reason) for d in duplicates_among(audio)] == [(1, "same_media")]


def test_a_brightened_reencoded_picture_is_a_near_duplicate_and_another_picture_is_not(tmp_path):
    original = picture(tmp_path / "a.png", 3)
    with Image.open(original) as img:
        ImageEnhance.Brightness(img).enhance(1.08).save(tmp_path / "b.jpg", quality=70)
    unrelated = picture(tmp_path / "c.png", 103)
    clips = [Clip(clip_id=f"c{i}", media_id=f"m{i}", source_uri=f"in/{i}.img", kind="image", start_s=0, end_s=0,
                  media_path=path, frame_paths=[path], frame_times_s=[0.0])
             for i, path in enumerate([original, str(tmp_path / "b.jpg"), unrelated])]
    sigs = [clip_signature(c, partition=i) for i, c in enumerate(clips)]
    assert sigs[0].picture_hash == dhash(original)
    (dup,) = duplicates_among(sigs)
    assert (dup.clip_id, dup.duplicate_of, dup.reason) == ("c1", "c0", "near_picture")
    assert dup.distance == hamming(sigs[0].picture_hash, sigs[1].picture_hash) <= MAX_HAMMING
    assert by_bands(sigs) == [dup]
    audio = Clip(clip_id="s", media_id="ms", source_uri="in/s.wav", kind="audio", start_s=0, end_s=4,
                 media_path="s.flac")
    assert clip_signature(audio, 0).picture_hash is None


def test_the_same_shape_on_another_background_colour_is_not_a_duplicate(tmp_path):
    """dHash sees gradients only: a triangle on blue and one on red hash alike (the demo corpus's title cards did);
    their mean colours tell them apart, while a brightened re-encode of one stays its duplicate."""
    from PIL import ImageDraw

    paths = []
    for name, background, shape in [("blue", (30, 60, 200), (140, 40, 180)), ("red", (220, 30, 30), (250, 140, 20))]:
        img = Image.new("RGB", (160, 100), background)
        ImageDraw.Draw(img).polygon([(80, 20), (40, 80), (120, 80)], fill=shape)
        img.save(tmp_path / f"{name}.png")
        paths.append(str(tmp_path / f"{name}.png"))
    with Image.open(paths[0]) as img:
        ImageEnhance.Brightness(img).enhance(1.08).save(tmp_path / "blue.jpg", quality=70)
    paths.append(str(tmp_path / "blue.jpg"))
    clips = [Clip(clip_id=f"c{i}", media_id=f"m{i}", source_uri=f"in/{i}.img", kind="image", start_s=0, end_s=0,
                  media_path=path, frame_paths=[path], frame_times_s=[0.0]) for i, path in enumerate(paths)]
    blue, red, blue_again = (clip_signature(c, partition=i) for i, c in enumerate(clips))
    assert hamming(blue.picture_hash, red.picture_hash) <= MAX_HAMMING  # the hash alone would call them copies
    assert duplicates_among([blue, red]) == []
    (dup,) = duplicates_among([blue, red, blue_again])
    assert (dup.clip_id, dup.duplicate_of) == ("c2", "c0")
    without_colour = [replace(s, picture_colour=None) for s in (blue, red)]  # staged before colours were kept
    assert [d.clip_id for d in duplicates_among(without_colour)] == ["c1"]


def test_the_threshold_is_inclusive_and_nothing_past_it_matches():
    base = 0x0123_4567_89AB_CDEF
    six_apart = flip(base, [0, 9, 18, 27, 36, 45])  # six different bytes: only two still agree
    seven_apart = flip(base, [0, 9, 18, 27, 36, 45, 54])
    near = duplicates_among([sig("a", 0, "a", picture_hash=base), sig("b", 1, "b", picture_hash=six_apart)])
    assert [(d.clip_id, d.distance) for d in near] == [("b", 6)]
    assert duplicates_among([sig("a", 0, "a", picture_hash=base), sig("b", 1, "b", picture_hash=seven_apart)]) == []
    assert duplicates_among([sig("a", 0, "a", picture_hash=base), sig("b", 1, "b", picture_hash=six_apart)],
                            max_hamming=5) == []
    with pytest.raises(SchemaError, match="max_hamming"):
        duplicates_among([], max_hamming=MAX_HAMMING + 1)


def test_pairs_inside_one_partition_are_left_to_the_sample_filter():
    h = 0xF0F0_F0F0_0F0F_0F0F
    same_partition = [sig("a", 4, "a", media_id="m", picture_hash=h), sig("a", 4, "b", media_id="m", picture_hash=h),
                      sig("c", 4, "c", picture_hash=flip(h, [1]))]
    assert duplicates_among(same_partition) == []
    # the partition holds the same clip twice (identical files): it is dropped once, for its earliest copy
    (dup,) = duplicates_among([*same_partition[:2], sig("a", 1, "z", media_id="m", picture_hash=h)])
    assert (dup.partition, dup.source_uri, dup.kept_partition) == (1, "z", 4)


def test_kinds_never_meet():
    h = 0x1234_5678_9ABC_DEF0
    image = sig("i", 0, "a.jpg", kind="image", picture_hash=h)
    video = sig("v", 1, "b.mp4", kind="video", picture_hash=h)
    assert not set(signature_bands(image)) & set(signature_bands(video))
    assert duplicates_among([image, video]) == []
    with pytest.raises(SchemaError, match="picture_hash"):
        sig("s", 0, "s.wav", kind="audio", picture_hash=h)


def test_a_chain_drops_every_clip_close_to_an_earlier_one():
    a = 0
    b = flip(a, range(4))
    c = flip(b, range(4, 8))  # 4 from b, 8 from a
    found = duplicates_among([sig("c", 2, "3", picture_hash=c), sig("b", 1, "2", picture_hash=b),
                              sig("a", 0, "1", picture_hash=a)])
    assert [(d.clip_id, d.duplicate_of) for d in found] == [("b", "a"), ("c", "b")]


def corpus(rng, n=300):
    """Clusters of near pictures, exact copies and audio, spread over 5 partitions."""
    sigs = []
    for cluster in range(n // 6):
        base = rng.getrandbits(64)
        for member in range(rng.randint(1, 6)):
            picture_hash = flip(base, rng.sample(range(64), rng.randint(0, 9)))
            kind = rng.choice(["image", "video"])
            sigs.append(sig(f"k{cluster}-{member}", rng.randrange(5), f"s3://in/{rng.getrandbits(20):06x}",
                            kind=kind, media_id=f"m{cluster}" if member < 2 else None, picture_hash=picture_hash))
        sigs.append(sig(f"au{cluster}", rng.randrange(5), f"s3://in/au{rng.getrandbits(20)}", kind="audio",
                        media_id=f"am{cluster % 7}"))
    return sigs


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_kept_copy_does_not_depend_on_order_or_on_how_bands_are_grouped(seed):
    rng = random.Random(seed)
    sigs = corpus(rng)
    reference = merge_duplicates(duplicates_among(sigs))  # brute force over every pair
    assert {d.reason for d in reference} == {"same_media", "near_picture"}
    shuffled = sigs[:]
    rng.shuffle(shuffled)
    assert merge_duplicates(duplicates_among(shuffled)) == reference
    assert by_bands(shuffled) == reference
    bands = sorted({b for s in sigs for b in signature_bands(s)})
    for reducers in (1, 3, 17):
        owner = {band: rng.randrange(reducers) for band in bands}
        per_reducer = defaultdict(lambda: defaultdict(list))
        for s in shuffled:
            for band in signature_bands(s):
                per_reducer[owner[band]][band].append(s)
        partial = [merge_duplicates(d for group in groups.values() for d in duplicates_among(group))
                   for groups in per_reducer.values()]
        rng.shuffle(partial)
        assert merge_duplicates(d for part in partial for d in part) == reference


def test_bands_meet_for_every_pair_within_the_threshold():
    rng = random.Random(7)
    hashes = []
    for _ in range(60):
        base = rng.getrandbits(64)
        hashes += [base] + [flip(base, rng.sample(range(64), rng.randint(1, 8))) for _ in range(4)]
    sigs = [sig(f"h{i}", i, f"u{i:03d}", picture_hash=h) for i, h in enumerate(hashes)]
    bands = [set(signature_bands(s)) for s in sigs]
    close = [(i, j) for i in range(len(sigs)) for j in range(i) if hamming(hashes[i], hashes[j]) <= MAX_HAMMING]
    assert len(close) > 100
    assert all(bands[i] & bands[j] for i, j in close)
    # the worst case: six differences in six different bytes still leaves a pair of bytes in common
    for _ in range(200):
        base = rng.getrandbits(64)
        spread = flip(base, [8 * byte + rng.randrange(8) for byte in rng.sample(range(8), 6)])
        assert set(signature_bands(sig("a", 0, "a", picture_hash=base))) & set(
            signature_bands(sig("b", 1, "b", picture_hash=spread)))
