"""Training: the model on the train split, validated on the grouped val split every epoch.

Per epoch it logs train/val losses and metrics, the learning rate, epoch time and
samples/s to DVCLive (prediction grids every `image_every` epochs), writes `last.pt`,
and `best.pt` when `best_metric` improves. `last.pt` is resumed after a crash when it
was made with the same params and data and did not finish; otherwise the run starts
afresh and says why. One process, or DistributedDataParallel under `torchrun`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from fgbg.core.allocator import reuse_large_blocks
from fgbg.core.checkpoint import Checkpoint, fingerprint, read_checkpoint, save_checkpoint
from fgbg.core.config import TRAIN_RUNTIME_KEYS, Params, PerturbConfig, identity
from fgbg.core.contract import Contract, NormStats
from fgbg.core.errors import InputError
from fgbg.core.heads import HEADLINE, HEADS
from fgbg.core.imageio import atomic_write_json, remove_stale_temps
from fgbg.core.model import build_model, count_parameters
from fgbg.core.plots import grid_image, sample_columns, sample_rows
from fgbg.core.runtime import inference_batch, pick_device, unwrap, upsample_like
from fgbg.dataset.data import MEASURED, Crop, EpochSampler, PairDataset, SampleView
from fgbg.dataset.store import ComposedStore
from fgbg.training import distributed
from fgbg.training.augment import Augment
from fgbg.training.live import log_epoch, open_live
from fgbg.training.optim import build_optimizer, build_scheduler
from fgbg.training.perturb import Perturb
from fgbg.training.perturb_device import DevicePerturb
from fgbg.training.trainer import Heads, Trainer

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def is_whole_epoch(params: Params, epoch: int) -> bool:
    """Whether `epoch` is one of the last `train.whole_epochs`, which train on whole images after crops (FixRes)."""
    return (epoch >= params.epochs - params.train.whole_epochs
            and not params.train.crop_is_whole(params.compose.bg_size))


def whole_samples(params: Params, n_train: int) -> int:
    """The whole images of a whole-image epoch: as many pixels as a crop epoch's n_train crops, so it costs
    about what a crop epoch does (the 192 x 24 strips: one image in 8)."""
    height, width = min(params.train.crop_height or params.train.crop, params.compose.bg_size), params.train.crop
    return max(1, round(n_train * height * width / params.compose.bg_size ** 2))


def epoch_size(params: Params, epoch: int) -> int:
    """The training image size of `epoch` under the progressive-resizing schedule: after it, the
    crop size, or the whole image without crops or in a whole-image epoch."""
    if is_whole_epoch(params, epoch):
        return params.compose.bg_size
    start = 0
    for size, n in params.train.resize_schedule:
        if epoch < start + n:
            return size
        start += n
    return params.train.crop or params.compose.bg_size


def _training_identity(params: Params) -> dict:
    """The params a checkpoint must share to be resumed: not the runtime keys (workers, device, threads,
    image_every), keys the chosen options do not use put back to their defaults (TrainConfig.decisive), and
    the model's keys that its name does not use left out (ModelConfig.unused)."""
    train = identity(params.train.decisive(params.compose.bg_size), TRAIN_RUNTIME_KEYS)
    return {"lr": params.lr, "epochs": params.epochs, "batch_size": params.batch_size,
            "model": identity(params.model, tuple(params.model.unused())), "train": train,
            "heads": [[head, cfg.losses, *([list(cfg.measured_only)] if cfg.measured_only else [])]
                      for head, cfg in params.heads.items()]}  # a list: their order builds the model


def _resumable(path: Path, fp: str, epochs: int, dist: distributed.Dist) -> Checkpoint | None:
    """The checkpoint to resume from, decided by rank 0 and sent to every rank: ranks on
    machines without shared storage may hold another `last.pt`, or none."""
    return distributed.broadcast(_read_resumable(path, fp, epochs) if dist.main else None, dist)


