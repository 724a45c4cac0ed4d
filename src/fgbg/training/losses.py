"""Losses per head, chosen by name with weights in params.yaml (`heads.<head>.losses`).

Each loss takes (pred, target), both N, 1, H, W, with `pred` the head's probability
(fgbg.core.contract.HeadKind.probability): sigmoid(logits) for a binary head such as the
mask, the output itself for a unit head such as depth; `bce` takes a binary head's logits
(numerically stable).

A head's `measured_only` losses are taken only on the samples whose bg depth is a measured
map, not the ground-plane prior (`on_measured`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch_msssim import ssim as _ssim

from fgbg.core.contract import kind_of
from fgbg.core.errors import ChoiceError
from fgbg.core.heads import LOGIT_LOSSES, MEASURABLE
from fgbg.core.metrics import DEPTH_EPS, ssim_window
from fgbg.core.registry import Registry

LOSSES: Registry = Registry("loss")


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


@LOSSES.register("log_l1")
def log_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean |log p - log t|, both clamped to at least DEPTH_EPS as the metrics do: the error relative to the
    depth itself, which delta1 (|log p/t| < log 1.25) and abs_rel measure, where an L1 lets near pixels go."""
    return (pred.clamp(min=DEPTH_EPS).log() - target.clamp(min=DEPTH_EPS).log()).abs().mean()


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


SOBEL = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]) / 8  # d/dx; its transpose d/dy


@LOSSES.register("sobel")
def sobel(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the Sobel gradients of pred and target, each of the x and y components (edges
    replicated): sharp, well-placed edges. BackgroundMattingV2 trains its alpha with the L1 of
    the gradient magnitudes; the components also penalise an edge turned the wrong way."""
    filters = torch.stack([SOBEL, SOBEL.T])[:, None].to(pred)  # 2, 1, 3, 3
    def g(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), filters)

    return (g(pred) - g(target)).abs().mean()


def on_measured(loss, pred: torch.Tensor, target: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
    """`loss` of the samples whose `measured` (N, 1, 1, 1) is 1, each prior sample counting 0, over all N.

    The prior's samples get their target as the prediction, so their error is 0 and they pass no
    gradient. Each sample keeps the weight 1 / N it has in any loss, so the batch's value is the mean
    of its micro-batches' (a batch split after an out-of-memory error), of its ranks' under DDP, and
    of an epoch's batches, as for every other loss; on data where a share s of the samples is measured
    the loss weighs s times its weight. Exact for a loss that averages, over samples, an error that
    is 0 where pred equals target (MEASURABLE; rmse adds 1e-6 per prior sample), and it keeps the
    batch's shape: no host-device sync, as boolean indexing would need."""
    return loss(torch.where(measured.bool(), pred, target), target)


class HeadLoss:
    """Weighted sum of named losses for one head; those in `measured_only` on measured depth only."""

    def __init__(self, head: str, weights: dict[str, float], measured_only: tuple[str, ...] = ()) -> None:
        self.kind = kind_of(head)
        for name in weights:
            LOSSES.get(name, f"heads.{head}.losses")
            if name in LOGIT_LOSSES and not self.kind.binary:
                raise ChoiceError(f"params: heads.{head}.losses: {name!r} needs logits and only suits a binary head "
                                  "such as the mask")
        for name in measured_only:
            if name not in weights or name not in MEASURABLE:
                raise ChoiceError(f"params: heads.{head}.measured_only: {name!r} must be one of the head's losses and "
                                  f"one of {', '.join(MEASURABLE)}")
        self.head = head
        self.weights = dict(weights)
        self.measured_only = tuple(measured_only)

    def __call__(self, output: torch.Tensor, target: torch.Tensor,
                 measured: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """output: the head's, N, 1, H, W; measured: N, 1, 1, 1 (fgbg.dataset.data.MEASURED), needed
        when the head has `measured_only` losses. Returns (weighted total, {<head>_<loss>: detached
        0-d tensor}).

        The terms stay tensors on the device: turning them into Python floats would make the
        host wait for the device at every step."""
        if self.measured_only and measured is None:
            raise ValueError(f"heads.{self.head}.measured_only needs the batch's MEASURED target")
        prob = self.kind.probability(output)
        total = output.new_zeros((), dtype=torch.float32)
        terms = {}
        for name, w in self.weights.items():
            loss, pred = LOSSES.get(name), output if name in LOGIT_LOSSES else prob
            value = on_measured(loss, pred, target, measured) if name in self.measured_only else loss(pred, target)
            terms[f"{self.head}_{name}"] = value.detach()
            total = total + w * value.float()
        return total, terms
