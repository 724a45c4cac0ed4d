"""The Trainer: the model and its optimisation state, and one training or validation pass over
the data with them: precision, resizing, micro-batches, OOM and NaN handling.

- Precision: `auto` is bf16 autocast on CUDA (fp16 with a GradScaler where bf16 is not
  supported) and fp32 on CPU; `bf16` also runs on CPU.
- Progressive resizing: a train batch is resized on the device to the epoch's size
  (inputs bilinear, targets by area, a binary head's then > 0.5).
- CUDA out of memory: the step is retried in twice as many micro-batches (gradient
  accumulation keeps the effective batch), and the run goes on with that split.
- A NaN or inf loss stops the run with the epoch, the window of steps it appeared in and
  the loss terms. Under DDP every rank stops with the same error, that of the lowest rank
  that met one (fgbg.training.distributed.first_rank).
- No host-device sync per step: losses, terms and metrics add up on the device, and the
  finiteness flag is read back every CHECK_EVERY steps; an epoch reads its sums once.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from fgbg.core.checkpoint import Checkpoint
from fgbg.core.config import Params
from fgbg.core.contract import Contract, kind_of, score
from fgbg.core.progress import progress
from fgbg.core.runtime import autocast_dtype, forward, unwrap, upsample_like
from fgbg.dataset.data import MEASURED
from fgbg.training.distributed import Dist, Sums, broadcast, first_rank
from fgbg.training.losses import HeadLoss
from fgbg.training.perturb_device import DevicePerturb, batch_generator

log = logging.getLogger(__name__)


def resize_targets(targets: dict[str, torch.Tensor], size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """N, 1, H, W targets to size (h, w), each as its head's kind resizes (HeadKind.resize_target);
    MEASURED, one value per sample, as it is."""
    return {head: target if head == MEASURED else kind_of(head).resize_target(target, size)
            for head, target in targets.items()}


def resize_batch(x: torch.Tensor, targets: dict[str, torch.Tensor], size: int | None):
    """A batch to size x size (progressive resizing; None: as loaded): inputs bilinear (antialiased),
    targets as `resize_targets`."""
    if size is None:
        return x, targets
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x, resize_targets(targets, (size, size))


@dataclass
class StepState:
    """Carried across steps: how many micro-batches a batch is split into."""

    accum: int = 1


class Heads:
    """The heads' losses and metrics (params.yaml `heads:`), and the forward pass under autocast."""

    def __init__(self, params: Params, device: torch.device, contract: Contract) -> None:
        """`contract`: encodes uint8 batches on the device (float batches pass as they are)."""
        self.losses = {head: HeadLoss(head, cfg.losses, cfg.measured_only)
                       for head, cfg in params.heads.items() if cfg.losses}
        self.metric_keys = params.metric_keys()  # (head, metric) -> key
        self.device = device
        self.dtype = autocast_dtype(params.train.precision, device)
        self.channels_last = params.train.channels_last
        self.contract = contract
        # a two-stage model's base is supervised too, on each head it outputs (not a derived one)
        self.coarse = [head for head in self.losses if head not in contract.config.derived_heads] \
            if contract.config.name == "two_stage" else []

    @property
    def term_names(self) -> list[str]:
        """The names of the loss terms that `forward` returns."""
        def names(heads):
            return [f"{head}_{name}" for head in heads for name in self.losses[head].weights]

        return names(self.losses) + ([f"coarse_{name}" for name in names(self.coarse)] + ["coarse_error"]
                                     if self.coarse else [])

    def to_device(self, x: torch.Tensor, targets: dict[str, torch.Tensor], perturb=None):
        """The batch on the device: x encoded (uint8 from the loader: perturbed first by `perturb`, a
        callable (x, mask) -> x, as training does), targets float32."""
        x = x.to(self.device, non_blocking=True)
        targets = {head: target.to(self.device, non_blocking=True).float() for head, target in targets.items()}
        if x.dtype == torch.uint8:
            if perturb is not None:
                x = perturb(x, targets.get("mask"))
            x = self.contract.encode_uint8(x)  # N, C, H, W float32
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, targets

    def forward(self, model, x: torch.Tensor, targets: dict[str, torch.Tensor]):
        """({head: output}, loss, {term: value}); targets are pooled to a half-size output.

        A two-stage model's base is supervised too: each head by its losses at the base's size (terms
        `coarse_<head>_<loss>`), and its error map by the squared difference from its real error
        there, the mean over the heads with losses of |probability - target| (`coarse_error`)."""
        outputs = forward(model, x, self.dtype, coarse=True) if self.coarse else forward(model, x, self.dtype)
        coarse = {key.removeprefix("coarse/"): outputs.pop(key) for key in list(outputs) if key.startswith("coarse/")}
        loss, terms = self._losses(outputs, targets, self.losses)
        if self.coarse:
            error = coarse.pop("error")  # N, 1, h, w
            small = resize_targets(targets, error.shape[-2:])
            coarse_loss, coarse_terms = self._losses(coarse, small, self.coarse)
            real = torch.stack([(self.losses[head].kind.probability(coarse[head]) - small[head]).abs()
                                for head in self.coarse]).mean(dim=0).detach()
            error_loss = F.mse_loss(error, real)
            loss = loss + coarse_loss + error_loss
            terms.update({f"coarse_{name}": value for name, value in coarse_terms.items()},
                         coarse_error=error_loss.detach())
        return outputs, loss, terms

    def _losses(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], heads):
        """(the weighted losses of `heads` summed, {term: value}), targets pooled to the outputs' size."""
        targets = resize_targets(targets, next(iter(outputs.values())).shape[-2:])
        loss, terms = 0, {}
        for head in heads:
            head_total, head_terms = self.losses[head](outputs[head], targets[head], targets.get(MEASURED))
            loss, terms = loss + head_total, {**terms, **head_terms}
        return loss, terms

    def metrics(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """{metric key: N values} of each head's listed metrics, outputs upsampled to the targets' size."""
        outputs = {head: upsample_like(out, targets[head]) for head, out in outputs.items()}
        return score(outputs, targets, self.metric_keys)


CHECK_EVERY = 25  # steps between reading the finiteness flag back from the device


class FiniteCheck:
    """Whether every loss of a pass was finite, kept on the device and read back every
    CHECK_EVERY steps and at the end: one host-device sync per window instead of per step.
    A NaN or inf stops the run naming the epoch and the steps it appeared between.

    Under DDP (`dist`) each check is collective, and stops every rank with the message of the
    lowest rank that met one; so the checks must come at the same steps on every rank:
    `windows=False` checks only at the end (validation, whose shares differ in length)."""

    def __init__(self, phase: str, epoch: int, dist: Dist = Dist(), device: torch.device = torch.device("cpu"),
                 windows: bool = True) -> None:
        self.phase, self.epoch, self.dist, self.device, self.windows = phase, epoch, dist, device, windows
        self.bad: torch.Tensor | None = None  # 0-d bool on the device: a non-finite loss since `since`
        self.since = 0
        self.terms: dict[str, torch.Tensor] = {}

    def add(self, loss: torch.Tensor, terms: dict[str, torch.Tensor], step: int) -> None:
        bad = ~torch.isfinite(loss.detach())
        self.bad = bad if self.bad is None else self.bad | bad
        self.terms = terms
        if self.windows and (step + 1) % CHECK_EVERY == 0:
            self.check(step)

    def check(self, step: int) -> None:
        if self.dist.active:
            first = first_rank(self.bad, self.dist, self.device)  # every rank, the same steps: the window's sync
        else:
            first = 0 if self.bad is not None and bool(self.bad) else None  # the one sync of the window
        if first is not None:
            terms = {k: float(v) for k, v in self.terms.items()}
            where = f"{self.phase}, rank {self.dist.rank}" if self.dist.active else self.phase
            message = (f"loss is not finite at epoch {self.epoch}, between steps {self.since} and {step} ({where}); "
                       f"terms at step {step}: {terms}. The last good checkpoint is kept; lower lr, set "
                       "train.grad_clip, or change the loss weights")
            raise FloatingPointError(broadcast(message if first == self.dist.rank else None, self.dist, src=first))
        self.bad, self.since = None, step + 1


@dataclass
class Trainer:
    """The model, its optimisation state and the best score so far (what `last.pt` holds), and
    the passes over the data: `train_epoch`, `validate`, and `train_step` within an epoch.

    `model` is the model as it trains: train_model wraps it in DDP and torch.compile once it is
    restored (`unwrap` gives the module itself). `dist`: this process's place under torchrun."""

    params: Params
    model: torch.nn.Module
    heads: Heads
    opt: torch.optim.Optimizer
    sched: object
    scaler: torch.amp.GradScaler
    fingerprint: str
    state: StepState = field(default_factory=StepState)
    start: int = 0
    best: float = math.inf
    best_epoch: int = -1
    dist: Dist = field(default_factory=Dist)
    show: bool = True  # progress bars: rank 0's alone under DDP
    perturb: DevicePerturb | None = None  # the capture perturbations of training batches, on the device

    @property
    def per_batch(self) -> bool:
        return self.sched is not None and self.params.train.scheduler != "plateau"

    def improved(self, score: float) -> bool:
        """Whether `score` beats the best so far (any score beats none)."""
        if self.best_epoch < 0:
            return True
        return score > self.best if self.params.best_is_higher() else score < self.best

    def restore(self, checkpoint: Checkpoint) -> None:
        resume = checkpoint.resume
        unwrap(self.model).load_state_dict(checkpoint.weights)
        self.opt.load_state_dict(resume["optimizer"])
        if self.sched is not None:
            self.sched.load_state_dict(resume["scheduler"])
        self.scaler.load_state_dict(resume["scaler"])
        torch.set_rng_state(resume["rng"])
        self.best, self.best_epoch, self.start, self.state.accum = (
            resume["best"], resume["best_epoch"], checkpoint.epoch + 1, resume["accum"])

    def checkpoint(self, epoch: int, val: dict) -> Checkpoint:
        """The model as it stands after `epoch`, with what resuming needs."""
        weights = {k: v.detach().cpu() for k, v in unwrap(self.model).state_dict().items()}
        resume = dict(fingerprint=self.fingerprint, optimizer=self.opt.state_dict(),
                      scheduler=self.sched.state_dict() if self.sched is not None else {},
                      scaler=self.scaler.state_dict(), rng=torch.get_rng_state(), best=self.best,
                      best_epoch=self.best_epoch, accum=self.state.accum)
        return Checkpoint(self.heads.contract, weights, self.params.compose.bg_size, epoch, val, resume)

    def _perturb_step(self, epoch: int, step: int):
        """The device perturbation of one training batch, seeded by (train.seed, epoch, step, rank); None if off."""
        if self.perturb is None or not self.perturb.enabled:
            return None
        g = batch_generator(self.params.train.seed, epoch, step, self.dist.rank)
        return lambda x, mask: self.perturb(x, mask, g)

    def train_step(self, batch, epoch: int, step: int):
        """One optimiser step over `batch`, split into `state.accum` micro-batches.

        Returns (loss, {term: value}) as detached 0-d tensors on the device, averaged over the
        batch: no host-device sync here (FiniteCheck reads finiteness in windows)."""
        model, opt, scaler, state = self.model, self.opt, self.scaler, self.state
        x, targets = batch  # N, C, H, W; {head: N, 1, H, W}
        n = x.shape[0]
        while True:
            try:
                opt.zero_grad(set_to_none=True)
                sums = Sums()  # the loss and its terms, weighted by micro-batch share
                split = {head: target.tensor_split(state.accum) for head, target in targets.items()}
                chunks = [(xc, {head: parts[i] for head, parts in split.items()})
                          for i, xc in enumerate(x.tensor_split(state.accum)) if xc.shape[0]]
                for i, (xc, tc) in enumerate(chunks):
                    share = xc.shape[0] / n  # this micro-batch's weight in the batch mean
                    # DDP: all-reduce gradients only after the last micro-batch
                    sync_now = i == len(chunks) - 1 or not hasattr(model, "no_sync")
                    with contextlib.nullcontext() if sync_now else model.no_sync():
                        _, loss, terms = self.heads.forward(model, xc, tc)
                        scaler.scale(loss * share).backward()
                    sums.add({"loss": loss.detach(), **terms}, share)  # float64 device tensors: no sync
                if self.params.train.grad_clip:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), self.params.train.grad_clip)
                scaler.step(opt)
                scaler.update()
                return sums.values.pop("loss"), sums.values
            except torch.cuda.OutOfMemoryError:
                if state.accum >= n:
                    raise
                state.accum *= 2
                opt.zero_grad(set_to_none=True)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                log.warning("CUDA out of memory at epoch %d, step %d: splitting each batch of %d into %d "
                            "micro-batches (gradient accumulation keeps the effective batch)", epoch, step, n,
                            state.accum)

    def train_epoch(self, loader, epoch: int, size: int | None) -> tuple[dict[str, float], int]:
        """(mean of each loss term, samples) over one training pass, every batch resized to `size` px (None:
        as loaded), over every process.

        The count includes the few samples DistributedSampler repeats so that every rank runs
        the same steps; a per-batch schedule steps after each step."""
        self.model.train()
        heads, dist = self.heads, self.dist
        sums = Sums(["loss", *heads.term_names], heads.device)
        finite = FiniteCheck("train", epoch, dist, heads.device)
        batch_scheduler = self.sched if self.per_batch else None
        step = -1
        for step, batch in enumerate(progress(loader, desc=f"epoch {epoch} train", unit="batch", leave=False,
                                              disable=not self.show)):
            x, targets = resize_batch(*heads.to_device(*batch, self._perturb_step(epoch, step)), size)  # N, C, h, w
            loss, terms = self.train_step((x, targets), epoch, step)
            if batch_scheduler is not None:
                batch_scheduler.step()
            finite.add(loss, terms, step)
            sums.count(x.shape[0])  # a shape: known on the host
            sums.add({"loss": loss, **terms}, x.shape[0])
        finite.check(step)
        return sums.reduce(dist)

    @torch.no_grad()
    def validate(self, loader, epoch: int) -> tuple[dict[str, float], int]:
        """(mean of each loss term and per-image metric at full resolution, samples) over every process.

        Under DDP it runs on the module itself, not through DDP (see distributed.broadcast_buffers),
        and the shares differ in length (one may be empty): the sums have every key on every rank,
        and finiteness is checked once, at the end."""
        model = unwrap(self.model) if self.dist.active else self.model
        model.eval()
        heads, dist = self.heads, self.dist
        sums = Sums(["loss", *heads.term_names, *heads.metric_keys.values()], heads.device)
        finite = FiniteCheck("val", epoch, dist, heads.device, windows=not dist.active)
        step = -1
        for step, batch in enumerate(progress(loader, desc=f"epoch {epoch} val", unit="batch", leave=False,
                                              disable=not self.show)):
            x, targets = heads.to_device(*batch)  # N, C, H, W; {head: N, 1, H, W}
            outputs, loss, terms = heads.forward(model, x, targets)  # {head: N, 1, h, w}
            finite.add(loss, terms, step)
            sums.count(x.shape[0])
            sums.add({"loss": loss, **terms}, x.shape[0])
            sums.add({k: v.sum() for k, v in heads.metrics(outputs, targets).items()}, 1)
        finite.check(step)
        return sums.reduce(dist)
