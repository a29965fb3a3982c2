"""The cross-partition dedup pass on Ray, staged in a local directory and in an S3 bucket (moto's server on
127.0.0.1): the same clips are dropped whatever the bucket count."""

import numpy as np
import pyarrow.parquet as pq
import pytest
from object_stores import s3_emulator
from PIL import Image, ImageEnhance

from curators.filters.near_duplicate import dhash
from curators.media_dedup import MediaSignature, duplicates_among, merge_duplicates
from pipelines.dataset.location import DatasetLocation
from pipelines.media_dedup import (DEDUP_DIR, DONE_MARKER, DUPLICATES_DIR, SIGNATURES_DIR, duplicates_for,
                                   duplicates_name, find_duplicates, signatures_name, write_signatures)

PARTITIONS = [0, 1, 2]


@pytest.fixture(scope="module")
def s3_bucket():
    with s3_emulator("work"):
        yield "s3://work"


def picture_hash(path, seed, brighten=None):
    cells = (np.random.default_rng(seed).random((6, 6, 3)) * 255).astype(np.uint8)
    img = Image.fromarray(cells).resize((96, 96), Image.BICUBIC)
    if brighten:
        img = ImageEnhance.Brightness(img).enhance(brighten)
    img.save(path, quality=70)
    return dhash(str(path))


@pytest.fixture(scope="module")
def signatures(tmp_path_factory):
    d = tmp_path_factory.mktemp("pictures")
    beach, beach_bright = picture_hash(d / "beach.png", 1), picture_hash(d / "beach.jpg", 1, brighten=1.08)
    city, forest, frame = (picture_hash(d / f"{name}.png", seed) for name, seed in
                           [("city", 2), ("forest", 3), ("frame", 4)])

    def s(clip_id, partition, uri, kind, media_id, h=None, start_s=0.0):
        return MediaSignature(clip_id=clip_id, partition=partition, source_uri=uri, start_s=start_s, kind=kind,
                              media_id=media_id, picture_hash=h)

    return {
        0: [s("beach", 0, "s3://in/b/beach.png", "image", "mb", beach),
            s("v10", 0, "s3://in/z/talk.mp4", "video", "mv", frame, 10.0),
            s("city", 0, "s3://in/c/city.png", "image", "mc", city)],
        1: [s("beach2", 1, "s3://in/a/beach.jpg", "image", "mb2", beach_bright),  # kept: earliest URI
            s("forest", 1, "s3://in/f/forest.png", "image", "mf", forest),
            s("forest2", 1, "s3://in/f/forest-copy.png", "image", "mf2", forest),  # same partition: left alone
            s("tone", 1, "s3://in/t/tone.wav", "audio", "mt")],
        2: [s("v10", 2, "s3://in/a/talk-copy.mp4", "video", "mv", frame, 10.0),
            s("v20", 2, "s3://in/a/talk-copy.mp4", "video", "mv", frame, 20.0),  # another span: matches v10 by picture
            s("tone", 2, "s3://in/u/tone.wav", "audio", "mt"),
            s("cityframe", 2, "s3://in/c/city.mp4", "video", "mcv", city)],  # a video frame never meets an image
    }


def run_pass(location, signatures, buckets):
    for partition in PARTITIONS:
        write_signatures(location, partition, signatures[partition], buckets)
    count = find_duplicates(location, PARTITIONS, buckets)
    found = {p: duplicates_for(location, p) for p in PARTITIONS}
    assert count == sum(map(len, found.values()))
    return found


@pytest.mark.parametrize("store", ["local", "s3"])
def test_the_same_clips_are_dropped_whatever_the_bucket_count(ray_local, store, signatures, tmp_path, request):
    url = str(tmp_path / "work") if store == "local" else f"{request.getfixturevalue('s3_bucket')}/run-{tmp_path.name}"
    location = DatasetLocation(url)
    by_buckets = {buckets: run_pass(location, signatures, buckets) for buckets in (5, 1)}
    assert by_buckets[1] == by_buckets[5]
    found = by_buckets[1]
    assert {p: {c: (d.duplicate_of, d.kept_partition, d.reason) for c, d in found[p].items()} for p in PARTITIONS} == {
        0: {"beach": ("beach2", 1, "near_picture"), "v10": ("v10", 2, "same_media")},
        1: {},
        2: {"tone": ("tone", 1, "same_media")},
    }
    brute_force = merge_duplicates(duplicates_among([s for p in PARTITIONS for s in signatures[p]]))
    assert merge_duplicates(d for p in PARTITIONS for d in found[p].values()) == brute_force
    # a later pass with fewer buckets leaves no results of the earlier one behind
    assert location.listdir(DEDUP_DIR, DUPLICATES_DIR) == [DONE_MARKER, duplicates_name(0)]
    assert location.listdir(DEDUP_DIR, SIGNATURES_DIR) == [signatures_name(p) for p in PARTITIONS]


def test_signatures_are_sorted_by_bucket_in_small_row_groups_and_checked_against_the_pass(ray_local, tmp_path):
    location = DatasetLocation(str(tmp_path))
    rng = np.random.default_rng(0)
    many = [MediaSignature(clip_id=f"c{i}", partition=0, source_uri=f"u{i}", start_s=0.0, kind="image",
                           media_id=f"m{i}", picture_hash=int(h)) for i, h in enumerate(rng.integers(0, 2**63, 120))]
    write_signatures(location, 0, many, buckets=64)
    meta = pq.ParquetFile(location.path(DEDUP_DIR, SIGNATURES_DIR, signatures_name(0))).metadata
    ranges = [(meta.row_group(g).column(0).statistics.min, meta.row_group(g).column(0).statistics.max)
              for g in range(meta.num_row_groups)]
    assert meta.num_rows == 120 * 29 and len(ranges) > 2
    assert all(hi <= lo for (_, hi), (lo, _) in zip(ranges, ranges[1:]))
    with pytest.raises(ValueError, match="written for 64 buckets"):
        find_duplicates(location, [0], buckets=3)
    with pytest.raises(FileNotFoundError):
        duplicates_for(location, 0)
