"""The sample grids (fgbg.core.plots): where each image lands, how big, and in which colours.

Colours are hand-checked against matplotlib's published colour maps: magma at 1 (what magma_r draws
at depth 0, nearest) is (0.987, 0.991, 0.750), inferno at 1 is (0.988, 0.998, 0.645), and both start
at (0.001, 0.000, 0.014).
"""

import numpy as np
import pytest

from fgbg.core.plots import CELL, GAP, LABEL_MARGIN, LABEL_WIDTH, TITLE_HEIGHT, as_rgb, coloured, grid_image
from tests.conftest import grid_columns

NEAR, FAR = (252, 253, 191), (0, 0, 4)  # magma_r at 0 and 1, in 8 bits


def test_maps_take_their_heads_colours_and_an_error_saturates_at_a_quarter():
    ramp = np.array([[0.0, 1.0]])
    assert as_rgb(ramp, "depth").tolist() == [[list(NEAR), list(FAR)]]
    assert as_rgb(ramp, "depth_pred").tolist() == [[list(NEAR), list(FAR)]]
    assert as_rgb(np.array([[0.0, 0.5]]), "mask").tolist() == [[[0, 0, 0], [128, 128, 128]]]
    # |error| 0.25 and 0.9 both at inferno's top; 0 at its bottom
    assert as_rgb(np.array([[0.0, 0.25, 0.9]]), "depth_error").tolist() == [[[0, 0, 4], [252, 255, 164], [252, 255, 164]]]
    colour = np.array([[[10, 20, 30]]], np.uint8)
    assert as_rgb(colour, "bg") is colour
    assert as_rgb(np.array([[[0.0, 0.5, 1.0]]]), "cutout").tolist() == [[[0, 128, 255]]]


def test_each_image_fills_its_cell_one_to_one_or_enlarged_pixel_for_pixel():
    bg = np.zeros((CELL, CELL, 3), np.uint8)
    bg[0, 0] = (255, 0, 0)
    depth = np.ones((16, 16))  # far everywhere but one near pixel, enlarged CELL / 16 = 12 times
    depth[15, 15] = 0.0
    grid = np.asarray(grid_image([(bg, depth), (bg, depth)], ("bg", "depth")))
    assert grid.shape == (TITLE_HEIGHT + 2 * CELL + GAP, 2 * CELL + GAP, 3)
    second_row = TITLE_HEIGHT + CELL + GAP
    assert tuple(grid[second_row, 0]) == (255, 0, 0) and tuple(grid[second_row, 1]) == (0, 0, 0)
    x0 = CELL + GAP  # the depth column's first pixel
    near = grid[second_row : second_row + CELL, x0 : x0 + CELL] == NEAR
    assert near.all(axis=2).sum() == 12 * 12 and near[-12:, -12:].all()
    assert (grid[second_row - GAP : second_row] == 255).all()  # the gap between rows is white


def test_a_wide_image_shrinks_into_its_cell_centred_and_labels_take_a_column():
    wide = np.full((CELL, 2 * CELL, 3), 7, np.uint8)
    grid = np.asarray(grid_image([(wide,)], ("fg_bg",), row_labels=["cat_003\nbg_01"]))
    assert grid.shape == (TITLE_HEIGHT + CELL, LABEL_WIDTH + CELL, 3)
    cell = grid[TITLE_HEIGHT:, LABEL_WIDTH:]
    filled = (cell == 7).all(axis=2)
    assert filled.sum() == CELL * CELL // 2 and filled[CELL // 4 : 3 * CELL // 4].all()  # 192 x 96, rows 48 to 143
    assert (grid[TITLE_HEIGHT:, : LABEL_WIDTH] < 128).any()  # the label is written


def test_the_column_count_of_a_grid():
    assert grid_columns(grid_image([(np.zeros((4, 4)),) * 5], ("a",) * 5)) == 5


