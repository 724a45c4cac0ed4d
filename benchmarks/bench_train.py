"""Training throughput and data-loader throughput, each against a baseline in the same run.

    python benchmarks/bench_train.py [--dataset dataset/composed] [--steps 30]

1. Model: training samples/s (forward, the configured losses of the heads, backward,
   optimiser step: what `train` runs) of the default model at the default size,
   channels-last against plain NCHW fp32 (the baseline). With CUDA also the
   original UNet (unet_original) at 192 px, bf16 autocast + channels-last against fp32 eager.
2. Loader: samples/s of the training DataLoader (read, augment, normalise) with 0 and 2
   workers, against the model's samples/s: a ratio above 1 means the loader keeps up.
   Then on 1 core, on whole images and on `train.crop` crops, with every capture
   perturbation of fgbg.training.perturb on (probabilities of BackgroundMattingV2's recipe) against
   all off.
Needs a composed dataset (run `dvc repro split` first).
"""

from __future__ import annotations

import argparse
import json
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


def loader_rate(store: ComposedStore, contract: Contract, trained: tuple[str, ...], batch: int, workers: int,
                n_batches: int, crop: int = 0, perturb: PerturbConfig | None = None, crop_height: int = 0) -> float:
    """Samples/s of the training loader: read, crop (crop_height: strips), flip, perturb, normalise."""
    view = SampleView(crop=Crop(crop, 0.8, crop_height) if crop else None, augment=Augment(AugmentConfig()),
                      perturb=Perturb(perturb) if perturb else None, raw=True,  # uint8 out, as `train` loads
                      targets=trained)  # and only the targets of heads with losses
    ds = PairDataset(store, list(range(len(store))), contract, view)  # normalised later, on the device
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers)
    it = iter(dl)
    next(it)  # worker start-up is not throughput
    t0 = time.perf_counter()
    n = 0
    for _ in range(n_batches):
        n += next(it)[0].shape[0]
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="dataset/composed")
    ap.add_argument("--stats", default="dataset/stats.json")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    p = load_params(args.params)
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
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        orig = replace(p, model=ModelConfig(name="unet_original"))
        fast, _ = model_rate(replace(orig, train=replace(p.train, precision="auto", channels_last=True)),
                             192, 32, args.steps, gpu)
        base, _ = model_rate(replace(orig, train=replace(p.train, precision="fp32", channels_last=False)),
                             192, 32, args.steps, gpu)
        res.update(gpu=torch.cuda.get_device_name(), gpu_original_bf16_channels_last=fast, gpu_original_fp32_eager=base)
        print(f"GPU {res['gpu']}, unet_original at 192 px, batch 32: {fast:.0f} samples/s bf16 + channels-last, "
              f"{base:.0f} fp32 eager; ratio {fast / base:.2f}")
    else:
        print("GPU: no CUDA device here; the unet_original bf16 vs fp32 comparison did not run")
    store = ComposedStore(args.dataset)
    reuse_large_blocks()  # as `train` does before its loaders
    trained = tuple(head for head, cfg in p.heads.items() if cfg.losses)
    contract = Contract(p.model, NormStats.from_dict(json.loads(open(args.stats).read())), tuple(p.heads))
    for workers in (0, 2):
        res[f"loader_{workers}_workers"] = loader_rate(store, contract, trained, batch, workers, 100)
        print(f"loader, {workers} workers: {res[f'loader_{workers}_workers']:.0f} samples/s; "
              f"{res[f'loader_{workers}_workers'] / res['cpu_default_channels_last']:.1f}x the model's samples/s")
    side = store.bg.shape[1]
    for crop in sorted({0, p.train.crop}):
        where = (f"{min(p.train.crop_height, side)} x {crop} px strips" if crop and p.train.crop_height else
                 f"{crop} px crops" if crop else f"whole {side} px images")
        off = loader_rate(store, contract, trained, batch, 0, 60, crop, crop_height=p.train.crop_height)
        on = loader_rate(store, contract, trained, batch, 0, 60, crop, RECIPE, crop_height=p.train.crop_height)
        res[f"loader_1_core_{crop or side}_perturb_off"], res[f"loader_1_core_{crop or side}_perturb_on"] = off, on
        print(f"loader on 1 core, {where}: {on:.0f} samples/s with every capture perturbation on, "
              f"{off:.0f} with them off; ratio {on / off:.2f}")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
