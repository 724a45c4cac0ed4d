"""Composition of one sample by hand, the ground-plane prior, and placements."""

import numpy as np
import pytest

from fgbg.composing.compose import PRIOR_FAR, ground_plane_prior, placements, prepare_fg
from fgbg.composing.sources import load_sources
from fgbg.core.config import ComposeConfig
from tests.conftest import compose_sample


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
    d = ground_plane_prior(10, horizon=0.4, near=0.1, far=0.9)
    # horizon at row 4; row centres 4.5 .. 9.5; depth = 0.1 * 6 / (row - 4)
    assert d[:4, 0].tolist() == [1.0] * 4  # the sky
    assert d[4, 0] == pytest.approx(0.9)  # the ground at the horizon: 1.2 clipped to far
    assert d[5, 0] == pytest.approx(0.6 / 1.5)
    assert d[9, 0] == pytest.approx(0.6 / 5.5)
    assert (np.diff(d[:, 3]) <= 0).all()  # nearer towards the bottom


def prior_only_store(tiny_data, tmp_path, horizon: float):
    """The tiny data composed without data/bg_depth/ (every bg on the ground-plane prior) at `horizon`."""
    import dataclasses
    import shutil

    from fgbg.composing.build import compose_dataset
    from fgbg.dataset.store import ComposedStore
    from tests.conftest import TINY_COMPOSE

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data, ignore=shutil.ignore_patterns("bg_depth"))
    compose_dataset(data_dir=data, out_dir=tmp_path / "c", cfg=dataclasses.replace(TINY_COMPOSE, prior_horizon=horizon))
    return ComposedStore(tmp_path / "c")


def test_a_foot_above_the_priors_horizon_stands_at_the_horizon(tiny_data, tmp_path):
    """On the ground-plane prior (no data/bg_depth/), an object whose lowest row is in the sky takes the
    ground's depth at the horizon, PRIOR_FAR = 0.9, not the sky's 1; one whose foot is on the ground
    keeps the ground's depth there. At horizon 0.9 x 16 = 14.4, only feet on rows 14 (centre 14.5,
    depth 0.05 x 1.6 / 0.1 = 0.8) and 15 (0.05 x 1.6 / 1.1) are on the ground."""
    store = prior_only_store(tiny_data, tmp_path, 0.9)
    by_foot = {14: 0.8, 15: 0.05 * 1.6 / 1.1}
    feet = []
    for i in range(len(store)):
        mask = store.read(i)[2]
        foot = int(np.nonzero(mask.any(axis=1))[0].max())
        feet.append(foot)
        assert store.index.obj_depth[i] == pytest.approx(by_foot.get(foot, PRIOR_FAR)), (i, foot)
    assert min(feet) < 14 and max(feet) >= 14  # both cases were composed


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


def test_grid_layout_is_the_original_grid_at_192_96(tiny_data):
    """The original pasted at x = 28 i (i = 0..4), y = 28 j (j = 4..1), cropping at the border."""
    src = load_sources(tiny_data, bg_size=192, fg_size=96)
    df = placements(src, ComposeConfig(bg_size=192, fg_size=96, positions=20, layout="grid"))
    one = df[(df.fg_idx == 0) & (df.flip == 0) & (df.bg_idx == 0)]
    want = [(x, y) for y in (112, 84, 56, 28) for x in (0, 28, 56, 84, 112)]
    assert list(zip(one.x, one.y)) == want
    fh, fw = src.fg[0].shape[:2]
    assert max(fh, fw) == 96
    for row in one.itertuples():  # the visible box: the fg, cropped 16 px past x or y = 112 + 96 - 192
        assert (row.w, row.h) == (min(fw, 192 - row.x), min(fh, 192 - row.y))


