"""Dynamic tiling: InternVL's grid rule, and curation counting the tiles the loader decodes."""

import io

import numpy as np
import pytest
from PIL import Image

from curators.sample_build import image_tiles
from schemas.config import DecodeConfig
from schemas.tiling import candidate_grids, choose_grid, grid_of_tile_count, tile_count
from training.media_decode import MediaDecodeConfig, decode_image


def internvl_grid(width, height, image_size, max_num, min_num=1):
    """InternVL's ``dynamic_preprocess`` grid choice (``find_closest_aspect_ratio``), as its code does it."""
    aspect_ratio = width / height
    target_ratios = {(i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1)
                     if min_num <= i * j <= max_num}
    best_ratio_diff, best_ratio = float("inf"), (1, 1)
    for ratio in sorted(target_ratios, key=lambda x: x[0] * x[1]):
        ratio_diff = abs(aspect_ratio - ratio[0] / ratio[1])
        if ratio_diff < best_ratio_diff:
            best_ratio_diff, best_ratio = ratio_diff, ratio
        elif ratio_diff == best_ratio_diff and width * height > 0.5 * image_size * image_size * ratio[0] * ratio[1]:
            best_ratio = ratio
    return best_ratio


def image_bytes(width, height):
    pixels = np.random.default_rng(width * 1000 + height).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "BMP")
    return buf.getvalue()


def test_grid_follows_aspect_ratio():
    assert choose_grid(448, 448) == (1, 1)
    assert choose_grid(900, 450) == (2, 1)
    assert choose_grid(450, 900) == (1, 2)
    assert choose_grid(1792, 448) == (4, 1)
    assert choose_grid(212, 474) == (2, 5)  # 0.447: 2/5 is nearer than 1/2, however small the image


def test_large_images_get_more_tiles_small_ones_do_not():
    # same 2:1 ratio, but only an image with the pixels to fill half of a bigger grid gets it
    assert choose_grid(900, 450) == (2, 1)
    assert choose_grid(1600, 800) == (4, 2)
    assert choose_grid(4000, 4000, max_tiles=12) == (3, 3)
    assert choose_grid(300, 300, max_tiles=12) == (1, 1)


def test_grids_never_pass_max_tiles():
    assert all(c * r <= 12 for c, r in candidate_grids(12))
    assert max(c * r for c, r in [choose_grid(w, h) for w, h in [(10000, 100), (100, 10000), (9000, 6000)]]) <= 12
    assert choose_grid(10000, 100) == (12, 1)


def test_tile_count_adds_a_thumbnail_to_a_grid_of_several():
    assert tile_count(900, 450) == 3
    assert tile_count(1600, 800) == 9
    assert tile_count(300, 300) == 1
    assert tile_count(212, 474) == 11


@pytest.mark.parametrize("max_tiles", [6, 12])
def test_grid_is_internvls_and_transformers_over_a_grid_of_sizes(max_tiles):
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import get_optimal_tiled_canvas

    # (22, 120) lies exactly between 1/5 and 1/6: InternVL's float comparison picks 1x6, and so must we
    sizes = [(w, h) for w in range(1, 2000, 23) for h in range(1, 2000, 19)] + [(22, 120), (120, 22)]
    got = [choose_grid(w, h, 448, max_tiles) for w, h in sizes]
    assert got == [internvl_grid(w, h, 448, max_tiles) for w, h in sizes]
    assert got == [get_optimal_tiled_canvas((h, w), (448, 448), 1, max_tiles) for w, h in sizes]


def test_a_recorded_tile_count_gives_back_its_grid_whatever_max_tiles_made_it():
    for max_tiles in (1, 2, 6, 12, 40):
        for w in range(1, 3000, 37):
            for h in range(1, 3000, 41):
                grid = choose_grid(w, h, 448, max_tiles)
                assert grid_of_tile_count(w, h, tile_count(w, h, 448, max_tiles)) == grid, (w, h, max_tiles)


def test_curation_counts_the_tiles_the_loader_decodes_over_a_grid_of_sizes():
    """Every size up to 64x64 with 16 px tiles: the same grids as 448 px tiles on images up to 1792x1792."""
    decode, loader = DecodeConfig(tile_size=16, max_tiles=12), MediaDecodeConfig(tile_size=16, max_tiles=12)
    for w in range(1, 65):
        for h in range(1, 65):
            data = image_bytes(w, h)
            recorded = image_tiles(w, h, decode)
            unrecorded = decode_image(data, None, loader).tiles
            assert unrecorded.shape == (recorded, 3, 16, 16), (w, h)
            assert np.array_equal(decode_image(data, recorded, loader).tiles.numpy(), unrecorded.numpy()), (w, h)


@pytest.mark.parametrize("size", [(212, 474), (474, 212), (22, 120), (640, 480), (1000, 300), (1674, 1296)])
def test_curation_counts_the_tiles_the_loader_decodes_at_448(size):
    data = image_bytes(*size)
    recorded = image_tiles(*size, DecodeConfig())
    assert recorded == tiles_of(internvl_grid(*size, 448, 12))
    assert decode_image(data, None, MediaDecodeConfig()).tiles.shape[0] == recorded
    assert decode_image(data, recorded, MediaDecodeConfig()).tiles.shape[0] == recorded


def tiles_of(grid):
    return grid[0] * grid[1] + (1 if grid[0] * grid[1] > 1 else 0)
