"""Evaluation of a checkpoint on the test split, beside the trivial baselines.

`best.pt` and the lr schedule were chosen on val, so the figures come from test, which
nothing was chosen on. The baselines (fgbg.evaluation.baselines) are scored on the same test samples;
the one choice they make, the difference threshold, is made on val.

Writes
- metrics/eval.json: every metric (fgbg.core.metrics) per image, averaged over the test split,
  and a `baseline` block with the same names;
- metrics/eval_by_source.json: the same averaged per fg, per bg and per fg class (the
  fg name up to its first "_", e.g. cat_003 -> cat), and the 10 worst samples;
- plots/per_fg.csv, plots/per_bg.csv: IoU, RMSE and the IoU's error 1 - IoU per source, for
  bar charts (the per-fg chart draws the error: every IoU is near 1, where bars look alike);
- plots/samples.png: evenly spaced samples (bg, fg_bg, mask, mask_pred, depth,
  depth_pred, |depth error|); plots/worst.png: the 10 worst the same way.
"Worst" ranks by (1 - IoU) + RMSE, so a sample is bad when either head fails.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from fgbg.core.checkpoint import load_for_inference
from fgbg.core.imageio import atomic_path, atomic_write_json
from fgbg.core.metrics import depth_metrics, mask_metrics
from fgbg.core.plots import WORST, sample_rows, save_grid
from fgbg.core.progress import progress
from fgbg.core.runtime import predict_padded
from fgbg.dataset.data import PairDataset, SampleView
from fgbg.dataset.store import ComposedStore
from fgbg.evaluation.baselines import choose_threshold, difference
from fgbg.evaluation.scoring import LabelledPair, means, score_pairs

log = logging.getLogger(__name__)

FILE_QUALITY = 90  # test_files: each bg and fg_bg saved as its own JPEG, as the original dataset was


def _per_image(model, ds: PairDataset, dev, batch_size: int) -> pd.DataFrame:
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False)
    cols: dict[str, list] = {}
    for x, mask, depth in progress(loader, desc="evaluate", unit="batch"):
        logits, depth_pred = predict_padded(model, x.to(dev))
        for k, v in {**mask_metrics(logits.cpu(), mask), **depth_metrics(depth_pred.cpu(), depth)}.items():
            cols.setdefault(k, []).extend(v.tolist())
    return pd.DataFrame(cols)


def _baseline_per_image(store: ComposedStore, ids: list[int], threshold: int, batch_size: int) -> pd.DataFrame:
    """Metrics of the difference mask (|fg_bg - bg| > threshold) and of bg depth as the prediction."""
    cols: dict[str, list] = {}
    for start in range(0, len(ids), batch_size):
        reads = [store.read(i) for i in ids[start : start + batch_size]]
        bg_idx = store.index["bg_idx"].to_numpy()[ids[start : start + batch_size]]
        pred = torch.from_numpy(np.stack([difference(bg, fg_bg) > threshold for bg, fg_bg, _, _ in reads]))[:, None]
        mask = torch.from_numpy(np.stack([r[2] for r in reads]))[:, None].float()  # N, 1, H, W
        depth = torch.from_numpy(np.stack([r[3] for r in reads]))[:, None]  # N, 1, H, W
        bg_depth = torch.from_numpy(np.stack([store.bg_depth[b] for b in bg_idx]))[:, None]  # N, 1, H, W
        logits = pred.float() * 2 - 1  # > 0 where the difference marks the object
        for k, v in {**mask_metrics(logits, mask), **depth_metrics(bg_depth, depth)}.items():
            cols.setdefault(k, []).extend(v.tolist())
    return pd.DataFrame(cols)


def _difference_threshold(store: ComposedStore, val_ids: list[int]) -> int:
    """The |fg_bg - bg| threshold with the best mean IoU on val."""
    pairs = ((difference(bg, fg_bg), mask) for bg, fg_bg, mask, _ in (store.read(i) for i in val_ids))
    return choose_threshold(pairs)


def _test_files(model, ckpt: dict, store: ComposedStore, ids: list[int], threshold: int, dev) -> dict:
    """The test split as a user's files: each bg and fg_bg written as its own JPEG, read back and
    scored through predict's code path, beside the same baselines."""
    with tempfile.TemporaryDirectory(prefix="fgbg-test-files-") as tmp:
        pairs = []
        for i in ids:
            bg, fg_bg, mask, depth = store.read(i)
            paths = (Path(tmp) / f"{i}_bg.jpg", Path(tmp) / f"{i}_fg_bg.jpg")
            for img, path in zip((bg, fg_bg), paths):
                Image.fromarray(img).save(path, quality=FILE_QUALITY)
            bg_depth = np.array(store.bg_depth[store.index["bg_idx"].iat[i]])  # a copy: the store maps it read-only
            pairs.append(LabelledPair(str(i), *paths, mask, depth, bg_depth))
        df, base, _ = score_pairs(model, ckpt, pairs, dev, threshold)
    return {**means(df), "baseline": means(base), "samples": len(df),
            "files": f"bg and fg_bg as separate JPEG files, quality {FILE_QUALITY}, read as `fgbg predict` reads them"}