def test_grid_layout_scales_with_the_bg(tiny_data):
    src = load_sources(tiny_data, bg_size=64, fg_size=32)
    df = placements(src, ComposeConfig(bg_size=64, fg_size=32, positions=20, layout="grid"))
    one = df[(df.fg_idx == 0) & (df.flip == 0) & (df.bg_idx == 0)]
    assert sorted(set(one.x)) == [0, 9, 19, 28, 37] and sorted(set(one.y)) == [9, 19, 28, 37]  # 28 i / 3, rounded


def test_a_cropped_grid_placement_composes_the_visible_part(tiny_data, tmp_path):
    import dataclasses

    from fgbg.composing.build import compose_dataset
    from fgbg.composing.compose import placed_fg
    from fgbg.dataset.store import ComposedStore
    from tests.conftest import TINY_COMPOSE

    cfg = dataclasses.replace(TINY_COMPOSE, bg_size=32, fg_size=16, positions=20, layout="grid", shard_size=50)
    compose_dataset(data_dir=tiny_data, out_dir=tmp_path / "c", cfg=cfg)
    ds = ComposedStore(tmp_path / "c")
    src = load_sources(tiny_data, bg_size=32, fg_size=16)
    row = ds.index[(ds.index.x == 19) & (ds.index.y == 19)].iloc[0]  # 112 * 32 / 192 = 18.7 -> 19
    fg = placed_fg(src.fg[row.fg_idx], row.flip, *src.fg[row.fg_idx].shape[:2])
    assert (row.w, row.h) == (min(fg.shape[1], 13), min(fg.shape[0], 13))  # 32 - 19 = 13 px visible
    _, fg_bg, mask, _ = ds.read(int(row["sample"]))
    assert row.w == 13 or row.h == 13  # cropped on at least one side
    obj = fg[: row.h, : row.w, 3] >= 128
    assert (mask[19 : 19 + row.h, 19 : 19 + row.w] == obj).all() and mask.sum() == obj.sum()


def test_random_scale_stays_in_range_and_inside(tiny_data):
    src = load_sources(tiny_data, bg_size=16, fg_size=8)
    df = placements(src, ComposeConfig(bg_size=16, fg_size=8, positions=4, scale_range=(0.5, 1.5)))
    assert df.scale.between(0.5, 1.5).all() and df.scale.nunique() > 10
    assert (df.x + df.w <= 16).all() and (df.y + df.h <= 16).all()


def test_the_prior_horizon_reaches_the_stored_bg_depth(tiny_data, tmp_path):
    """Without data/bg_depth/, every bg takes the ground-plane prior at compose.prior_horizon: at 0.25 x 16 = 4
    rows 5 and 6 are ground (0.4 and 0.24: 0.05 x 12 / (5.5 - 4), / (6.5 - 4)); at 0.4 x 16 = 6.4 row 5 is sky, 1,
    and row 6 the ground at the horizon (0.05 x 9.6 / 0.1 = 4.8, clipped to PRIOR_FAR)."""
    store = prior_only_store(tiny_data, tmp_path, 0.25)
    assert np.array_equal(store.bg_depth[0], ground_plane_prior(16, 0.25))
    assert store.bg_depth[0][5:7, 0].tolist() == pytest.approx([0.4, 0.24]) 
    assert ground_plane_prior(16, 0.4)[5:7, 0].tolist() == pytest.approx([1, PRIOR_FAR])
    assert store.meta["compose"]["prior_horizon"] == 0.25


