"""Train/validation split, grouped so validation measures generalisation.

- `sample`: placements at random (leaks every source into both sides; for comparison only);
- `fg`: whole foregrounds go to validation (unseen objects);
- `bg`: whole backgrounds go to validation (unseen scenes);
- `fg_and_bg`: validation holds unseen fg on unseen bg; placements that mix a validation
  source with a training one are left out of both sides.
The groups are shuffled with `seed` and the first round(val_fraction * n) go to validation
(at least one, and at least one left for training).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fgbg.errors import InputError


def _val_groups(names: list[str], val_fraction: float, seed: int) -> set[str]:
    unique = sorted(set(names))
    if len(unique) < 2:
        raise InputError(f"cannot split {len(unique)} group(s) into train and val; add sources or use split.group_by: sample")
    n_val = min(max(1, round(val_fraction * len(unique))), len(unique) - 1)
    order = np.random.default_rng(seed).permutation(len(unique))
    return {unique[i] for i in order[:n_val]}


def split_index(index: pd.DataFrame, *, group_by: str, val_fraction: float, seed: int) -> dict:
    """{"train": [sample ids], "val": [...], "group_by", "val_fg", "val_bg", "sizes"}."""
    val_fg: set[str] = set()
    val_bg: set[str] = set()
    if group_by == "sample":
        ids = index["sample"].astype(str)
        val = ids.isin(_val_groups(ids.tolist(), val_fraction, seed))
        train = ~val
    elif group_by in ("fg", "bg", "fg_and_bg"):
        if group_by in ("fg", "fg_and_bg"):
            val_fg = _val_groups(index["fg"].tolist(), val_fraction, seed)
        if group_by in ("bg", "fg_and_bg"):
            val_bg = _val_groups(index["bg"].tolist(), val_fraction, seed + 1)
        in_fg, in_bg = index["fg"].isin(val_fg), index["bg"].isin(val_bg)
        if group_by == "fg":
            val, train = in_fg, ~in_fg
        elif group_by == "bg":
            val, train = in_bg, ~in_bg
        else:
            val, train = in_fg & in_bg, ~in_fg & ~in_bg
    else:
        raise InputError(f"split.group_by = {group_by!r}; valid: sample, fg, bg, fg_and_bg")
    out = {
        "group_by": group_by,
        "train": index.loc[train, "sample"].astype(int).tolist(),
        "val": index.loc[val, "sample"].astype(int).tolist(),
        "val_fg": sorted(val_fg),
        "val_bg": sorted(val_bg),
    }
    out["sizes"] = {"train": len(out["train"]), "val": len(out["val"]), "unused": len(index) - len(out["train"]) - len(out["val"])}
    return out
