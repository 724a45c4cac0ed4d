"""Optimisers and learning-rate schedulers, chosen by name in params.yaml."""

from __future__ import annotations

import torch

from fgbg.core.config import Params
from fgbg.core.registry import Registry
from fgbg.core.runtime import autocast_dtype

OPTIMIZERS: Registry = Registry("optimizer")
SCHEDULERS: Registry = Registry("scheduler")


@OPTIMIZERS.register("adam")
def _adam(model_params, p: Params, fused: bool | None) -> torch.optim.Optimizer:
    return torch.optim.Adam(model_params, lr=p.lr, weight_decay=p.train.weight_decay, fused=fused)


@OPTIMIZERS.register("adamw")
def _adamw(model_params, p: Params, fused: bool | None) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model_params, lr=p.lr, weight_decay=p.train.weight_decay, fused=fused)


@OPTIMIZERS.register("sgd")
def _sgd(model_params, p: Params, fused: bool | None) -> torch.optim.Optimizer:
    return torch.optim.SGD(model_params, lr=p.lr, momentum=p.train.momentum, weight_decay=p.train.weight_decay,
                           fused=fused)


@SCHEDULERS.register("plateau")
def _plateau(opt, p: Params, steps_per_epoch: int):
    """Stepped once per epoch with the validation loss."""
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=p.train.plateau_factor, patience=p.train.plateau_patience,
        threshold=p.train.plateau_threshold,
    )


@SCHEDULERS.register("onecycle")
def _onecycle(opt, p: Params, steps_per_epoch: int):
    """Stepped every batch; peaks at `lr`."""
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=p.lr, total_steps=p.epochs * steps_per_epoch)


@SCHEDULERS.register("cosine")
def _cosine(opt, p: Params, steps_per_epoch: int):
    """Stepped every batch, from `lr` down to 0."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=p.epochs * steps_per_epoch)


@SCHEDULERS.register("none")
def _none(opt, p: Params, steps_per_epoch: int):
    return None


def build_optimizer(model: torch.nn.Module, p: Params) -> torch.optim.Optimizer:
    """`train.optimizer` over the model's parameters, on the device they are on. Under fp16 (a
    GradScaler) it is torch's fused optimizer: its step takes the scaler's found-inf flag on the
    device, where an unfused step makes the scaler read the flag back, a host-device sync per step."""
    fp16 = autocast_dtype(p.train.precision, next(model.parameters()).device) == torch.float16
    return OPTIMIZERS.get(p.train.optimizer, "train.optimizer")(model.parameters(), p, fused=fp16 or None)


def build_scheduler(opt: torch.optim.Optimizer, p: Params, steps_per_epoch: int):
    return SCHEDULERS.get(p.train.scheduler, "train.scheduler")(opt, p, steps_per_epoch)
