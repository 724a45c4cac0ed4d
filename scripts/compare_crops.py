"""Downscaled training against native-resolution crops, at equal CPU time, scored on whole
192 px test images through the same code path as `fgbg predict`.

    python scripts/compare_crops.py [--out logs/compare_crops]

Variants (params.yaml otherwise):
- `downscaled 64`: the dataset composed at 64 / 32 px, whole images; scored by shrinking
  each 192 px test pair to 64 px and enlarging the outputs (`fgbg predict --size 64`);
- `crop C` for C in 64, 96, 128: the 192 / 96 px dataset, C px crops (train.crop_object
  of them on the object), scored at native resolution.
A step on a C px crop costs about (C / 64)^2 of a 64 px step, so `crop C` trains
round(epochs * (64 / C)^2) epochs: every variant gets the CPU time of `epochs` epochs at
64 px. Each variant's training time is measured and printed beside its scores.
"""

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from fgbg.composing.build import compose_dataset  # noqa: E402
from fgbg.core.checkpoint import load_checkpoint  # noqa: E402
from fgbg.core.config import Params, load_params  # noqa: E402
from fgbg.core.errors import run  # noqa: E402
from fgbg.core.imageio import atomic_write_json  # noqa: E402
from fgbg.core.metrics import depth_metrics, mask_metrics  # noqa: E402
from fgbg.core.runtime import predict_pair  # noqa: E402
from fgbg.dataset.split import split_index  # noqa: E402
from fgbg.dataset.stats import dataset_stats  # noqa: E402
from fgbg.dataset.store import ComposedStore  # noqa: E402
from fgbg.training.train import train_model  # noqa: E402


def yaml_value(text: str):
    """'5' -> 5, 'true' -> True, as params.yaml would read them."""
    return {"true": True, "false": False}.get(text, int(text) if text.isdigit() else text)


def prepare(p: Params, dataset: Path, work: Path) -> tuple[Path, Path]:
    """split.json and stats.json (train split) for `dataset`, as the pipeline makes them."""
    store = ComposedStore(dataset)
    split = split_index(store.index, group_by=p.split.group_by, val_fraction=p.split.val_fraction,
                        test_fraction=p.split.test_fraction, seed=p.split.seed)
    atomic_write_json(work / "split.json", split)
    atomic_write_json(work / "stats.json", dataset_stats(store, split["train"]))
    return work / "split.json", work / "stats.json"


def score(checkpoint: Path, store: ComposedStore, ids: list[int], size: int | None) -> dict:
    """Mean per-image IoU and RMSE over whole test images, through predict's code path."""
    model, ckpt = load_checkpoint(checkpoint)
    ious, rmses = [], []
    for i in ids:
        bg, fg_bg, mask, depth = store.read(i)
        answers = predict_pair(model, ckpt.contract, bg, fg_bg, "cpu", size)
        pred_mask, pred_depth = answers["mask"], answers["depth"]
        logits = torch.from_numpy(pred_mask[None, None].astype("float32") * 2 - 1)
        ious.append(float(mask_metrics(logits, torch.from_numpy(mask[None, None]).float())["iou"][0]))
        rmses.append(float(depth_metrics(torch.from_numpy(pred_depth[None, None]), torch.from_numpy(depth[None, None]))["rmse"][0]))
    return {"iou": statistics.mean(ious), "rmse": statistics.mean(rmses)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", default="data")
    ap.add_argument("--out", default="logs/compare_crops")
    ap.add_argument("--variants", nargs="+", default=["downscaled 64", "crop 64", "crop 96", "crop 128"],
                    help="'downscaled S' or 'crop C', optionally followed by model params, e.g. 'crop 64 levels=5'")
    args = ap.parse_args(argv)
    base = load_params(args.params)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    native = out / "composed192"
    if not native.is_dir():
        t0 = time.perf_counter()
        compose_dataset(data_dir=args.data, out_dir=native, cfg=dataclasses.replace(base.compose, bg_size=192, fg_size=96))
        print(f"composed at 192 / 96 px in {time.perf_counter() - t0:.1f} s", flush=True)
    base = dataclasses.replace(base, compose=dataclasses.replace(base.compose, bg_size=192, fg_size=96))
    native_split, native_stats = prepare(base, native, out)
    test_store = ComposedStore(native)
    test_ids = json.loads(native_split.read_text())["test"]
    results = {}
    for name in args.variants:
        kind, size, *extra = name.split()
        size = int(size)
        model_params = {k: yaml_value(v) for k, v in (e.split("=") for e in extra)}
        base_v = dataclasses.replace(base, model=dataclasses.replace(base.model, **model_params))
        work = out / name.replace(" ", "_").replace("=", "")
        work.mkdir(exist_ok=True)
        if kind == "downscaled":
            compose = dataclasses.replace(base.compose, bg_size=size, fg_size=size // 2)
            dataset = work / "composed"
            if not dataset.is_dir():
                compose_dataset(data_dir=args.data, out_dir=dataset, cfg=compose)
            split, stats = prepare(base_v, dataset, work)
            p = dataclasses.replace(base_v, compose=compose, train=dataclasses.replace(base.train, crop=0))
        else:
            dataset, split, stats = native, native_split, native_stats
            epochs = max(1, round(base.epochs * (64 / size) ** 2))
            p = dataclasses.replace(base_v, epochs=epochs, train=dataclasses.replace(base.train, crop=size))
        t0 = time.perf_counter()
        train_model(params=p, dataset_dir=dataset, stats_path=stats, split_path=split, model_dir=work / "models",
                    live_dir=work / "dvclive", metrics_path=work / "train.json")
        train_s = time.perf_counter() - t0
        results[name] = {"epochs": p.epochs, "train_s": train_s,
                         **score(work / "models" / "best.pt", test_store, test_ids, size if kind == "downscaled" else None)}
        print(f"{name}: {p.epochs} epochs in {train_s:.0f} s; whole 192 px test images: IoU {results[name]['iou']:.4f}, "
              f"RMSE {results[name]['rmse']:.4f}", flush=True)
        atomic_write_json(out / "results.json", results)


if __name__ == "__main__":
    run(main)
