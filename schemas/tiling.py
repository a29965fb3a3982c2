"""The dynamic tiling grid of DESIGN.md (InternVL's): curation counts an image's tiles with it, the loader cuts them."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=64)
def candidate_grids(max_tiles: int, min_tiles: int = 1) -> tuple[tuple[int, int], ...]:
    """All (columns, rows) grids of ``min_tiles`` to ``max_tiles`` cells, fewest cells first, then by (columns, rows).

    The order decides ties (below) and is the order InternVL's ``dynamic_preprocess`` scans them in.
    """
    sides = range(1, max_tiles + 1)
    grids = {(c, r) for c in sides for r in sides if min_tiles <= c * r <= max_tiles}
    return tuple(sorted(grids, key=lambda g: (g[0] * g[1], g)))


def choose_grid(width: int, height: int, tile_size: int = 448, max_tiles: int = 12, min_tiles: int = 1
                ) -> tuple[int, int]:
    """The grid whose aspect ratio (columns / rows) is closest to the image's, InternVL's rule exactly.

    Between grids at the same distance a later (larger) one wins only when the image has the pixels to fill
    more than half of it, so a small image is not blown up into many tiles. Distances are compared exactly,
    as InternVL does: the model was trained on the grids its code picks, rounding included.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    aspect = width / height
    area = width * height
    best, best_diff = (1, 1), float("inf")
    for cols, rows in candidate_grids(max_tiles, min_tiles):
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and area > 0.5 * tile_size * tile_size * cols * rows:
            best = (cols, rows)
    return best


def tiles_of_grid(cols: int, rows: int) -> int:
    """Tiles the model sees for a grid: its cells, plus a whole-image thumbnail when there are several."""
    cells = cols * rows
    return cells + 1 if cells > 1 else 1


def tile_count(width: int, height: int, tile_size: int = 448, max_tiles: int = 12) -> int:
    """Tiles of an image of this size: the chosen grid's cells, plus the thumbnail when more than one."""
    return tiles_of_grid(*choose_grid(width, height, tile_size, max_tiles))


def grid_of_tile_count(width: int, height: int, tiles: int, tile_size: int = 448) -> tuple[int, int]:
    """The grid behind a recorded tile count: ``tiles - 1`` cells (1 when ``tiles`` is 1), shaped as above.

    Restricting ``choose_grid`` to grids of exactly that many cells picks the grid it picked among all
    of them, whatever ``max_tiles`` curation ran with, so the loader cuts the cells curation counted.
    """
    if tiles < 1:
        raise ValueError(f"tile count must be at least 1, got {tiles}")
    cells = tiles - 1 if tiles > 1 else 1
    return choose_grid(width, height, tile_size, max_tiles=cells, min_tiles=cells)
