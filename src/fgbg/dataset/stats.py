"""Per-channel mean and std of bg, fg_bg, mask and depth over the train split.

Only the train split counts: val and test stand for data the model has never seen, so
nothing about them, their normalisation included, may shape the model.

Values are in [0, 1] (images / 255, mask 0 or 1, depth as stored). `compose` records, for
each sample, the exact sums and sums of squares of its stored fg_bg (integers), mask
and depth (float64); here they are added up, so the statistics are exact and take one
pass over the index, never over the images. bg counts once per placement, as the
trainer sees it. `RunningMoments` adds up such sums and turns them into mean and std.
"""

from __future__ import annotations

import numpy as np

from fgbg.dataset.store import ComposedStore


class RunningMoments:
    """Exact per-channel mean/std from added sums (float64)."""

    def __init__(self, channels: int) -> None:
        self.n = 0
        self.sums = np.zeros(channels)
        self.squares = np.zeros(channels)

    def add_sums(self, n: int, sums: np.ndarray, squares: np.ndarray) -> None:
        """`n` values per channel, their sums and their sums of squares (each C)."""
        self.n += n
        self.sums += sums
        self.squares += squares

    def result(self) -> dict[str, list[float]]:
        mean = self.sums / self.n
        var = np.maximum(self.squares / self.n - mean**2, 0.0)
        return {"mean": mean.tolist(), "std": np.sqrt(var).tolist()}


def dataset_stats(dataset: ComposedStore, ids: list[int] | None = None) -> dict:
    """{kind: {"mean": [...], "std": [...]}} for bg, fg_bg, mask, depth over samples `ids` (all by
    default), and the sample count."""
    idx = dataset.index if ids is None else dataset.index.iloc[list(ids)]
    pixels = int(dataset.bg.shape[1] * dataset.bg.shape[2])
    n = len(idx)
    counts = np.bincount(idx["bg_idx"].to_numpy(), minlength=len(dataset.bg)).astype(np.float64)
    bg = np.asarray(dataset.bg).reshape(len(dataset.bg), -1, 3).astype(np.float64) / 255.0
    acc = {"bg": RunningMoments(3), "fg_bg": RunningMoments(3), "mask": RunningMoments(1), "depth": RunningMoments(1)}
    acc["bg"].add_sums(int(counts.sum()) * pixels, counts @ bg.sum(1), counts @ np.square(bg).sum(1))
    rgb = idx[["fg_bg_sum_r", "fg_bg_sum_g", "fg_bg_sum_b"]].to_numpy(np.int64).sum(0)
    rgb_sq = idx[["fg_bg_sq_r", "fg_bg_sq_g", "fg_bg_sq_b"]].to_numpy(np.int64).sum(0)
    acc["fg_bg"].add_sums(n * pixels, rgb / 255.0, rgb_sq / 255.0**2)
    mask_pixels = float(idx["mask_sum"].to_numpy(np.int64).sum())  # 0 or 1 each: its own square
    acc["mask"].add_sums(n * pixels, np.array([mask_pixels]), np.array([mask_pixels]))
    acc["depth"].add_sums(n * pixels, np.array([idx["depth_sum"].sum()]), np.array([idx["depth_sq"].sum()]))
    out = {k: v.result() for k, v in acc.items()}
    out["samples"] = n
    return out
