"""Training throughput and data-loader throughput, each against a baseline in the same run.

    python benchmarks/bench_train.py [--dataset dataset/composed] [--steps 30]

1. Model: training samples/s (forward, the configured losses of the heads, backward,
   optimiser step: what `train` runs) of the default model at the default size,
   channels-last against plain NCHW fp32 (the baseline), and with column context against
   none (model.context). With CUDA also the
   original UNet (unet_original) at 192 px, bf16 autocast + channels-last against fp32 eager.
2. Loader: samples/s of the training DataLoader (read, augment, normalise) with 0 and 2
   workers, against the model's samples/s: a ratio above 1 means the loader keeps up.
   Then on 1 core, on whole images and on `train.crop` crops, with every capture
   perturbation on (probabilities of BackgroundMattingV2's recipe) against all off, on both
   engines: all per sample in the loader, and JPEG there with the rest batched on the device
   (here the CPU, fgbg.training.perturb_device).
Needs a composed dataset (run `dvc repro split` first).

    python benchmarks/bench_train.py --model-only --model unet_original --size 192 --batch 64 [--compile] [--sync-debug]

measures one model on CUDA only, against fp32 eager NCHW: what benchmarks/gpu_suite.sh runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace

import torch

from fgbg.core.allocator import reuse_large_blocks
from fgbg.core.config import AugmentConfig, ModelConfig, Params, PerturbConfig, load_params
from fgbg.core.contract import Contract, NormStats, kind_of
from fgbg.core.model import build_model
from fgbg.dataset.data import Crop, PairDataset, SampleView
from fgbg.dataset.store import ComposedStore
from fgbg.training.augment import Augment
from fgbg.training.optim import build_optimizer
from fgbg.training.perturb import Perturb
from fgbg.training.perturb_device import DevicePerturb, batch_generator
from fgbg.training.train import trained_targets
from fgbg.training.trainer import Heads, Trainer


def previous_train_step(trainer: Trainer, batch) -> tuple[float, dict[str, float]]:
    """The step before issue 11, kept here as the baseline (not a copy of Trainer.train_step): the
    loss and every loss term read back as Python floats at every step, which makes the host wait
    for the device each time."""
    x, targets = batch  # N, C, H, W; {head: N, 1, H, W}
    trainer.opt.zero_grad(set_to_none=True)
    _, loss, terms = trainer.heads.forward(trainer.model, x, targets)
    value = float(loss.detach())  # the per-step sync the current step avoids
    terms = {k: float(v) for k, v in terms.items()}
    trainer.scaler.scale(loss).backward()
    trainer.scaler.step(trainer.opt)
    trainer.scaler.update()
    return value, terms


class SyncCounter:
    """Counts reads of tensor values back to the host (item, float, bool, int, tolist) made by
    fgbg's code or this benchmark, not by torch's internals (an optimiser reading its CPU step
    counter costs no sync). On a GPU each such read waits for the device."""

    NAMES = ("item", "__float__", "__bool__", "__int__", "tolist")

    def __enter__(self) -> "SyncCounter":
        self.count = 0
        self.saved = {name: getattr(torch.Tensor, name) for name in self.NAMES}
        for name, real in self.saved.items():
            setattr(torch.Tensor, name, self._wrap(real))
        return self

    def _wrap(self, real):
        def read(tensor, *args):
            caller = sys._getframe(1).f_code.co_filename
            if "fgbg" in caller or caller == __file__:
                self.count += 1
            return real(tensor, *args)
        return read

    def __exit__(self, *exc) -> None:
        for name, real in self.saved.items():
            setattr(torch.Tensor, name, real)


def model_rate(p: Params, size: int | tuple[int, int], batch: int, steps: int, device: torch.device,
               step_fn=None) -> tuple[float, float]:
    """(training samples/s, host syncs per step) of `p`'s model, losses, optimiser, precision and
    memory format, through the epoch loop `train` runs, Trainer.train_epoch (or `step_fn` per step,
    for the baseline). The epoch's one read of its sums counts among the syncs. `size`: a side, or (h, w)."""
    h, w = (size, size) if isinstance(size, int) else size
    torch.manual_seed(0)
    contract = Contract(p.model, STATS, tuple(p.heads))
    model = build_model(contract).to(device)
    if p.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = build_optimizer(model, p)
    if p.train.compile:  # after the optimiser takes the parameters, as train_model does
        model = torch.compile(model)
    heads = Heads(p, device, contract)
    scaler = torch.amp.GradScaler(device.type, enabled=heads.dtype == torch.float16)
    trainer = Trainer(p, model, heads, opt, None, scaler, fingerprint="", show=False)  # no schedule: the lr stays put
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, contract.input_channels, h, w, generator=gen)
    targets = {head: torch.rand(batch, 1, h, w, generator=gen) for head in contract.heads}
    targets = {head: (t > 0.8).float() if kind_of(head).binary else t for head, t in targets.items()}
    x, targets = heads.to_device(x, targets)  # N, C, h, w; {head: N, 1, h, w}

    def run(n: int) -> None:
        batches = [(x, targets)] * n
        if step_fn is None:  # what `train` runs
            trainer.train_epoch(batches, 0, None)  # as loaded, as `train` runs without a resize schedule
        else:
            for b in batches:
                step_fn(trainer, b)

    run(3)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    with SyncCounter() as syncs:
        t0 = time.perf_counter()
        run(steps)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    return steps * batch / seconds, syncs.count / steps


