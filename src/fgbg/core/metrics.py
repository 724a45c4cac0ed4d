"""Metrics per image (each returns a tensor of N values); average them for a report.

Binary heads, the mask (prediction = logits > 0, i.e. probability > 0.5):
  iou = |P & T| / |P | T|, dice = 2 |P & T| / (|P| + |T|), both 1 when P and T are empty;
  pixel_acc = share of pixels where P == T;
  precision = |P & T| / |P| (1 when P is empty), recall = |P & T| / |T| (1 when T is empty).
Unit heads, depth (pred and target in [0, 1]):
  rmse, mae; abs_rel = mean |p - t| / t, sq_rel = mean (p - t)^2 / t, and delta1, delta2,
  delta3 = share with max(p/t, t/p) < 1.25, 1.25^2, 1.25^3, with p and t clamped to at
  least DEPTH_EPS so that depth 0 (nearest) stays finite; ssim (Gaussian window 11,
  sigma 1.5, data range 1).
"""

from __future__ import annotations

import torch
from pytorch_msssim import ssim as _ssim

from fgbg.core.heads import KIND_METRICS

DEPTH_EPS = 1e-3
MASK_KEYS = KIND_METRICS["binary"]  # what mask_metrics returns: the metrics of a binary head
DEPTH_KEYS = KIND_METRICS["unit"]  # what depth_metrics returns: the metrics of a unit head


def ssim_window(h: int, w: int) -> int:
    """The SSIM window: 11 as usual, shrunk to the largest odd size that fits tiny images."""
    win = min(11, h, w)
    return win if win % 2 == 1 else win - 1


def mask_metrics(logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """logits, target: N, 1, H, W (target 0/1)."""
    p = logits > 0
    t = target > 0.5
    inter = (p & t).sum(dim=(1, 2, 3)).double()
    union = (p | t).sum(dim=(1, 2, 3)).double()
    total = p.sum(dim=(1, 2, 3)).double() + t.sum(dim=(1, 2, 3)).double()
    n_p = p.sum(dim=(1, 2, 3)).double()
    n_t = t.sum(dim=(1, 2, 3)).double()
    ones = torch.ones_like(inter)
    return {
        "iou": torch.where(union > 0, inter / union.clamp(min=1), ones),
        "dice": torch.where(total > 0, 2 * inter / total.clamp(min=1), ones),
        "pixel_acc": (p == t).double().mean(dim=(1, 2, 3)),
        "precision": torch.where(n_p > 0, inter / n_p.clamp(min=1), ones),
        "recall": torch.where(n_t > 0, inter / n_t.clamp(min=1), ones),
    }


def depth_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """pred, target: N, 1, H, W in [0, 1]."""
    pred, target = pred.double(), target.double()
    err = pred - target
    p, t = pred.clamp(min=DEPTH_EPS), target.clamp(min=DEPTH_EPS)
    win = ssim_window(*pred.shape[-2:])
    ratio = torch.maximum(p / t, t / p)
    return {
        "rmse": torch.sqrt((err**2).mean(dim=(1, 2, 3))),
        "mae": err.abs().mean(dim=(1, 2, 3)),
        "abs_rel": ((p - t).abs() / t).mean(dim=(1, 2, 3)),
        "sq_rel": ((p - t) ** 2 / t).mean(dim=(1, 2, 3)),
        "delta1": (ratio < 1.25).double().mean(dim=(1, 2, 3)),
        "delta2": (ratio < 1.25**2).double().mean(dim=(1, 2, 3)),
        "delta3": (ratio < 1.25**3).double().mean(dim=(1, 2, 3)),
        "ssim": _ssim(pred.float(), target.float(), data_range=1.0, win_size=win, size_average=False).double(),
    }
