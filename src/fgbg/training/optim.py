"""Optimisers and learning-rate schedulers, chosen by name in params.yaml."""

from __future__ import annotations

import torch

from fgbg.core.config import Params
from fgbg.core.registry import Registry
from fgbg.core.runtime import autocast_dtype

OPTIMIZERS: Registry = Registry("optimizer")
SCHEDULERS: Registry = Registry("scheduler")


@OPTIMIZERS.register("adam")
def _adam(model_params, params: Params, fused: bool | None) -> torch.optim.Optimizer:
    return torch.optim.Adam(model_params, lr=params.lr, weight_decay=params.train.weight_decay, fused=fused)


@OPTIMIZERS.register("adamw")
def _adamw(model_params, params: Params, fused: bool | None) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model_params, lr=params.lr, weight_decay=params.train.weight_decay, fused=fused)


@OPTIMIZERS.register("sgd")
def _sgd(model_params, params: Params, fused: bool | None) -> torch.optim.Optimizer:
    return torch.optim.SGD(model_params, lr=params.lr, momentum=params.train.momentum, weight_decay=params.train.weight_decay,
                           fused=fused)


@SCHEDULERS.register("plateau")
def _plateau(opt, params: Params, total_steps: int):
    """Stepped once per epoch with the validation loss."""
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=params.train.plateau_factor, patience=params.train.plateau_patience,
        threshold=params.train.plateau_threshold,
    )


@SCHEDULERS.register("onecycle")
def _onecycle(opt, params: Params, total_steps: int):
    """Stepped every batch; peaks at `lr`."""
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=params.lr, total_steps=total_steps)


@SCHEDULERS.register("cosine")
def _cosine(opt, params: Params, total_steps: int):
    """Stepped every batch, from `lr` down to 0."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)


@SCHEDULERS.register("none")
def _none(opt, params: Params, total_steps: int):
    return None


def build_optimizer(model: torch.nn.Module, params: Params) -> torch.optim.Optimizer:
    """`train.optimizer` over the model's parameters, on the device they are on. Under fp16 (a
    GradScaler) it is torch's fused optimizer: its step takes the scaler's found-inf flag on the
    device, where an unfused step makes the scaler read the flag back, a host-device sync per step."""
    fp16 = autocast_dtype(params.train.precision, next(model.parameters()).device) == torch.float16
    return OPTIMIZERS.get(params.train.optimizer, "train.optimizer")(model.parameters(), params, fused=fp16 or None)


def build_scheduler(opt: torch.optim.Optimizer, params: Params, total_steps: int):
    """`train.scheduler` over a run of `total_steps` optimiser steps (where a per-batch schedule ends)."""
    return SCHEDULERS.get(params.train.scheduler, "train.scheduler")(opt, params, total_steps)
