"""The composed dataset: reads give back what was composed; composing is deterministic."""

import numpy as np

from fgbg.compose import compose_dataset, compose_sample, ground_plane_prior
from fgbg.sources import load_sources
from fgbg.store import SHARDS, Dataset


def test_read_returns_the_composed_sample(tiny_data, tiny_dataset):
    ds = Dataset(tiny_dataset)
    assert len(ds) == 3 * 4 * 2 * 2
    src = load_sources(tiny_data, 16, 8)
    for i in (0, 5, len(ds) - 1):  # first, middle, last (last shard)
        row = ds.index.iloc[i]
        fg = src.fg[row.fg_idx][:, ::-1] if row.flip else src.fg[row.fg_idx]
        depth_src = src.bg_depth[row.bg_idx] if src.bg_depth[row.bg_idx] is not None else ground_plane_prior(16)
        fg_bg, mask, depth = compose_sample(src.bg[row.bg_idx], depth_src, fg, row.x, row.y)
        bg, r_fg_bg, r_mask, r_depth = ds.read(i)
        assert (bg == src.bg[row.bg_idx]).all()
        assert (r_fg_bg == fg_bg).all() and (r_mask == mask).all()
        assert np.abs(r_depth - depth).max() <= 0.5 / 65535 + 1e-7  # 16-bit quantisation
    assert ds.index["shard"].nunique() == 5  # 48 samples at 10 per shard


def test_composing_twice_gives_identical_bytes(tiny_data, tiny_dataset, tmp_path):
    again = tmp_path / "composed"
    compose_dataset(data_dir=tiny_data, out_dir=again, bg_size=16, fg_size=8, positions=2,
                    seed=0, mask_threshold=128, shard_size=10)
    for f in sorted((tiny_dataset / SHARDS).iterdir()) + [tiny_dataset / "index.csv"]:
        assert f.read_bytes() == (again / f.relative_to(tiny_dataset)).read_bytes(), f.name


def test_a_failed_compose_leaves_nothing_behind(tmp_path):
    (tmp_path / "data" / "bg").mkdir(parents=True)
    try:
        compose_dataset(data_dir=tmp_path / "data", out_dir=tmp_path / "out", bg_size=16, fg_size=8,
                        positions=1, seed=0, mask_threshold=128, shard_size=4)
    except ValueError:
        pass
    assert list(tmp_path.iterdir()) == [tmp_path / "data"]