def _read_resumable(path: Path, fp: str, epochs: int) -> Checkpoint | None:
    if not path.is_file():
        return None
    try:
        ckpt = read_checkpoint(path)
    except (ValueError, RuntimeError, OSError) as e:
        reason = f"it cannot be read ({e})"
    else:
        if ckpt.resume.get("fingerprint") != fp:
            reason = "it was made with other params or data"
        elif ckpt.epoch >= epochs - 1:
            reason = "that run finished"
        else:
            return ckpt
    log.warning("not resuming from %s: %s; training starts afresh", path, reason)
    return None


def loader_workers(workers: int, device: torch.device) -> int:
    """DataLoader processes: as given, or for -1 none on CPU (the model needs every core)
    and up to 8 with CUDA, so that decoding keeps the GPU fed."""
    if workers >= 0:
        return workers
    return min(8, os.cpu_count() or 1) if device.type == "cuda" else 0


def val_subset(ids: list[int], n: int) -> list[int]:
    """`n` of the val ids, evenly spaced (so every group is in), or all of them for 0 or n >= len(ids)."""
    if not n or n >= len(ids):
        return list(ids)
    return [ids[int(k)] for k in np.linspace(0, len(ids) - 1, n).round()]


class TrainPass(NamedTuple):
    """One kind of training epoch: its loader, and the sampler that orders it (shuffled, or this rank's
    share) as (epoch, index) keys."""

    loader: torch.utils.data.DataLoader
    sampler: EpochSampler
    samples: int  # the samples an epoch trains on, over every process, each once


class Loaders(NamedTuple):
    crops: TrainPass  # crops, or whole images without train.crop
    whole: TrainPass | None  # the last train.whole_epochs: whole images, as many pixels as a crop epoch
    val: torch.utils.data.DataLoader
    generator: torch.Generator  # the order of a pass, seeded afresh each epoch

    def of_epoch(self, params: Params, epoch: int) -> TrainPass:
        return self.whole if is_whole_epoch(params, epoch) else self.crops


def run_steps(params: Params, loaders: Loaders) -> int:
    """The optimiser steps of the whole run, where a per-batch lr schedule ends."""
    return sum(len(loaders.of_epoch(params, epoch).loader) for epoch in range(params.epochs))


def trained_targets(params: Params, device_type: str, perturb: PerturbConfig | None = None) -> tuple[str, ...]:
    """The targets a training batch carries: those of heads with losses, the mask for a shadow cast on the
    device by `perturb` (default: params.train.perturb), and MEASURED for losses on measured depth only."""
    trained = tuple(head for head, cfg in params.heads.items() if cfg.losses)
    perturb = perturb or params.train.perturb
    shadow_on_device = perturb.on_device(device_type) and DevicePerturb(perturb).needs_mask
    return (trained + (("mask",) if shadow_on_device and "mask" not in trained else ())
            + measured_target(params))


def measured_target(params: Params) -> tuple[str, ...]:
    """(MEASURED,) where a head takes a loss on measured depth only, else ()."""
    return (MEASURED,) if any(cfg.measured_only for cfg in params.heads.values()) else ()


