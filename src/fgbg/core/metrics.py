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
Matte heads, the alpha (pred and target in [0, 1]; Rhemann et al. 2009, alphamatting.com), each
over the whole image (no trimap: the object's outline is wherever the target says):
  sad = sum |p - t| / 1000; mse = mean (p - t)^2;
  grad = sum (|grad p| - |grad t|)^2 / 1000, the gradients by first-order Gaussian derivative
  filters, sigma 1.4, each 2-D filter scaled to unit L2 norm (edges padded by replication);
  conn = sum |phi(p) - phi(t)| / 1000, with phi = 1 - d [d >= 0.15], d = alpha - l, and l the
  highest threshold k / 10 up to which the pixel stays in the largest 4-connected region where
  both p and t >= the threshold (1 where it always does).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ssim as _ssim
from scipy import ndimage

from fgbg.core.heads import KIND_METRICS

DEPTH_EPS = 1e-3
MASK_KEYS = KIND_METRICS["binary"]  # what mask_metrics returns: the metrics of a binary head
DEPTH_KEYS = KIND_METRICS["unit"]  # what depth_metrics returns: the metrics of a unit head
GRAD_SIGMA = 1.4  # of the Gaussian derivative filters of the matting Grad error
CONN_STEP = 10  # thresholds k / 10 of the connectivity error
CONN_THETA = 0.15  # below this, a pixel's distance from its connected level does not count


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


def matte_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """pred, target: N, 1, H, W alphas in [0, 1]."""
    pred, target = pred.double(), target.double()
    err = pred - target
    conn = [connectivity_error(p[0].cpu().numpy(), t[0].cpu().numpy()) for p, t in zip(pred, target)]
    return {
        "sad": err.abs().sum(dim=(1, 2, 3)) / 1000,
        "mse": (err**2).mean(dim=(1, 2, 3)),
        "grad": ((gradient_magnitude(pred) - gradient_magnitude(target)) ** 2).sum(dim=(1, 2, 3)) / 1000,
        "conn": torch.tensor(conn, dtype=torch.float64, device=pred.device),
    }


def gaussian_derivative_filters(sigma: float = GRAD_SIGMA) -> torch.Tensor:
    """2, 1, K, K float64: d/dx and d/dy of a Gaussian (K = 2 ceil(3 sigma) + 1), each of unit L2 norm."""
    g, dg = _gaussian_pair(sigma)
    dx = g[:, None] * dg[None, :]  # rows: y, columns: x
    return torch.stack([dx, dx.T])[:, None]


def _gaussian_pair(sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The 1-D factors of the derivative filters, a Gaussian and its derivative, each of unit L2 norm
    (so their outer product, the 2-D filter, is too)."""
    r = int(np.ceil(3 * sigma))
    u = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-(u**2) / (2 * sigma**2))
    dg = -u / sigma**2 * g
    return g / g.norm(), dg / dg.norm()


def gradient_magnitude(alpha: torch.Tensor, sigma: float = GRAD_SIGMA) -> torch.Tensor:
    """N, 1, H, W -> N, 1, H, W: |grad alpha| by the Gaussian derivative filters, edges replicated. Each
    filter is separable, so it runs as two 1-D passes, in float32: an 11 x 11 float64 convolution costs
    about 50 ms an image on a CPU core, which validation would pay every epoch."""
    g, dg = (k.to(device=alpha.device, dtype=torch.float32) for k in _gaussian_pair(sigma))
    r = len(g) // 2
    padded = F.pad(alpha.float(), (r, r, r, r), mode="replicate")

    def along(x: torch.Tensor, kernel: torch.Tensor, axis: int) -> torch.Tensor:
        shape = (1, 1, len(kernel), 1) if axis == 0 else (1, 1, 1, len(kernel))
        return F.conv2d(x, kernel.view(shape))

    gx = along(along(padded, g, 0), dg, 1)  # smooth down the rows, differentiate along them
    gy = along(along(padded, dg, 0), g, 1)
    return (gx.square() + gy.square()).sqrt().to(alpha.dtype)


def connectivity_error(pred: np.ndarray, target: np.ndarray) -> float:
    """H, W alphas in [0, 1] -> the connectivity error (module doc), over the box around the pixels where either
    alpha reaches the first threshold, 1 / CONN_STEP. Outside it no pixel is in any region, so l = 0 there and
    d = alpha < CONN_THETA: phi is 1 for both, and adds nothing. An object of a quarter of the image costs a
    quarter of the labelling."""
    rows, cols = np.nonzero((pred >= 1 / CONN_STEP) | (target >= 1 / CONN_STEP))
    if len(rows) == 0:
        return 0.0
    box = np.s_[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return _connectivity(pred[box], target[box])


def _connectivity(pred: np.ndarray, target: np.ndarray) -> float:
    """H, W alphas in [0, 1] -> the connectivity error (module doc) over every pixel."""
    level = np.full(pred.shape, np.nan)  # l: unset until the pixel leaves the largest region
    for k in range(1, CONN_STEP + 1):
        t = k / CONN_STEP
        labels, n = ndimage.label((pred >= t) & (target >= t))  # 4-connected
        largest = labels == 1 + np.argmax(np.bincount(labels.ravel())[1:]) if n else np.zeros(pred.shape, bool)
        level[np.isnan(level) & ~largest] = (k - 1) / CONN_STEP
    level[np.isnan(level)] = 1.0

    def phi(alpha: np.ndarray) -> np.ndarray:
        d = alpha - level
        return 1 - d * (d >= CONN_THETA)

    return float(np.abs(phi(pred) - phi(target)).sum() / 1000)
