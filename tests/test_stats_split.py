"""Streamed stats against known values and numpy; grouped split properties."""

import numpy as np
import pandas as pd
import pytest

from fgbg.split import split_index
from fgbg.stats import RunningMoments, dataset_stats
from fgbg.store import Dataset


def test_running_moments_of_known_images():
    m = RunningMoments(3)
    m.add(np.zeros((2, 2, 3)))
    m.add(np.ones((2, 2, 3)))
    r = m.result()
    assert r["mean"] == [0.5] * 3 and r["std"] == [0.5] * 3


def test_dataset_stats_match_numpy(tiny_dataset):
    ds = Dataset(tiny_dataset)
    got = dataset_stats(ds)
    reads = [ds.read(i) for i in range(len(ds))]
    for k, kind in enumerate(("bg", "fg_bg")):
        arr = np.stack([r[k] for r in reads]).astype(np.float64) / 255
        assert got[kind]["mean"] == pytest.approx(arr.mean(axis=(0, 1, 2)), abs=1e-9)
        assert got[kind]["std"] == pytest.approx(arr.std(axis=(0, 1, 2)), abs=1e-9)
    masks = np.stack([r[2] for r in reads]).astype(np.float64)
    depths = np.stack([r[3] for r in reads]).astype(np.float64)
    assert got["mask"]["mean"][0] == pytest.approx(masks.mean(), abs=1e-9)
    assert got["depth"]["std"][0] == pytest.approx(depths.std(), abs=1e-9)
    assert got["samples"] == len(ds)


def _index(n_fg=10, n_bg=5):
    rows = [(f"fg{f}", f"bg{b}") for f in range(n_fg) for b in range(n_bg)]
    df = pd.DataFrame(rows, columns=["fg", "bg"])
    df.insert(0, "sample", range(len(df)))
    return df


def test_split_by_fg_is_disjoint_grouped_and_deterministic():
    idx = _index()
    s = split_index(idx, group_by="fg", val_fraction=0.3, seed=0)
    assert len(s["val_fg"]) == 3 and s["sizes"] == {"train": 35, "val": 15, "unused": 0}
    assert not set(s["train"]) & set(s["val"])
    val_fg = set(idx.loc[s["val"], "fg"])
    assert val_fg == set(s["val_fg"]) and not val_fg & set(idx.loc[s["train"], "fg"])
    assert s == split_index(idx, group_by="fg", val_fraction=0.3, seed=0)
    assert s["val_fg"] != split_index(idx, group_by="fg", val_fraction=0.3, seed=3)["val_fg"]


def test_split_by_fg_and_bg_sees_only_unseen_sources():
    idx = _index()
    s = split_index(idx, group_by="fg_and_bg", val_fraction=0.2, seed=0)
    val, train = idx.loc[s["val"]], idx.loc[s["train"]]
    assert not set(val["fg"]) & set(train["fg"]) and not set(val["bg"]) & set(train["bg"])
    assert s["sizes"] == {"train": 8 * 4, "val": 2 * 1, "unused": 50 - 32 - 2}


def test_split_needs_two_groups():
    with pytest.raises(ValueError, match="cannot split 1 group"):
        split_index(_index(n_fg=1), group_by="fg", val_fraction=0.3, seed=0)


def test_stats_are_exact_for_jpeg_and_scaled_placements(tiny_data, tmp_path):
    import dataclasses

    from fgbg.build import compose_dataset
    from tests.conftest import TINY_COMPOSE

    cfg = dataclasses.replace(TINY_COMPOSE, fg_bg_format="jpeg", scale_range=(0.5, 1.5))
    compose_dataset(data_dir=tiny_data, out_dir=tmp_path / "c", cfg=cfg)
    ds = Dataset(tmp_path / "c")
    got = dataset_stats(ds)
    reads = [ds.read(i) for i in range(len(ds))]
    fg_bg = np.stack([r[1] for r in reads]).astype(np.float64) / 255
    depth = np.stack([r[3] for r in reads]).astype(np.float64)
    assert got["fg_bg"]["mean"] == pytest.approx(fg_bg.mean(axis=(0, 1, 2)), abs=1e-9)
    assert got["fg_bg"]["std"] == pytest.approx(fg_bg.std(axis=(0, 1, 2)), abs=1e-9)
    assert got["depth"]["std"][0] == pytest.approx(depth.std(), abs=1e-9)