def _loaders(params: Params, store: ComposedStore, split: dict, contract: Contract, dist: distributed.Dist,
             device: torch.device) -> Loaders:
    reuse_large_blocks()  # batches of whole images: no page faults afresh for each (fgbg.core.allocator)
    augment = Augment(params.train.augment)
    crop = Crop(params.train.crop, params.train.crop_object, params.train.crop_height) if params.train.crop else None
    perturb = Perturb(params.train.perturb, jpeg_only=params.train.perturb.on_device(device.type))
    train_view = SampleView(seed=params.train.seed, crop=crop, augment=augment if augment.enabled else None,
                            perturb=perturb if perturb.enabled else None, raw=True,
                            targets=trained_targets(params, device.type))
    train_ds = PairDataset(store, split["train"], contract, train_view)
    whole_ds = PairDataset(store, split["train"], contract, dataclasses.replace(train_view, crop=None))
    # validation: whole images, as evaluate and users see them, of a fixed subset of val
    val_view = SampleView(raw=True, targets=contract.heads + measured_target(params))
    val_ds = PairDataset(store, val_subset(split["val"], params.train.val_samples), contract, val_view)
    val_ds = torch.utils.data.Subset(val_ds, range(dist.rank, len(val_ds), dist.world))  # disjoint shares
    workers = loader_workers(params.train.workers, device)
    kw = dict(batch_size=params.batch_size, num_workers=workers, pin_memory=device.type == "cuda")
    if workers:  # keep the processes between epochs, and two batches each in flight
        kw.update(persistent_workers=True, prefetch_factor=2)
    gen = torch.Generator()

    def train_pass(ds: PairDataset, limit: int | None = None) -> TrainPass:
        """Each epoch a new order of `ds` (this rank's share under DDP), the first `limit` of it per rank."""
        if dist.active:
            order = torch.utils.data.DistributedSampler(ds, dist.world, dist.rank, shuffle=True, seed=params.train.seed)
        else:
            order = torch.utils.data.RandomSampler(ds, generator=gen)
        sampler = EpochSampler(order, limit)
        samples = len(ds) if limit is None else min(len(sampler) * dist.world, len(ds))  # each once, over every rank
        return TrainPass(torch.utils.data.DataLoader(ds, sampler=sampler, drop_last=False, **kw), sampler, samples)

    whole = is_whole_epoch(params, params.epochs - 1)  # the whole-image epochs are the last ones
    per_rank = -(-whole_samples(params, len(whole_ds)) // dist.world)  # every rank the same steps
    side = store.meta["compose"]["bg_size"]
    val_kw = {**kw, "batch_size": inference_batch(params.batch_size, device, side * side)}  # whole images, no gradients
    return Loaders(train_pass(train_ds), train_pass(whole_ds, per_rank) if whole else None,
                   torch.utils.data.DataLoader(val_ds, shuffle=False, **val_kw), gen)


class EpochResult(NamedTuple):
    epoch: int
    train: dict  # means over the train split
    val: dict  # means over the val split
    samples: dict  # {"train": n, "val": n}, summed over every process
    size: int  # training image size
    train_s: float  # seconds spent training
    lr: float  # the lr the epoch started with: read before the plateau schedule steps on its val loss


def _epoch(trainer: Trainer, loaders: Loaders, epoch: int) -> EpochResult:
    """Train and validate one epoch."""
    params, dist = trainer.params, trainer.dist
    lr = trainer.opt.param_groups[0]["lr"]
    t0 = time.perf_counter()
    train_pass = loaders.of_epoch(params, epoch)
    loaders.generator.manual_seed(params.train.seed * 100_003 + epoch)  # the epoch's order, also when resumed
    train_pass.sampler.set_epoch(epoch)  # the epoch travels with each index, into loader processes too
    size = epoch_size(params, epoch)
    resize = size if params.train.resize_schedule else None  # crops and whole images train as loaded
    tr, _ = trainer.train_epoch(train_pass.loader, epoch, resize)  # with the samples DistributedSampler repeats
    t_train = time.perf_counter() - t0
    distributed.broadcast_buffers(unwrap(trainer.model), dist)
    va, n_val = trainer.validate(loaders.val, epoch)
    samples = {"train": train_pass.samples, "val": n_val}  # each sample once
    if trainer.sched is not None and not trainer.per_batch:
        trainer.sched.step(va["loss"])
    return EpochResult(epoch, tr, va, samples, size, t_train, lr)


def _prediction_grid(model, val_dl, heads: Heads, n: int = 4):
    """The first `n` val samples (not the first batch: on a CPU a batch of large images may hold fewer),
    their targets and the model's outputs, as one image for DVCLive."""
    ds = val_dl.dataset
    x, targets = torch.utils.data.default_collate([ds[k] for k in range(min(n, len(ds)))])
    model.eval()
    with torch.no_grad():
        x_dev, targets_dev = heads.to_device(x, targets)  # x encoded on the device
        outputs, _, _ = heads.forward(model, x_dev, targets_dev)
    outputs = {head: upsample_like(out, targets[head]).cpu() for head, out in outputs.items()}
    return grid_image(sample_rows(x_dev.cpu().contiguous(), targets, outputs, heads.contract),
                      sample_columns(heads.contract.heads))


def _runtime(params: Params) -> tuple[distributed.Dist, torch.device]:
    """Join torchrun's process group if any; seeds, threads and determinism for this process."""
    device_type = "cuda" if params.train.device != "cpu" and torch.cuda.is_available() else "cpu"
    dist = distributed.setup(device_type)
    device = pick_device(params.train.device, dist.local_rank)
    seed_everything(params.train.seed + dist.rank)
    if params.train.threads:
        torch.set_num_threads(params.train.threads)
    if params.train.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = device.type == "cuda" and not params.train.deterministic
    return dist, device


def _norm_stats(stats_path: str | Path) -> NormStats:
    try:
        return NormStats.from_dict(json.loads(Path(stats_path).read_text()))
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"{stats_path}: not usable normalisation stats ({e}); run `dvc repro stats`") from None