def test_the_fixed_point_blend_rounds_every_value_exactly():
    """blend == round((bg (255 - a) + rgb a) / 255) for every bg, rgb and alpha byte: 16.7 million cases,
    against the exact rounding floor(m / 255 + 1/2) = (2m + 255) // 510 (m / 255 is never half an integer)."""
    from fgbg.composing.compose import blend

    v = np.arange(256, dtype=np.int64)
    rgb, a = np.meshgrid(v, v, indexing="ij")  # 256 x 256: every (rgb, alpha) pair
    fg = np.stack([rgb, rgb, rgb, a], axis=-1).astype(np.uint8)  # 256 x 256 fg of every pair
    prepared = prepare_fg(fg, 128)
    boxes = np.broadcast_to(v.astype(np.uint8)[:, None, None, None], (256, 256, 256, 3))  # every bg value
    m = v[:, None, None] * (255 - a) + rgb * a  # bg, rgb, alpha
    assert np.array_equal(blend(boxes, prepared)[..., 0], (2 * m + 255) // 510)


def test_rgb_sums_by_hand_and_exact_where_doubles_are_tight():
    """OpenCV's mean and standard deviation, turned back into sums: exact integers, by hand on a tiny
    image, and against int64 sums on 192 px images of noise, of all 255 and of one bright pixel."""
    from fgbg.composing.shard import rgb_sums

    img = np.zeros((1, 2, 3), np.uint8)
    img[0, 0] = (1, 2, 255)
    img[0, 1] = (3, 0, 255)
    assert rgb_sums(img).tolist() == [4, 2, 510, 10, 4, 2 * 65025]
    one_bright = np.zeros((192, 192, 3), np.uint8)
    one_bright[5, 7] = (255, 1, 0)
    noise = np.random.default_rng(0).integers(0, 256, (192, 192, 3), dtype=np.uint8)
    for image in (noise, np.full((192, 192, 3), 255, np.uint8), one_bright, noise[3:90, 10:150]):
        flat = image.reshape(-1, 3).astype(np.int64)
        assert rgb_sums(image).tolist() == [*flat.sum(0), *(flat * flat).sum(0)]


def test_each_sample_records_whether_its_bg_depth_was_measured(tiny_data, tmp_path, monkeypatch):
    """With data/bg_depth/ for 2 of the 3 bgs, the third's samples are on the prior: bg_measured False, and its
    stored depth is the prior's; the PairDataset's MEASURED target follows it. The plan's fingerprint tells
    which bg a depth map belongs to: the same map given to another bg composes again."""
    import shutil

    from fgbg.composing import build
    from fgbg.composing.build import _fingerprint, compose_dataset
    from fgbg.dataset.data import MEASURED, PairDataset, SampleView
    from fgbg.dataset.store import ComposedStore
    from tests.conftest import TINY_COMPOSE, contract

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    depth_maps = sorted((data / "bg_depth").iterdir())
    prior_bg = depth_maps[1].stem
    depth_maps[1].unlink()
    compose_dataset(data_dir=data, out_dir=tmp_path / "c", cfg=TINY_COMPOSE)
    store = ComposedStore(tmp_path / "c")
    on_prior = (store.index.bg == prior_bg).to_numpy()
    assert on_prior.any() and not on_prior.all()
    assert [store.measured(i) for i in range(len(store))] == (~on_prior).tolist()
    assert np.array_equal(store.bg_depth[store.index.bg_idx[on_prior.argmax()]], ground_plane_prior(TINY_COMPOSE.bg_size, 0.4))

    view = SampleView(targets=("mask", MEASURED))
    ids = [int(i) for i in np.random.default_rng(0).permutation(len(store))]  # positions are not sample ids
    ds = PairDataset(store, ids, contract(), view)
    assert [float(ds[k][1][MEASURED]) for k in range(len(ids))] == [float(store.measured(i)) for i in ids]
    assert {float(ds[k][1][MEASURED]) for k in range(len(ids))} == {0.0, 1.0}

    sources = load_sources(data, TINY_COMPOSE.bg_size, TINY_COMPOSE.fg_size)
    before = _fingerprint(sources, TINY_COMPOSE, None)
    monkeypatch.setattr(build, "FORMAT_VERSION", build.FORMAT_VERSION + 1)  # another format: a partial work folder
    assert _fingerprint(sources, TINY_COMPOSE, None) != before  # of the old one is not resumed
    monkeypatch.undo()
    depth_maps[0].rename(depth_maps[1])  # bg 0's map now belongs to bg 1
    assert _fingerprint(load_sources(data, TINY_COMPOSE.bg_size, TINY_COMPOSE.fg_size), TINY_COMPOSE, None) != before
