"""Dynamic tiling of DESIGN.md: 448x448 tiles in the grid closest to the image's aspect ratio, plus a thumbnail."""

from __future__ import annotations

from PIL import Image


def candidate_grids(max_tiles: int, min_tiles: int = 1) -> list[tuple[int, int]]:
    """All (columns, rows) grids with between ``min_tiles`` and ``max_tiles`` tiles, fewest tiles first."""
    sides = range(1, max_tiles + 1)
    grids = {(c, r) for c in sides for r in sides if min_tiles <= c * r <= max_tiles}
    return sorted(grids, key=lambda g: (g[0] * g[1], g))


def choose_grid(width: int, height: int, tile_size: int = 448, max_tiles: int = 12) -> tuple[int, int]:
    """The grid whose aspect ratio is closest to the image's.

    Between grids with the same ratio the larger one wins only when the image has the pixels to fill
    more than half of it, so a small image is not blown up into many tiles.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    aspect = width / height
    best = (1, 1)
    best_diff = float("inf")
    for cols, rows in candidate_grids(max_tiles):
        diff = abs(aspect - cols / rows)
        if diff < best_diff - 1e-12:
            best, best_diff = (cols, rows), diff
        elif abs(diff - best_diff) <= 1e-12 and width * height > 0.5 * tile_size * tile_size * cols * rows:
            best = (cols, rows)
    return best


def tile_count(width: int, height: int, tile_size: int = 448, max_tiles: int = 12) -> int:
    """Tiles the model sees for an image of this size: the grid, plus a thumbnail when the grid has several."""
    cols, rows = choose_grid(width, height, tile_size, max_tiles)
    return cols * rows + (1 if cols * rows > 1 else 0)


def tile_image(image: Image.Image, tile_size: int = 448, max_tiles: int = 12) -> list[Image.Image]:
    """The image resized to the chosen grid and cut into tiles (row-major), thumbnail last when added."""
    cols, rows = choose_grid(image.width, image.height, tile_size, max_tiles)
    rgb = image.convert("RGB")
    resized = rgb.resize((cols * tile_size, rows * tile_size), Image.BICUBIC)
    tiles = [resized.crop((c * tile_size, r * tile_size, (c + 1) * tile_size, (r + 1) * tile_size))
             for r in range(rows) for c in range(cols)]
    if len(tiles) > 1:
        tiles.append(rgb.resize((tile_size, tile_size), Image.BICUBIC))
    return tiles