STATS = NormStats((0.5,) * 3, (0.25,) * 3, (0.5,) * 3, (0.25,) * 3)  # the step's speed does not depend on them
RECIPE = PerturbConfig(shadow=0.3, bg_jitter=0.8, misalign=0.3, blur=0.3, noise=0.4, jpeg=0.5)  # all on


def loader_rate(store: ComposedStore, contract: Contract, p: Params, batch: int, workers: int,
                n_batches: int, crop: int = 0, perturb: PerturbConfig | None = None, crop_height: int = 0) -> float:
    """Samples/s of the training loader (read, crop (crop_height: strips), flip, the perturbations `perturb.where`
    puts in the loader) and the device perturbation step after it, here on the CPU, as `train` runs them."""
    on_device = perturb is not None and perturb.on_device("cpu")
    device_step = DevicePerturb(perturb) if on_device else None
    targets = trained_targets(p, "cpu", perturb or PerturbConfig(jpeg=0.0))
    view = SampleView(crop=Crop(crop, 0.8, crop_height) if crop else None, augment=Augment(AugmentConfig()),
                      perturb=Perturb(perturb, jpeg_only=on_device) if perturb else None, raw=True,  # uint8 out
                      targets=targets)  # and only the targets of heads with losses (and the shadow's mask)
    ds = PairDataset(store, list(range(len(store))), contract, view)  # normalised later, on the device
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers)
    it = iter(dl)
    next(it)  # worker start-up is not throughput
    t0 = time.perf_counter()
    n = 0
    for step in range(n_batches):
        x, batch_targets = next(it)
        if device_step is not None:
            mask = batch_targets["mask"].float() if device_step.needs_mask else None
            device_step(x, mask, batch_generator(0, 0, step, 0))
        n += x.shape[0]
    return n / (time.perf_counter() - t0)


