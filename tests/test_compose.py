"""Composition of one sample by hand, the ground-plane prior, and placements."""

import numpy as np
import pytest

from fgbg.compose import GRID, compose_sample, ground_plane_prior, placements
from fgbg.config import ComposeConfig
from fgbg.sources import load_sources


def test_a_2x2_fg_composed_at_a_known_place():
    bg = np.full((4, 4, 3), 10, np.uint8)
    bg_depth = np.tile(np.array([1.0, 0.6, 0.4, 0.2], np.float32)[:, None], (1, 4))  # by row
    fg = np.zeros((2, 2, 4), np.uint8)
    fg[..., :3] = 200
    fg[0, 0, 3] = 255  # opaque
    fg[1, 1, 3] = 255  # opaque: the lowest opaque row is row 1 of fg
    fg[0, 1, 3] = 51  # 20% alpha: blended, below the mask threshold
    fg_bg, mask, depth = compose_sample(bg, bg_depth, fg, x=1, y=1, mask_threshold=128)
    assert fg_bg[1, 1].tolist() == [200] * 3
    assert fg_bg[2, 2].tolist() == [200] * 3
    assert fg_bg[1, 2].tolist() == [48] * 3  # 10 * 0.8 + 200 * 0.2 = 48
    assert fg_bg[2, 1].tolist() == [10] * 3  # alpha 0 there: bg unchanged
    assert fg_bg[0].tolist() == bg[0].tolist()
    expected_mask = np.zeros((4, 4), bool)
    expected_mask[1, 1] = expected_mask[2, 2] = True
    assert (mask == expected_mask).all()
    # the object stands on bg row 2 (y + 1), whose depth is 0.4: all of it takes 0.4
    assert depth[1, 1] == pytest.approx(0.4) and depth[2, 2] == pytest.approx(0.4)
    assert depth[1, 2] == pytest.approx(0.6)  # not in the mask: bg depth
    assert bg.tolist() == np.full((4, 4, 3), 10).tolist()  # inputs untouched


def test_a_fg_that_does_not_fit_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        compose_sample(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4)), np.zeros((2, 2, 4), np.uint8), 3, 0)


def test_ground_plane_prior_by_hand():
    d = ground_plane_prior(10, horizon=0.4, near=0.1)
    # horizon at row 4; row centres 4.5 .. 9.5; depth = 0.1 * 6 / (row - 4)
    assert d[:4, 0].tolist() == [1.0] * 4
    assert d[4, 0] == pytest.approx(1.0)  # 1.2 clipped to 1
    assert d[5, 0] == pytest.approx(0.6 / 1.5)
    assert d[9, 0] == pytest.approx(0.6 / 5.5)
    assert (np.diff(d[:, 3]) <= 0).all()  # nearer towards the bottom


def test_placements_cover_every_fg_flip_bg_and_stay_inside(tiny_data):
    src = load_sources(tiny_data, bg_size=16, fg_size=8)
    cfg = ComposeConfig(bg_size=16, fg_size=8, positions=3)
    df = placements(src, cfg)
    assert len(df) == 4 * 2 * 3 * 3
    assert df.groupby(["fg", "flip", "bg"]).size().eq(3).all()
    for row in df.itertuples():
        assert (row.h, row.w) == src.fg[row.fg_idx].shape[:2]
        assert 0 <= row.x <= 16 - row.w and 0 <= row.y <= 16 - row.h
    assert df.equals(placements(src, cfg))
    other = placements(src, ComposeConfig(bg_size=16, fg_size=8, positions=3, seed=1))
    assert not df[["x", "y"]].equals(other[["x", "y"]])


def test_grid_layout_is_the_original_5_by_4_grid(tiny_data):
    src = load_sources(tiny_data, bg_size=16, fg_size=8)
    df = placements(src, ComposeConfig(bg_size=16, fg_size=8, positions=20, layout="grid"))
    one = df[(df.fg_idx == 0) & (df.flip == 0) & (df.bg_idx == 0)]
    w, h = one.w.iloc[0], one.h.iloc[0]
    assert sorted(set(one.x)) == sorted({round(f * (16 - w)) for f in np.linspace(0, 1, GRID[0])})
    assert sorted(set(one.y)) == sorted({round(f * (16 - h)) for f in np.linspace(0, 1, GRID[1])})
    assert len(one) == 20 and one[["x", "y"]].drop_duplicates().shape[0] == 20


def test_random_scale_stays_in_range_and_inside(tiny_data):
    src = load_sources(tiny_data, bg_size=16, fg_size=8)
    df = placements(src, ComposeConfig(bg_size=16, fg_size=8, positions=4, scale_range=(0.5, 1.5)))
    assert df.scale.between(0.5, 1.5).all() and df.scale.nunique() > 10
    assert (df.x + df.w <= 16).all() and (df.y + df.h <= 16).all()