def _depth_rule(depth_mode: str) -> str:
    """What the depth baseline is. The store's bg depth is always on the geometry scale, so under
    teacher depth it is not on the labels' scale, and says so."""
    rule = "the bg depth, as if the object were not there"
    if depth_mode == "teacher":
        rule += ("; not like for like under teacher depth: the bg depth is on the geometry scale (data/bg_depth/ "
                 "or the ground-plane prior), the labels on the teacher's relative scale")
    return rule


def _grid(path: Path, model, ds: PairDataset, positions, dev, labels: list[str] | None = None) -> None:
    x, mask, depth = (torch.stack(column) for column in zip(*(ds[int(k)] for k in positions)))
    logits, depth_pred = predict_padded(model, x.to(dev))
    save_grid(path, sample_rows(x, mask, depth, logits.cpu(), depth_pred.cpu(), ds.stats), row_labels=labels)


def evaluate_model(
    *, checkpoint: str | Path, dataset_dir: str | Path, split_path: str | Path, metrics_path: str | Path,
    plots_dir: str | Path, by_source_path: str | Path, grid_samples: int, batch_size: int, device: str = "auto",
) -> dict:
    """Per-image metrics on the test split beside the baselines: averages, per-source breakdowns,
    grids (see module doc)."""
    model, ckpt, dev = load_for_inference(checkpoint, device)
    split = json.loads(Path(split_path).read_text())
    store = ComposedStore(dataset_dir)
    store.check_ids(split["val"] + split["test"], str(split_path))
    size, trained_at = store.meta["compose"]["bg_size"], ckpt["input_size"]
    if size != trained_at:
        log.warning("%s is composed at %d px but %s was trained at %d px: evaluating at %d px as composed (the network "
                    "is fully convolutional), so these are not the figures of its training size; compose at %d px "
                    "to get those", dataset_dir, size, checkpoint, trained_at, size, trained_at)
    ids = split["test"]
    ds = PairDataset(store, ids, ckpt["stats"], SampleView(rows=bool(ckpt["model_config"].get("rows"))))
    df = _per_image(model, ds, dev, batch_size)
    info = store.index.iloc[ids][["sample", "fg", "bg", "flip", "x", "y"]].reset_index(drop=True)
    df = pd.concat([info, df], axis=1)
    df["fg_class"] = df["fg"].str.split("_").str[0]
    threshold = _difference_threshold(store, split["val"])
    baseline = {**means(_baseline_per_image(store, ids, threshold, batch_size)),
                "mask_rule": f"|fg_bg - bg| > {threshold} (largest channel difference, 0-255; threshold chosen on val)",
                "depth_rule": _depth_rule(store.meta["compose"]["depth"])}
    result = {"split": "test", "unseen": split["unseen"], **means(df), "baseline": baseline, "samples": len(df),
              "checkpoint_epoch": int(ckpt.get("epoch", -1)), "image_size": size, "trained_at": trained_at,
              "test_files": _test_files(model, ckpt, store, ids, threshold, dev)}
    atomic_write_json(metrics_path, result)

    df["badness"] = (1 - df["iou"]) + df["rmse"]
    worst = df.sort_values("badness", ascending=False, kind="stable").head(WORST)
    by_source = {
        group: {str(name): {**means(g), "samples": len(g)} for name, g in df.groupby(group, sort=True)}
        for group in ("fg_class", "fg", "bg")
    }
    by_source["worst"] = worst[["sample", "fg", "bg", "flip", "x", "y", "iou", "rmse"]].to_dict(orient="records")
    atomic_write_json(by_source_path, by_source)
    plots_dir = Path(plots_dir)
    for group in ("fg", "bg"):
        table = df.groupby(group, sort=True)[["iou", "rmse"]].mean().reset_index()
        table["iou_error"] = 1 - table["iou"]
        with atomic_path(plots_dir / f"per_{group}.csv") as tmp:
            table.to_csv(tmp, index=False, float_format="%.6f")
    picks = np.linspace(0, len(ds) - 1, min(grid_samples, len(ds))).round().astype(int)
    _grid(plots_dir / "samples.png", model, ds, picks, dev)
    labels = [f"{r.fg}\n{r.bg}\nIoU {r.iou:.2f}\nRMSE {r.rmse:.3f}" for r in worst.itertuples()]
    _grid(plots_dir / "worst.png", model, ds, worst.index.to_numpy(), dev, labels)
    store.close()
    log.info("eval on %d test samples: iou %.4f (baseline %.4f), rmse %.4f (baseline %.4f)", len(df),
             result["mask"]["iou"], baseline["mask"]["iou"], result["depth"]["rmse"], baseline["depth"]["rmse"])
    return result