def no_sync_steps(p: Params, size: int, batch: int, steps: int) -> str:
    """Run `steps` training steps on CUDA under torch.cuda.set_sync_debug_mode("error"), each from a uint8
    batch in pinned memory through the transfer, every capture perturbation of the recipe on the device
    (fgbg.training.perturb_device) and Trainer.train_step: any host-device sync raises. Returns "no sync in
    N steps" or the error."""
    device = torch.device("cuda")
    contract = Contract(p.model, STATS, tuple(p.heads))
    model = build_model(contract).to(device).to(memory_format=torch.channels_last)
    heads = Heads(p, device, contract)
    trainer = Trainer(p, model, heads, build_optimizer(model, p), None,
                      torch.amp.GradScaler("cuda", enabled=heads.dtype == torch.float16), fingerprint="", show=False)
    perturb = DevicePerturb(RECIPE)
    x = torch.randint(0, 256, (batch, size, size, 6), dtype=torch.uint8).pin_memory()
    targets = {head: (torch.rand(batch, 1, size, size) > 0.5).float().pin_memory() for head in contract.heads}

    def step(k: int) -> None:
        g = batch_generator(0, 0, k, 0)
        trainer.train_step(heads.to_device(x, targets, lambda x, mask: perturb(x, mask, g)), 0, k)

    step(0)  # warm-up: lazy initialisation may sync once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for k in range(1, steps + 1):
            step(k)
    except RuntimeError as e:
        return f"a sync at step {k}: {e}"
    finally:
        torch.cuda.set_sync_debug_mode(0)
    return f"no sync in {steps} steps, with every capture perturbation on the device"


def gpu_params(p: Params, name: str | None, precision: str, channels_last: bool, compile: bool = False) -> Params:
    """`p` with model `name` (None: p's own model) trained on whole images, as the GPU runs compare."""
    model = replace(ModelConfig(name=name), depth=p.model.depth, input=p.model.input, rows=p.model.rows) if name else p.model
    train = replace(p.train, crop=0, crop_height=0, precision=precision, channels_last=channels_last, compile=compile)
    return replace(p, model=model, train=train)


