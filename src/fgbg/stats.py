"""Per-channel mean and std of bg, fg_bg, mask and depth, streamed over the dataset.

Values are in [0, 1] (images / 255, mask 0 or 1, depth as stored). Sums and sums of
squares accumulate in float64 one sample at a time, so memory does not grow with the
dataset. bg counts once per placement, as the trainer sees it.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from fgbg.store import Dataset


class RunningMoments:
    """Exact per-channel mean/std from streamed batches (float64 sums)."""

    def __init__(self, channels: int) -> None:
        self.n = 0
        self.s = np.zeros(channels)
        self.ss = np.zeros(channels)

    def add(self, x: np.ndarray, weight: int = 1) -> None:
        """x: H, W, C (or H, W for one channel), values in [0, 1]."""
        x = x.reshape(-1, self.s.shape[0]).astype(np.float64)
        self.n += weight * x.shape[0]
        self.s += weight * x.sum(axis=0)
        self.ss += weight * np.square(x).sum(axis=0)

    def result(self) -> dict[str, list[float]]:
        mean = self.s / self.n
        var = np.maximum(self.ss / self.n - mean**2, 0.0)
        return {"mean": mean.tolist(), "std": np.sqrt(var).tolist()}


def dataset_stats(dataset: Dataset) -> dict[str, dict[str, list[float]]]:
    """{kind: {"mean": [...], "std": [...]}} for bg, fg_bg, mask, depth."""
    acc = {"bg": RunningMoments(3), "fg_bg": RunningMoments(3), "mask": RunningMoments(1), "depth": RunningMoments(1)}
    counts = dataset.index["bg_idx"].value_counts()
    for bg_idx, n in counts.items():  # each bg weighted by how many placements use it
        acc["bg"].add(np.asarray(dataset.bg[bg_idx]) / 255.0, weight=int(n))
    for i in tqdm(range(len(dataset)), desc="stats", unit="sample"):
        _, fg_bg, mask, depth = dataset.read(i)
        acc["fg_bg"].add(fg_bg / 255.0)
        acc["mask"].add(mask.astype(np.float64))
        acc["depth"].add(depth)
    out = {k: v.result() for k, v in acc.items()}
    out["samples"] = len(dataset)
    return out
