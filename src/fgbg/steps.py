"""One training or validation pass: precision, resizing, micro-batches, OOM and NaN handling.

- Precision: `auto` is bf16 autocast on CUDA (fp16 with a GradScaler where bf16 is not
  supported) and fp32 on CPU; `bf16` also runs on CPU.
- Progressive resizing: a train batch is resized on the device to the epoch's size
  (inputs bilinear, mask by area then > 0.5, depth by area).
- CUDA out of memory: the step is retried in twice as many micro-batches (gradient
  accumulation keeps the effective batch), and the run goes on with that split.
- A NaN or inf loss stops the run with the epoch, step and loss terms.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import defaultdict
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fgbg.config import Params
from fgbg.losses import HeadLoss
from fgbg.metrics import depth_metrics, mask_metrics
from fgbg.progress import progress
from fgbg.runtime import autocast_dtype, forward, upsample_like

log = logging.getLogger(__name__)


def resize_targets(mask, depth, size: int):
    """N, 1, H, W targets to size x size: mask by area then > 0.5, depth by area."""
    if mask.shape[-2:] == (size, size):
        return mask, depth
    mask = (F.interpolate(mask, size=(size, size), mode="area") > 0.5).float()
    return mask, F.interpolate(depth, size=(size, size), mode="area")


def resize_batch(x, mask, depth, size: int):
    """A batch to size x size: inputs bilinear (antialiased), targets as `resize_targets`."""
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return (x, *resize_targets(mask, depth, size))


@dataclass
class StepState:
    """Carried across steps: how many micro-batches a batch is split into."""

    accum: int = 1


class Heads:
    """The two heads' losses, and the forward pass under autocast."""

    def __init__(self, p: Params, device: torch.device) -> None:
        self.mask_loss = HeadLoss("mask", p.train.mask_loss)
        self.depth_loss = HeadLoss("depth", p.train.depth_loss)
        self.device = device
        self.dtype = autocast_dtype(p.train.precision, device)
        self.channels_last = p.train.channels_last

    def to_device(self, x, mask, depth):
        x = x.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, mask.to(self.device, non_blocking=True), depth.to(self.device, non_blocking=True)

    def forward(self, model, x, mask, depth):
        """(mask logits, depth, loss, {term: value}); targets are pooled to a half-size output."""
        logits, depth_pred = forward(model, x, self.dtype)  # N, 1, h, w each
        mask, depth = resize_targets(mask, depth, logits.shape[-1])
        lm, terms = self.mask_loss(logits, mask)
        ld, dterms = self.depth_loss(depth_pred, depth)
        return logits, depth_pred, lm + ld, {**terms, **dterms}


def _check_finite(loss: torch.Tensor, terms: dict, epoch: int, step: int, phase: str) -> float:
    value = float(loss.detach())
    if not math.isfinite(value):
        raise FloatingPointError(
            f"loss is {value} at epoch {epoch}, step {step} ({phase}); terms: {terms}. "
            "The last good checkpoint is kept; lower lr, set train.grad_clip, or change the loss weights"
        )
    return value


def train_step(model, batch, heads: Heads, opt, scaler, state: StepState, grad_clip: float, epoch: int, step: int):
    """One optimiser step over `batch`, split into `state.accum` micro-batches; (loss, terms)."""
    x, mask, depth = batch
    n = x.shape[0]
    while True:
        try:
            opt.zero_grad(set_to_none=True)
            total, terms_sum = 0.0, defaultdict(float)
            chunks = list(zip(x.tensor_split(state.accum), mask.tensor_split(state.accum), depth.tensor_split(state.accum)))
            chunks = [c for c in chunks if c[0].shape[0]]
            for i, (xc, mc, dc) in enumerate(chunks):
                sync = contextlib.nullcontext() if i == len(chunks) - 1 or not hasattr(model, "no_sync") else model.no_sync()
                with sync:
                    _, _, loss, terms = heads.forward(model, xc, mc, dc)
                    value = _check_finite(loss, terms, epoch, step, "train")
                    scaler.scale(loss * (xc.shape[0] / n)).backward()
                total += value * xc.shape[0] / n
                for k, v in terms.items():
                    terms_sum[k] += v * xc.shape[0] / n
            if grad_clip:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(opt)
            scaler.update()
            return total, dict(terms_sum)
        except torch.cuda.OutOfMemoryError:
            if state.accum >= n:
                raise
            state.accum *= 2
            opt.zero_grad(set_to_none=True)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            log.warning("CUDA out of memory at epoch %d, step %d: splitting each batch of %d into %d micro-batches "
                        "(gradient accumulation keeps the effective batch)", epoch, step, n, state.accum)


def train_epoch(model, loader, heads: Heads, opt, scaler, state: StepState, p: Params, epoch: int, size: int,
                batch_scheduler=None, show: bool = True) -> dict[str, float]:
    """Sums of loss terms (times samples) and the sample count "n" over one training pass."""
    model.train()
    sums: dict[str, float] = defaultdict(float)
    for step, batch in enumerate(progress(loader, desc=f"epoch {epoch} train", unit="batch", leave=False, disable=not show)):
        x, mask, depth = resize_batch(*heads.to_device(*batch), size)
        loss, terms = train_step(model, (x, mask, depth), heads, opt, scaler, state, p.train.grad_clip, epoch, step)
        if batch_scheduler is not None:
            batch_scheduler.step()
        bs = x.shape[0]
        sums["n"] += bs
        sums["loss"] += loss * bs
        for k, v in terms.items():
            sums[k] += v * bs
    return dict(sums)


@torch.no_grad()
def validate(model, loader, heads: Heads, epoch: int, show: bool = True) -> dict[str, float]:
    """Sums of loss terms and per-image metrics (at full resolution) and the count "n"."""
    model.eval()
    sums: dict[str, float] = defaultdict(float)
    for step, batch in enumerate(progress(loader, desc=f"epoch {epoch} val", unit="batch", leave=False, disable=not show)):
        x, mask, depth = heads.to_device(*batch)
        logits, depth_pred, loss, terms = heads.forward(model, x, mask, depth)
        _check_finite(loss, terms, epoch, step, "val")
        bs = x.shape[0]
        sums["n"] += bs
        sums["loss"] += float(loss) * bs
        for k, v in terms.items():
            sums[k] += v * bs
        metrics = {**mask_metrics(upsample_like(logits, mask), mask), **depth_metrics(upsample_like(depth_pred, depth), depth)}
        for k, v in metrics.items():
            sums[k] += float(v.sum())
    return dict(sums)
