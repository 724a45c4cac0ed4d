"""Evaluation of a checkpoint on the validation split: metric JSON and a sample grid."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from fgbg.checkpoint import load_checkpoint  # noqa: E402
from fgbg.data import PairDataset  # noqa: E402
from fgbg.imageio import atomic_path, atomic_write_json  # noqa: E402
from fgbg.metrics import depth_metrics, mask_metrics  # noqa: E402
from fgbg.store import Dataset  # noqa: E402
from fgbg.train import pick_device  # noqa: E402

log = logging.getLogger(__name__)

MASK_KEYS = ("iou", "dice", "pixel_acc")
DEPTH_KEYS = ("rmse", "mae", "abs_rel", "delta1", "ssim")


@torch.no_grad()
def predict_batch(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x: N, 6, H, W -> (mask logits N, 1, H, W; depth N, 1, H, W), float32."""
    logits, depth = model(x)
    return logits.float(), depth.float()


def sample_grid(path: str | Path, rows: list[tuple[np.ndarray, ...]]) -> None:
    """A PNG grid, one row per sample: bg, fg_bg, mask, mask_pred, depth, depth_pred."""
    titles = ("bg", "fg_bg", "mask", "mask_pred", "depth", "depth_pred")
    fig, axes = plt.subplots(len(rows), len(titles), figsize=(1.6 * len(titles), 1.6 * len(rows)), squeeze=False)
    for r, images in enumerate(rows):
        for c, (img, title) in enumerate(zip(images, titles)):
            ax = axes[r][c]
            grey = img.ndim == 2
            ax.imshow(img, cmap="gray" if title.startswith("mask") else "magma_r", vmin=0, vmax=1) if grey else ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
    fig.tight_layout(pad=0.2)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def evaluate_model(
    *, checkpoint: str | Path, dataset_dir: str | Path, split_path: str | Path, metrics_path: str | Path,
    grid_path: str | Path, grid_samples: int, batch_size: int, device: str = "auto",
) -> dict:
    """Per-image metrics on the val split, averaged, into `metrics_path`; a grid into `grid_path`."""
    dev = pick_device(device)
    model, ckpt = load_checkpoint(checkpoint, dev)
    split = json.loads(Path(split_path).read_text())
    store = Dataset(dataset_dir)
    ds = PairDataset(store, split["val"], ckpt["stats"])
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False)
    sums: dict[str, float] = defaultdict(float)
    for x, mask, depth in tqdm(loader, desc="evaluate", unit="batch"):
        logits, depth_pred = predict_batch(model, x.to(dev))
        for k, v in {**mask_metrics(logits.cpu(), mask), **depth_metrics(depth_pred.cpu(), depth)}.items():
            sums[k] += float(v.sum())
    n = len(ds)
    result = {
        "mask": {k: sums[k] / n for k in MASK_KEYS},
        "depth": {k: sums[k] / n for k in DEPTH_KEYS},
        "samples": n,
        "checkpoint_epoch": int(ckpt.get("epoch", -1)),
    }
    atomic_write_json(metrics_path, result)
    picks = np.linspace(0, n - 1, min(grid_samples, n)).round().astype(int)
    rows = []
    for k in picks:
        bg, fg_bg, mask, depth = store.read(ds.ids[k])
        x, _, _ = ds[k]
        logits, depth_pred = predict_batch(model, x[None].to(dev))
        rows.append((bg, fg_bg, mask.astype(np.float32), (logits[0, 0] > 0).float().cpu().numpy(),
                     depth, depth_pred[0, 0].cpu().numpy()))
    sample_grid(grid_path, rows)
    store.close()
    log.info("eval on %d val samples: iou %.4f, rmse %.4f", n, result["mask"]["iou"], result["depth"]["rmse"])
    return result
