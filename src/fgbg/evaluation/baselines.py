"""Trivial baselines: what needs no model. Every reported figure stands beside them.

- mask: |fg_bg - bg| > t, where the difference is the largest over the three channels
  (0-255) and t is the threshold with the best mean IoU on the val split;
- depth: the bg depth itself, as if the object were not there;
- alpha: the difference mask used as an alpha (0 or 1: no soft edge).
A head with no baseline here is reported without one.
"""

from __future__ import annotations

import numpy as np

LEVELS = 256  # possible differences of uint8 images: 0 .. 255


def difference(bg: np.ndarray, fg_bg: np.ndarray) -> np.ndarray:
    """H, W, 3 uint8 each -> H, W uint8: the largest absolute channel difference."""
    return np.abs(fg_bg.astype(np.int16) - bg.astype(np.int16)).max(axis=2).astype(np.uint8)


def iou_per_threshold(diff: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """IoU of (diff > t) against `mask` for every t in 0 .. 255, from two histograms.

    diff: H, W uint8; mask: H, W bool. Returns 256 floats; an empty prediction against an
    empty mask scores 1, as in fgbg.core.metrics.
    """
    above_all = _count_above(diff.ravel())  # |P| for each t
    above_obj = _count_above(diff[mask])  # |P & T| for each t
    union = above_all + mask.sum() - above_obj
    return np.where(union > 0, above_obj / np.maximum(union, 1), 1.0)


def _count_above(values: np.ndarray) -> np.ndarray:
    """For each t in 0 .. 255, how many values exceed t."""
    hist = np.bincount(values, minlength=LEVELS)
    return hist.sum() - np.cumsum(hist)


def choose_threshold(pairs) -> int:
    """The t with the best mean IoU over (diff, mask) pairs; the smallest such t on a tie."""
    total = np.zeros(LEVELS)
    n = 0
    for diff, mask in pairs:
        total += iou_per_threshold(diff, mask)
        n += 1
    if n == 0:
        raise ValueError("no samples to choose the difference threshold on")
    return int(np.argmax(total / n))


def baseline_answers(diff: np.ndarray, threshold: int | None, bg_depth: np.ndarray | None) -> dict:
    """{head: the baseline's answer}, as a model's would be (fgbg.core.contract.HeadKind.answer), from a pair's
    `difference`: the mask as H, W bool and the alpha as its 0 / 1 (where a threshold was chosen), depth as
    H, W in [0, 1] (where the bg depth is known)."""
    answers = {"mask": diff > threshold, "alpha": (diff > threshold).astype(np.float32)} if threshold is not None else {}
    if bg_depth is not None:
        answers["depth"] = bg_depth
    return answers
