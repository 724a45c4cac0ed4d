"""Losses per head, chosen by name with weights in params.yaml.

Each loss takes (pred, target), both N, 1, H, W. For the mask head `pred` is the
probability sigmoid(logits), except for `bce`, which takes the logits (numerically
stable). For the depth head `pred` is the predicted depth in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch_msssim import ssim as _ssim

from fgbg.core.errors import ChoiceError
from fgbg.core.metrics import ssim_window
from fgbg.core.registry import Registry

LOSSES: Registry = Registry("loss")
TAKES_LOGITS = {"bce"}


@LOSSES.register("bce")
def bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, target)


@LOSSES.register("dice")
def dice(prob: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - (2 |P.T| + eps) / (|P| + |T| + eps), per image, averaged (soft Dice, smoothed)."""
    inter = (prob * target).sum(dim=(1, 2, 3))
    total = prob.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3))
    return (1 - (2 * inter + eps) / (total + eps)).mean()


@LOSSES.register("l1")
def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target).abs().mean()


@LOSSES.register("rmse")
def rmse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Root of the per-image mean squared error, averaged over images."""
    return torch.sqrt(((pred - target) ** 2).mean(dim=(1, 2, 3)) + 1e-12).mean()


@LOSSES.register("ssim")
def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - SSIM (Gaussian window 11, sigma 1.5, data range 1)."""
    win = ssim_window(*pred.shape[-2:])
    return 1 - _ssim(pred.float(), target.float(), data_range=1.0, win_size=win, size_average=True)


@LOSSES.register("grad")
def grad(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the horizontal and vertical finite differences (edges) of pred and target."""
    def d(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]

    (px, py), (tx, ty) = d(pred), d(target)
    return (px - tx).abs().mean() + (py - ty).abs().mean()


class HeadLoss:
    """Weighted sum of named losses for one head ("mask" or "depth")."""

    def __init__(self, head: str, weights: dict[str, float]) -> None:
        for name in weights:
            LOSSES.get(name, f"train.{head}_loss")
            if name in TAKES_LOGITS and head != "mask":
                raise ChoiceError(f"params: train.{head}_loss: {name!r} needs logits and only suits the mask head")
        self.head = head
        self.weights = dict(weights)

    def __call__(self, raw: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """raw: mask logits or depth, N, 1, H, W. Returns (weighted total, {term: detached 0-d tensor}).

        The terms stay tensors on the device: turning them into Python floats would make the
        host wait for the device at every step."""
        prob = torch.sigmoid(raw) if self.head == "mask" else raw
        total = raw.new_zeros((), dtype=torch.float32)
        terms = {}
        for name, w in self.weights.items():
            value = LOSSES.get(name)(raw if name in TAKES_LOGITS else prob, target)
            terms[f"{self.head}_{name}"] = value.detach()
            total = total + w * value.float()
        return total, terms
