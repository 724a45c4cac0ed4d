"""Train / val / test split, grouped so that val and test measure generalisation.

- `sample`: placements at random (leaks every source into every side; for comparison only);
- `fg`: whole foregrounds go to val or test (unseen objects);
- `bg`: whole backgrounds go to val or test (unseen scenes);
- `fg_and_bg`: val (and test) hold unseen fg on unseen bg; placements that mix sources of
  two sides are left out of all three.
The groups are shuffled with `seed`; the first round(test_fraction * n) go to test, the
next round(val_fraction * n) to val, the rest to train (at least one group each).
Checkpoints and schedules are chosen on val; the reported figures come from test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fgbg.core.errors import InputError

SIDES = ("train", "val", "test")
UNSEEN = {  # what val and test hold that training never saw, per grouping
    "sample": "placements drawn at random (their fg and bg were also seen in training)",
    "fg": "foregrounds never seen in training",
    "bg": "backgrounds never seen in training",
    "fg_and_bg": "foregrounds and backgrounds never seen in training",
}


def _assign_groups(names: list[str], val_fraction: float, test_fraction: float, seed: int) -> dict[str, str]:
    """{group name: "train" | "val" | "test"}."""
    unique = sorted(set(names))
    if len(unique) < 3:
        raise InputError(f"cannot split {len(unique)} group(s) into train, val and test; add sources or use "
                         "split.group_by: sample")
    n_test = max(1, round(test_fraction * len(unique)))
    n_val = max(1, round(val_fraction * len(unique)))
    if n_test + n_val > len(unique) - 1:
        raise InputError(f"split: val_fraction {val_fraction} and test_fraction {test_fraction} leave no group of "
                         f"{len(unique)} for training; lower them")
    order = np.random.default_rng(seed).permutation(len(unique))
    side = np.array(["train"] * len(unique), dtype=object)
    side[order[:n_test]] = "test"
    side[order[n_test : n_test + n_val]] = "val"
    return dict(zip(unique, side))


def split_index(index: pd.DataFrame, *, group_by: str, val_fraction: float, test_fraction: float, seed: int) -> dict:
    """{"train", "val", "test": [sample ids], "group_by", "unseen", "val_fg", "test_fg", "val_bg", "test_bg", "sizes"}."""
    if group_by not in UNSEEN:
        raise InputError(f"split.group_by = {group_by!r}; valid: {', '.join(UNSEEN)}")
    keys = {"sample": ["sample"], "fg": ["fg"], "bg": ["bg"], "fg_and_bg": ["fg", "bg"]}[group_by]
    sides = {}
    for k, col in enumerate(keys):  # fg and bg draw with seeds seed and seed + 1
        names = index[col].astype(str)
        sides[col] = names.map(_assign_groups(names.tolist(), val_fraction, test_fraction, seed + k))
    first = sides[keys[0]]
    agree = np.logical_and.reduce([sides[c] == first for c in keys])  # fg_and_bg: both sources on one side
    out: dict = {"group_by": group_by, "unseen": UNSEEN[group_by]}
    for side in SIDES:
        out[side] = index.loc[agree & (first == side), "sample"].astype(int).tolist()
    for col in ("fg", "bg"):
        for side in ("val", "test"):
            out[f"{side}_{col}"] = sorted(index.loc[sides[col] == side, col].unique().tolist()) if col in sides else []
    out["sizes"] = {side: len(out[side]) for side in SIDES}
    out["sizes"]["unused"] = len(index) - sum(out["sizes"].values())
    return out
