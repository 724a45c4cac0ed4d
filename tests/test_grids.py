"""The sample grids (fgbg.core.plots): where each image lands, how big, and in which colours.

Colours are hand-checked against matplotlib's published colour maps: magma at 1 (what magma_r draws
at depth 0, nearest) is (0.987, 0.991, 0.750), inferno at 1 is (0.988, 0.998, 0.645), and both start
at (0.001, 0.000, 0.014).
"""

import numpy as np

from fgbg.core.plots import CELL, GAP, LABEL_WIDTH, TITLE_HEIGHT, as_rgb, grid_image
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
