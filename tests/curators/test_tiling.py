"""Dynamic 448 tiling: grid by aspect ratio, at most max_tiles, plus a thumbnail."""

from PIL import Image

from curators.tiling import candidate_grids, choose_grid, tile_count, tile_image


def test_grid_follows_aspect_ratio():
    assert choose_grid(448, 448) == (1, 1)
    assert choose_grid(900, 450) == (2, 1)
    assert choose_grid(450, 900) == (1, 2)
    assert choose_grid(1792, 448) == (4, 1)


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


def test_tiles_and_thumbnail():
    tiles = tile_image(Image.new("RGB", (900, 450), (200, 10, 10)))
    assert len(tiles) == 3 == tile_count(900, 450)
    assert tile_count(1600, 800) == 9
    assert all(t.size == (448, 448) for t in tiles)
    assert len(tile_image(Image.new("RGB", (300, 300)))) == 1 == tile_count(300, 300)