def _trainer(params: Params, device: torch.device, total_steps: int, fp: str, contract: Contract,
             dist: distributed.Dist = distributed.Dist()) -> Trainer:
    model = build_model(contract).to(device)
    if params.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    heads = Heads(params, device, contract)
    opt = build_optimizer(model, params)
    scaler = torch.amp.GradScaler(device.type, enabled=heads.dtype == torch.float16)
    return Trainer(params, model, heads, opt, build_scheduler(opt, params, total_steps), scaler, fp, dist=dist,
                   show=dist.main,
                   perturb=DevicePerturb(params.train.perturb) if params.train.perturb.on_device(device.type) else None)


def _start(trainer: Trainer, model_dir: Path, device: torch.device) -> Checkpoint | None:
    """Resume from `last.pt` where it may (else clear the old checkpoints), then wrap the model as it
    trains: DDP under torchrun, torch.compile when asked. Returns the checkpoint resumed from."""
    params, dist = trainer.params, trainer.dist
    if dist.main and remove_stale_temps(model_dir):
        log.info("removed temporary files that a killed run left in %s", model_dir)
    ckpt = _resumable(model_dir / "last.pt", trainer.fingerprint, params.epochs, dist)
    if ckpt is not None:
        trainer.restore(ckpt)
        if dist.main:
            log.info("resumed from %s, which ended after epoch %d", model_dir / "last.pt", ckpt.epoch)
    elif dist.main:
        for name in ("last.pt", "best.pt"):
            (model_dir / name).unlink(missing_ok=True)
    model = trainer.model
    if dist.active:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if params.train.compile:
        model = torch.compile(model)
    trainer.model = model  # as it trains; unwrap(model) is the module
    return ckpt


def _headlines(heads: Heads, val: dict) -> str:
    """Each head's headline val metric (fgbg.core.heads.HEADLINE), e.g. 'iou 0.9671, rmse 0.0594'."""
    keys = [key for (head, metric), key in heads.metric_keys.items() if metric == HEADLINE[HEADS[head]]]
    return ", ".join(f"{key} {val[key]:.4f}" for key in keys)


