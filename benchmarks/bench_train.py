"""Training throughput and data-loader throughput, each against a baseline in the same run.

    python benchmarks/bench_train.py [--dataset dataset/composed] [--steps 30]

1. Model: training samples/s (forward, backward, Adam step) of the default model at the
   default size, channels-last against plain NCHW fp32 (the baseline). With CUDA also the
   original UNet (unet_original) at 192 px, bf16 autocast + channels-last against fp32 eager.
2. Loader: samples/s of the training DataLoader (read, augment, normalise) with 0 and 2
   workers, against the model's samples/s: a ratio above 1 means the loader keeps up.
Needs a composed dataset (run `dvc repro split` first).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from fgbg.augment import Augment
from fgbg.config import AugmentConfig, ModelConfig, load_params
from fgbg.data import PairDataset
from fgbg.model import build_model
from fgbg.runtime import autocast_dtype
from fgbg.store import Dataset


def model_rate(cfg: ModelConfig, size: int, batch: int, steps: int, device: torch.device,
               channels_last: bool, dtype: torch.dtype | None) -> float:
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.randn(batch, 6, size, size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    for i in range(steps + 3):
        if i == 3:  # warm-up done
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits, depth = model(x)
        (logits.float().mean() + depth.float().mean()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t0)


def loader_rate(store: Dataset, stats: dict, batch: int, workers: int, n_batches: int) -> float:
    ds = PairDataset(store, list(range(len(store))), stats, Augment(AugmentConfig()))
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
    res["cpu_default_channels_last"] = model_rate(p.model, size, batch, args.steps, cpu, True, None)
    res["cpu_default_nchw_baseline"] = model_rate(p.model, size, batch, args.steps, cpu, False, None)
    print(f"CPU, default model ({p.model.width}x{p.model.levels}) at {size} px, batch {batch}: "
          f"{res['cpu_default_channels_last']:.1f} samples/s channels-last, {res['cpu_default_nchw_baseline']:.1f} NCHW; "
          f"ratio {res['cpu_default_channels_last'] / res['cpu_default_nchw_baseline']:.2f}")
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        orig = ModelConfig(name="unet_original")
        fast = model_rate(orig, 192, 32, args.steps, gpu, True, autocast_dtype("auto", gpu))
        base = model_rate(orig, 192, 32, args.steps, gpu, False, None)
        res.update(gpu=torch.cuda.get_device_name(), gpu_original_bf16_channels_last=fast, gpu_original_fp32_eager=base)
        print(f"GPU {res['gpu']}, unet_original at 192 px, batch 32: {fast:.0f} samples/s bf16 + channels-last, "
              f"{base:.0f} fp32 eager; ratio {fast / base:.2f}")
    else:
        print("GPU: no CUDA device here; the unet_original bf16 vs fp32 comparison did not run")
    store = Dataset(args.dataset)
    stats = json.loads(open(args.stats).read())
    for workers in (0, 2):
        res[f"loader_{workers}_workers"] = loader_rate(store, stats, batch, workers, 100)
        print(f"loader, {workers} workers: {res[f'loader_{workers}_workers']:.0f} samples/s; "
              f"{res[f'loader_{workers}_workers'] / res['cpu_default_channels_last']:.1f}x the model's samples/s")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