def model_only(args, p: Params) -> None:
    """One model's training samples/s at one size and batch on CUDA (the GPU suite, benchmarks/gpu_suite.sh),
    against fp32 eager NCHW in the same run."""
    fast = gpu_params(p, args.model, "auto", True, args.compile)
    base = gpu_params(p, args.model, "fp32", False)
    device = torch.device("cuda")
    rate, syncs = model_rate(fast, args.size, args.batch, args.steps, device)
    base_rate, _ = model_rate(base, args.size, args.batch, args.steps, device)
    what = f"{fast.model.name} at {args.size} px, batch {args.batch}, bf16 + channels-last{' + torch.compile' if args.compile else ''}"
    print(f"GPU {torch.cuda.get_device_name()}, {what}: {rate:.0f} samples/s against {base_rate:.0f} fp32 eager NCHW; "
          f"ratio {rate / base_rate:.2f}; host syncs per step {syncs:.2f} (goal for unet_original: 2,500 samples/s)")
    if args.sync_debug:
        print(f"sync debug mode 'error', {what}: {no_sync_steps(fast, args.size, args.batch, args.steps)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="dataset/composed")
    ap.add_argument("--stats", default="dataset/stats.json")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader workers to time the loader with")
    ap.add_argument("--model-only", action="store_true", help="CUDA: one model's step only (with --model, --size, "
                    "--batch, --compile, --sync-debug), against fp32 eager; no dataset needed")
    ap.add_argument("--model", default=None, help="--model-only: model.name (default: params.yaml's)")
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--compile", action="store_true", help="--model-only: torch.compile the model")
    ap.add_argument("--sync-debug", action="store_true", help="--model-only: then --steps steps under "
                    "torch.cuda.set_sync_debug_mode('error')")
    args = ap.parse_args()
    p = load_params(args.params)
    if args.model_only:
        if not torch.cuda.is_available():
            raise SystemExit("--model-only measures a GPU: no CUDA device here")
        return model_only(args, p)
    cpu = torch.device("cpu")
    res: dict = {"threads": torch.get_num_threads()}
    size, batch = p.compose.bg_size, p.batch_size
    fp32 = replace(p.train, precision="fp32")
    if p.train.crop:  # what a training step sees: crops, or full-height strips
        size = (min(p.train.crop_height, size) or p.train.crop, p.train.crop)
    current = replace(p, train=replace(fp32, channels_last=True))
    res["cpu_default_channels_last"], res["syncs_per_step"] = model_rate(current, size, batch, args.steps, cpu)
    res["cpu_default_nchw_baseline"], _ = model_rate(replace(p, train=replace(fp32, channels_last=False)),
                                                     size, batch, args.steps, cpu)
    res["cpu_previous_step"], res["previous_syncs_per_step"] = model_rate(current, size, batch, args.steps, cpu,
                                                                          previous_train_step)
    print(f"CPU, training step against the previous one (the baseline): {res['cpu_default_channels_last']:.1f} against "
          f"{res['cpu_previous_step']:.1f} samples/s (ratio {res['cpu_default_channels_last'] / res['cpu_previous_step']:.2f}); "
          f"host syncs per step {res['syncs_per_step']:.2f} against {res['previous_syncs_per_step']:.2f}")
    print(f"CPU, default model ({p.model.width}x{p.model.levels}) at {size} px (h, w), batch {batch}: "
          f"{res['cpu_default_channels_last']:.1f} samples/s channels-last, {res['cpu_default_nchw_baseline']:.1f} NCHW; "
          f"ratio {res['cpu_default_channels_last'] / res['cpu_default_nchw_baseline']:.2f}")
    if p.model.context == "columns":  # what the column context costs a step: alternating rounds, medians
        variants = {"columns": current, "none": replace(current, model=replace(p.model, context="none"))}
        rates: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(3):
            for name, variant in variants.items():
                rates[name].append(model_rate(variant, size, batch, args.steps, cpu)[0])
        res["cpu_context_columns"], res["cpu_context_none"] = (statistics.median(rates[n]) for n in variants)
        print(f"CPU, default model with column context against none (medians of 3 alternating rounds): "
              f"{res['cpu_context_columns']:.1f} against {res['cpu_context_none']:.1f} samples/s "
              f"(ratio {res['cpu_context_columns'] / res['cpu_context_none']:.2f})")
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        fast, _ = model_rate(gpu_params(p, "unet_original", "auto", True), 192, 32, args.steps, gpu)
        base, _ = model_rate(gpu_params(p, "unet_original", "fp32", False), 192, 32, args.steps, gpu)
        res.update(gpu=torch.cuda.get_device_name(), gpu_original_bf16_channels_last=fast, gpu_original_fp32_eager=base)
        print(f"GPU {res['gpu']}, unet_original at 192 px, batch 32: {fast:.0f} samples/s bf16 + channels-last, "
              f"{base:.0f} fp32 eager; ratio {fast / base:.2f}")
    else:
        print("GPU: no CUDA device here; the unet_original bf16 vs fp32 comparison did not run")
    store = ComposedStore(args.dataset)
    reuse_large_blocks()  # as `train` does before its loaders
    contract = Contract(p.model, NormStats.from_dict(json.loads(open(args.stats).read())), tuple(p.heads))
    for workers in args.workers:
        res[f"loader_{workers}_workers"] = loader_rate(store, contract, p, batch, workers, 100)
        print(f"loader, {workers} workers: {res[f'loader_{workers}_workers']:.0f} samples/s; "
              f"{res[f'loader_{workers}_workers'] / res['cpu_default_channels_last']:.1f}x the model's samples/s")
    side = store.bg.shape[1]
    for crop in sorted({0, p.train.crop}):
        where = (f"{min(p.train.crop_height, side)} x {crop} px strips" if crop and p.train.crop_height else
                 f"{crop} px crops" if crop else f"whole {side} px images")
        off = loader_rate(store, contract, p, batch, 0, 60, crop, crop_height=p.train.crop_height)
        on = {engine: loader_rate(store, contract, p, batch, 0, 60, crop, replace(RECIPE, where=engine),
                                  crop_height=p.train.crop_height) for engine in ("loader", "device")}
        key = f"loader_1_core_{crop or side}"
        res[f"{key}_perturb_off"], res[f"{key}_perturb_loader"], res[f"{key}_perturb_device"] = off, *on.values()
        print(f"loader on 1 core, {where}: every capture perturbation on: {on['loader']:.0f} samples/s per sample in "
              f"the loader (what `auto` runs on the CPU), {on['device']:.0f} with all but JPEG batched on the device "
              f"(here the CPU); all off: {off:.0f}; ratios {on['loader'] / off:.2f} and {on['device'] / off:.2f} "
              "(goal 0.8)")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