def _end_of_epoch(trainer: Trainer, loaders: Loaders, result: EpochResult, model_dir: Path, lives: list,
                  improved: bool, seconds: float) -> None:
    """Rank 0: the checkpoints, the DVCLive logs (a prediction grid every image_every epochs) and the log line."""
    params, epoch = trainer.params, result.epoch
    checkpoint = trainer.checkpoint(epoch, result.val)
    if improved:
        save_checkpoint(model_dir / "best.pt", checkpoint)
    save_checkpoint(model_dir / "last.pt", checkpoint)
    log_epoch(lives[0], result.train, result.val, result.lr, result.size)
    if params.train.image_every and (epoch + 1) % params.train.image_every == 0:
        grid = _prediction_grid(unwrap(trainer.model), loaders.val, trainer.heads)  # not DDP's forward: rank 0 alone
        lives[0].log_image(f"predictions/epoch_{epoch + 1:03d}.png", grid)
    speed = result.samples["train"] / result.train_s
    if len(lives) > 1:
        lives[1].log_metric("epoch_s", seconds)
        lives[1].log_metric("train_samples_per_s", speed)
    for live in lives:
        live.next_step()
    log.info("epoch %d (%d px): train loss %.4f, val loss %.4f, %s, lr %.2g; %.1f s, %.0f train samples/s", epoch,
             result.size, result.train["loss"], result.val["loss"], _headlines(trainer.heads, result.val), result.lr,
             seconds, speed)


def train_model(
    *, params: Params, dataset_dir: str | Path, stats_path: str | Path, split_path: str | Path,
    model_dir: str | Path, live_dir: str | Path, metrics_path: str | Path, timing_dir: str | Path | None = None,
) -> dict:
    """Train and write `model_dir/{best,last}.pt`, DVCLive logs and the final metrics JSON.

    Epoch times and samples/s go to a second DVCLive folder, `timing_dir`: they measure the
    machine, not the experiment, so they stay out of git and dvc.lock, and a rerun of the
    same params on the same machine leaves `git status` clean.
    """
    dist, device = _runtime(params)
    split = json.loads(Path(split_path).read_text())
    store = ComposedStore(dataset_dir)
    contract = Contract(params.model, _norm_stats(stats_path), tuple(params.heads), store.mask_threshold)
    store.check_ids(split["train"] + split["val"], str(split_path))
    loaders = _loaders(params, store, split, contract, dist, device)
    fp = fingerprint(_training_identity(params), stats_path, split_path)
    trainer = _trainer(params, device, run_steps(params, loaders), fp, contract, dist)
    model_dir = Path(model_dir)
    resumed = _start(trainer, model_dir, device)
    n_params = count_parameters(unwrap(trainer.model))
    if dist.main:
        log.info("model %s: %d parameters, heads %s; device %s x %d; precision %s; %d train / %d val samples",
                 params.model.name, n_params, ", ".join(contract.heads), device, dist.world,
                 trainer.heads.dtype or "fp32", len(split["train"]), len(split["val"]))
    summary: dict = {}
    lives = [open_live(path, trainer.start if resumed is not None else None)
             for path in (live_dir, timing_dir) if path is not None and dist.main]
    best_key = f"best_val_{params.train.best_metric}"
    try:
        for epoch in range(trainer.start, params.epochs):
            t0 = time.perf_counter()
            result = _epoch(trainer, loaders, epoch)
            improved = trainer.improved(result.val[params.train.best_metric])
            if improved:
                trainer.best, trainer.best_epoch = result.val[params.train.best_metric], epoch
            summary = {"epoch": epoch, "train": result.train, "val": result.val, "lr": result.lr,
                       "best_epoch": trainer.best_epoch, best_key: trainer.best, "parameters": n_params,
                       "image_size": result.size, "micro_batches": trainer.state.accum, "samples": result.samples}
            if dist.main:
                _end_of_epoch(trainer, loaders, result, model_dir, lives, improved, time.perf_counter() - t0)
            distributed.barrier(dist)
    finally:
        for live in lives:
            live.end()
        store.close()
        distributed.teardown(dist)
    if dist.main:
        atomic_write_json(metrics_path, summary)
    return summary