def _dark_columns(region: np.ndarray) -> np.ndarray:
    """The x of the columns of an H, W, 3 region where text (a dark pixel) is drawn."""
    return np.nonzero((region < 128).all(axis=2).any(axis=0))[0]


def test_a_long_label_widens_its_column_and_never_covers_the_first_image():
    """`fgbg score` labels a row with its pair's names, which can be wider than LABEL_WIDTH: the column widens to
    the widest label, so the first image stays whole and every letter lies left of it."""
    labels = ["cat_003\nbg_01", "bg_0001.png\na_foreground_with_a_long_name_0042.png"]  # the second's second line
    image = np.full((CELL, CELL, 3), 7, np.uint8)
    grid = np.asarray(grid_image([(image,), (image,)], ("fg_bg",), row_labels=labels))
    left = grid.shape[1] - CELL
    assert left > LABEL_WIDTH
    assert (grid[TITLE_HEIGHT : TITLE_HEIGHT + CELL, left:] == 7).all()
    assert (grid[TITLE_HEIGHT + CELL + GAP :, left:] == 7).all()
    ink = _dark_columns(grid[TITLE_HEIGHT:, :left])
    assert LABEL_MARGIN <= ink.min() <= LABEL_MARGIN + 1 and left - LABEL_MARGIN - 2 <= ink.max() < left - 2
    with pytest.raises(ValueError, match="2 row labels for 1 rows"):
        grid_image([(image,)], ("fg_bg",), row_labels=labels)


def test_titles_sit_above_their_columns_and_labels_beside_their_rows():
    """Each title is centred over its own cell, in the title band; each row's label lies within that row's height."""
    blank = np.full((CELL, CELL, 3), 255, np.uint8)
    grid = np.asarray(grid_image([(blank, blank), (blank, blank)], ("bg", "a_title"), row_labels=["one", "two"]))
    left, pitch = grid.shape[1] - 2 * CELL - GAP, CELL + GAP
    for c in range(2):
        ink = _dark_columns(grid[:TITLE_HEIGHT, left + pitch * c : left + pitch * c + CELL])
        assert len(ink) and abs((ink.min() + ink.max()) / 2 - CELL / 2) <= 3
    assert not (grid[TITLE_HEIGHT:] < 128).all(axis=2)[:, left:].any()  # no title text below the band
    for r in range(2):
        rows = np.nonzero((grid[:, :left] < 128).all(axis=2).any(axis=1))[0]
        top = TITLE_HEIGHT + pitch * r
        mine = rows[(rows >= top) & (rows < top + CELL)]
        assert len(mine) and abs((mine.min() + mine.max()) / 2 - (top + CELL / 2)) <= 4
    assert not (grid[:TITLE_HEIGHT, :left] < 128).all(axis=2).any()  # labels stay out of the title band


def test_an_image_larger_than_its_cell_shrinks_by_averaging():
    """Stripes of 0 and 255 one pixel wide, twice the cell: shrunk to the cell they average to mid-grey (dropping
    every other pixel would keep pure black or pure white)."""
    stripes = np.zeros((2 * CELL, 2 * CELL, 3), np.uint8)
    stripes[:, ::2] = 255
    cell = np.asarray(grid_image([(stripes,)], ("fg_bg",)))[TITLE_HEIGHT:].astype(int)
    assert np.abs(cell[8:-8, 8:-8] - 128).max() <= 8


def test_values_fall_in_256_levels_floored_and_clipped():
    """Through `gray` (level k is k / 255 of white), v lands in level floor(256 v): 0.7 / 256 in level 0 (rounding
    would give 1), 1.5 / 256 in level 1, 1 and above in 255, below 0 and NaN in 0."""
    values = np.array([[0.7 / 256, 1.5 / 256, 1.0, 3.0, -0.5, np.nan]])
    assert coloured(values, "gray")[..., 0].tolist() == [[0, 1, 255, 255, 0, 0]]
