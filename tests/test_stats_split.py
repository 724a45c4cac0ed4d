"""Streamed stats against known values and numpy; grouped split properties."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from fgbg.dataset.split import split_index
from fgbg.dataset.stats import RunningMoments, dataset_stats
from fgbg.dataset.store import ComposedStore
from tests.conftest import ROOT


def _add_image(moments: RunningMoments, image: np.ndarray) -> None:
    """One H, W, C image's sums into `moments`."""
    pixels = image.reshape(-1, image.shape[-1]).astype(np.float64)
    moments.add_sums(pixels.shape[0], pixels.sum(axis=0), np.square(pixels).sum(axis=0))


def test_running_moments_of_known_images():
    m = RunningMoments(3)
    _add_image(m, np.zeros((2, 2, 3)))
    _add_image(m, np.ones((2, 2, 3)))
    r = m.result()
    assert r["mean"] == [0.5] * 3 and r["std"] == [0.5] * 3


def test_dataset_stats_match_numpy(tiny_dataset):
    ds = ComposedStore(tiny_dataset)
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


def test_stats_count_only_the_given_samples(tiny_dataset):
    ds = ComposedStore(tiny_dataset)
    ids = [1, 4, 5, 11]
    got = dataset_stats(ds, ids)
    reads = [ds.read(i) for i in ids]
    for k, kind in enumerate(("bg", "fg_bg")):
        arr = np.stack([r[k] for r in reads]).astype(np.float64) / 255
        assert got[kind]["mean"] == pytest.approx(arr.mean(axis=(0, 1, 2)), abs=1e-9)
        assert got[kind]["std"] == pytest.approx(arr.std(axis=(0, 1, 2)), abs=1e-9)
    depths = np.stack([r[3] for r in reads]).astype(np.float64)
    assert got["depth"]["mean"][0] == pytest.approx(depths.mean(), abs=1e-9) and got["samples"] == 4
    assert got["fg_bg"]["mean"] != dataset_stats(ds)["fg_bg"]["mean"]


def _index(n_fg=10, n_bg=5):
    rows = [(f"fg{f}", f"bg{b}") for f in range(n_fg) for b in range(n_bg)]
    df = pd.DataFrame(rows, columns=["fg", "bg"])
    df.insert(0, "sample", range(len(df)))
    return df


def test_split_by_fg_is_disjoint_grouped_and_deterministic():
    idx = _index()
    s = split_index(idx, group_by="fg", val_fraction=0.3, test_fraction=0.2, seed=0)
    # 10 fgs x 5 bgs: 2 fgs to test (10 samples), 3 to val (15), 5 to train (25)
    assert len(s["test_fg"]) == 2 and len(s["val_fg"]) == 3
    assert s["sizes"] == {"train": 25, "val": 15, "test": 10, "unused": 0}
    sides = [set(idx.loc[s[side], "fg"]) for side in ("train", "val", "test")]
    assert sides[1] == set(s["val_fg"]) and sides[2] == set(s["test_fg"])
    assert not sides[0] & sides[1] and not sides[0] & sides[2] and not sides[1] & sides[2]
    assert s["unseen"] == "foregrounds never seen in training"
    assert s == split_index(idx, group_by="fg", val_fraction=0.3, test_fraction=0.2, seed=0)
    assert s["val_fg"] != split_index(idx, group_by="fg", val_fraction=0.3, test_fraction=0.2, seed=3)["val_fg"]


def test_split_by_fg_and_bg_sees_only_unseen_sources():
    idx = _index()
    s = split_index(idx, group_by="fg_and_bg", val_fraction=0.2, test_fraction=0.2, seed=0)
    train = idx.loc[s["train"]]
    for side in ("val", "test"):
        held = idx.loc[s[side]]
        assert not set(held["fg"]) & set(train["fg"]) and not set(held["bg"]) & set(train["bg"])
    # fg: 2 test, 2 val, 6 train; bg: 1 test, 1 val, 3 train
    assert s["sizes"] == {"train": 6 * 3, "val": 2 * 1, "test": 2 * 1, "unused": 50 - 18 - 2 - 2}


def test_split_by_bg_and_by_sample_say_what_is_unseen():
    idx = _index()
    by_bg = split_index(idx, group_by="bg", val_fraction=0.2, test_fraction=0.2, seed=0)
    assert by_bg["sizes"] == {"train": 30, "val": 10, "test": 10, "unused": 0} and by_bg["val_fg"] == []
    assert by_bg["unseen"] == "backgrounds never seen in training"
    by_sample = split_index(idx, group_by="sample", val_fraction=0.2, test_fraction=0.2, seed=0)
    assert by_sample["sizes"] == {"train": 30, "val": 10, "test": 10, "unused": 0}
    assert "also seen in training" in by_sample["unseen"]


def test_split_needs_three_groups_and_one_left_to_train():
    with pytest.raises(ValueError, match="cannot split 2 group"):
        split_index(_index(n_fg=2), group_by="fg", val_fraction=0.3, test_fraction=0.3, seed=0)
    with pytest.raises(ValueError, match="leave no group of 3 for training"):
        split_index(_index(n_fg=3), group_by="fg", val_fraction=0.6, test_fraction=0.3, seed=0)


def test_stats_are_exact_for_jpeg_and_scaled_placements(tiny_data, tmp_path):
    import dataclasses

    from fgbg.composing.build import compose_dataset
    from tests.conftest import TINY_COMPOSE

    cfg = dataclasses.replace(TINY_COMPOSE, fg_bg_format="jpeg", scale_range=(0.5, 1.5))
    compose_dataset(data_dir=tiny_data, out_dir=tmp_path / "c", cfg=cfg)
    ds = ComposedStore(tmp_path / "c")
    got = dataset_stats(ds)
    reads = [ds.read(i) for i in range(len(ds))]
    fg_bg = np.stack([r[1] for r in reads]).astype(np.float64) / 255
    depth = np.stack([r[3] for r in reads]).astype(np.float64)
    assert got["fg_bg"]["mean"] == pytest.approx(fg_bg.mean(axis=(0, 1, 2)), abs=1e-9)
    assert got["fg_bg"]["std"] == pytest.approx(fg_bg.std(axis=(0, 1, 2)), abs=1e-9)
    assert got["depth"]["std"][0] == pytest.approx(depth.std(), abs=1e-9)


def test_the_stats_stage_counts_the_train_split_only(tiny_dataset, tmp_path):
    """Val and test stand for unseen data: nothing of theirs, their mean included, may shape the model."""
    split = {"train": [0, 1, 2, 3, 20, 21], "val": list(range(4, 20)), "test": list(range(22, 48))}
    (tmp_path / "split.json").write_text(json.dumps(split))
    subprocess.run([sys.executable, str(ROOT / "stages" / "stats.py"), "--dataset", str(tiny_dataset),
                    "--split", str(tmp_path / "split.json"), "--out", str(tmp_path / "stats.json")], check=True)
    got = json.loads((tmp_path / "stats.json").read_text())
    ds = ComposedStore(tiny_dataset)
    train = np.stack([ds.read(i)[1] for i in split["train"]]).astype(np.float64) / 255  # fg_bg of the train samples
    everything = np.stack([ds.read(i)[1] for i in range(len(ds))]).astype(np.float64) / 255
    assert got["samples"] == 6 and got["fg_bg"]["mean"] == pytest.approx(train.mean(axis=(0, 1, 2)), abs=1e-9)
    assert got["fg_bg"]["mean"] != pytest.approx(everything.mean(axis=(0, 1, 2)), abs=1e-6)
