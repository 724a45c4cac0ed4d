"""Training: the UNet on the train split, validated on the grouped val split every epoch.

Per epoch it logs train/val losses and metrics, the learning rate, epoch time and
samples/s to DVCLive, writes `last.pt`, and `best.pt` when the val loss improves.
A NaN or inf loss stops the run with the step and the loss terms; the last good
checkpoint stays. On CUDA it uses bf16 autocast, channels-last and cudnn benchmark mode.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from dvclive import Live
from tqdm import tqdm

from fgbg.checkpoint import save_checkpoint
from fgbg.config import Params
from fgbg.data import PairDataset
from fgbg.imageio import atomic_write_json
from fgbg.losses import HeadLoss
from fgbg.metrics import depth_metrics, mask_metrics
from fgbg.model import build_model, count_parameters
from fgbg.optim import build_optimizer, build_scheduler
from fgbg.store import Dataset

log = logging.getLogger(__name__)


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("params: train.device = 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Heads:
    """The two heads' losses, and the forward pass under autocast where it applies."""

    def __init__(self, p: Params, device: torch.device) -> None:
        self.mask_loss = HeadLoss("mask", p.train.mask_loss)
        self.depth_loss = HeadLoss("depth", p.train.depth_loss)
        self.device = device
        self.amp = device.type == "cuda"

    def forward(self, model, x, mask, depth):
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            logits, depth_pred = model(x)  # N, 1, H, W each
        lm, terms = self.mask_loss(logits.float(), mask)
        ld, dterms = self.depth_loss(depth_pred.float(), depth)
        return logits.float(), depth_pred.float(), lm + ld, {**terms, **dterms}


def run_epoch(model, loader, heads: Heads, epoch: int, optimizer=None, batch_scheduler=None) -> dict[str, float]:
    """One pass over `loader`; trains when an optimizer is given, else also measures metrics."""
    training = optimizer is not None
    model.train(training)
    sums: dict[str, float] = defaultdict(float)
    n = 0
    desc = f"epoch {epoch} {'train' if training else 'val'}"
    with torch.set_grad_enabled(training):
        for step, (x, mask, depth) in enumerate(tqdm(loader, desc=desc, unit="batch", leave=False)):
            x = x.to(heads.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            mask = mask.to(heads.device, non_blocking=True)
            depth = depth.to(heads.device, non_blocking=True)
            logits, depth_pred, loss, terms = heads.forward(model, x, mask, depth)
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise FloatingPointError(
                    f"loss is {loss_value} at epoch {epoch}, step {step} ({'train' if training else 'val'}); "
                    f"terms: {terms}. The last good checkpoint is kept; lower lr or change the loss weights"
                )
            if training:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if batch_scheduler is not None:
                    batch_scheduler.step()
            bs = x.shape[0]
            n += bs
            sums["loss"] += loss_value * bs
            for k, v in terms.items():
                sums[k] += v * bs
            if not training:
                for k, v in {**mask_metrics(logits, mask), **depth_metrics(depth_pred, depth)}.items():
                    sums[k] += float(v.sum())
    return {k: v / max(n, 1) for k, v in sums.items()}


def _loader(ds, p: Params, shuffle: bool, device: torch.device) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(p.train.seed)
    return torch.utils.data.DataLoader(
        ds, batch_size=p.batch_size, shuffle=shuffle, num_workers=p.train.workers,
        pin_memory=device.type == "cuda", generator=g, persistent_workers=p.train.workers > 0,
    )


def train_model(
    *, params: Params, dataset_dir: str | Path, stats_path: str | Path, split_path: str | Path,
    model_dir: str | Path, live_dir: str | Path, metrics_path: str | Path,
) -> dict:
    """Train and write `model_dir/{best,last}.pt`, DVCLive logs and the final metrics JSON."""
    p = params
    seed_everything(p.train.seed)
    if p.train.threads:
        torch.set_num_threads(p.train.threads)
    device = pick_device(p.train.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    stats = json.loads(Path(stats_path).read_text())
    split = json.loads(Path(split_path).read_text())
    store = Dataset(dataset_dir)
    train_dl = _loader(PairDataset(store, split["train"], stats), p, True, device)
    val_dl = _loader(PairDataset(store, split["val"], stats), p, False, device)
    model = build_model(p.model).to(device).to(memory_format=torch.channels_last)
    n_params = count_parameters(model)
    log.info("model %s: %d parameters; device %s; %d train / %d val samples",
             p.model.name, n_params, device, len(split["train"]), len(split["val"]))
    heads = Heads(p, device)
    opt = build_optimizer(model, p)
    sched = build_scheduler(opt, p, len(train_dl))
    per_batch = sched is not None and p.train.scheduler != "plateau"
    model_dir = Path(model_dir)
    best_loss, best_epoch, summary = math.inf, -1, {}
    with Live(dir=str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None) as live:
        for epoch in range(p.epochs):
            t0 = time.perf_counter()
            tr = run_epoch(model, train_dl, heads, epoch, opt, sched if per_batch else None)
            t_train = time.perf_counter() - t0
            va = run_epoch(model, val_dl, heads, epoch)
            if sched is not None and not per_batch:
                sched.step(va["loss"])
            lr = opt.param_groups[0]["lr"]
            for k, v in tr.items():
                live.log_metric(f"train/{k}", v)
            for k, v in va.items():
                live.log_metric(f"val/{k}", v)
            live.log_metric("lr", lr)
            summary = {"epoch": epoch, "train": tr, "val": va, "lr": lr, "parameters": n_params}
            save_checkpoint(model_dir / "last.pt", model, p.model, stats, epoch=epoch, val=va)
            if va["loss"] < best_loss:
                best_loss, best_epoch = va["loss"], epoch
                save_checkpoint(model_dir / "best.pt", model, p.model, stats, epoch=epoch, val=va)
            log.info("epoch %d: train loss %.4f, val loss %.4f, val iou %.4f, val rmse %.4f, lr %.2g; "
                     "%.1f s, %.0f train samples/s", epoch, tr["loss"], va["loss"], va["iou"], va["rmse"], lr,
                     time.perf_counter() - t0, len(split["train"]) / t_train)
            live.next_step()
    summary["best_epoch"] = best_epoch
    atomic_write_json(metrics_path, summary)
    store.close()
    return summary
