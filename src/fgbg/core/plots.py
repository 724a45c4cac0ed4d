"""Image grids of samples and predictions (matplotlib, headless)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from fgbg.core.imageio import atomic_write_bytes  # noqa: E402
from fgbg.core.runtime import mean_std  # noqa: E402

SAMPLE_COLUMNS = ("bg", "fg_bg", "mask", "mask_pred", "depth", "depth_pred", "depth_error")
WORST = 10  # the worst samples (or pairs) that evaluate and `fgbg score` list and draw


def denormalise(x: torch.Tensor, stats: dict) -> tuple[np.ndarray, np.ndarray]:
    """6 (or 7), H, W model input -> (bg, fg_bg) as H, W, 3 uint8: fgbg.core.runtime.normalise undone."""
    mean, std = mean_std(stats)
    images = ((x[:6] * std + mean).clamp(0, 1) * 255).round().byte()  # 6, H, W; a 7th channel (rows) is no image
    return images[:3].permute(1, 2, 0).numpy(), images[3:].permute(1, 2, 0).numpy()


def sample_rows(x, mask, depth, logits, depth_pred, stats) -> list[tuple[np.ndarray, ...]]:
    """Grid rows (bg, fg_bg, mask, mask_pred, depth, depth_pred, |error|) from batch tensors."""
    rows = []
    for i in range(x.shape[0]):
        bg, fg_bg = denormalise(x[i], stats)
        truth, pred = depth[i, 0].numpy(), depth_pred[i, 0].float().numpy()
        mask_pred = (logits[i, 0] > 0).float().numpy()
        rows.append((bg, fg_bg, mask[i, 0].numpy(), mask_pred, truth, pred, np.abs(pred - truth)))
    return rows


def _cmap(title: str) -> str:
    if title.startswith("mask"):
        return "gray"
    return "inferno" if title.endswith("error") else "magma_r"


def grid_png(rows: list[tuple[np.ndarray, ...]], titles: tuple[str, ...] = SAMPLE_COLUMNS,
             row_labels: list[str] | None = None) -> bytes:
    """A PNG: one row per sample, one column per title. 2-D arrays are shown in [0, 1]
    (masks grey; depth magma, near = bright; |depth error| inferno, scale [0, 0.25])."""
    fig, axes = plt.subplots(len(rows), len(titles), figsize=(1.5 * len(titles), 1.5 * len(rows) + 0.2), squeeze=False)
    for r, images in enumerate(rows):
        for c, (img, title) in enumerate(zip(images, titles)):
            ax = axes[r][c]
            if img.ndim == 2:
                vmax = 0.25 if title.endswith("error") else 1.0
                ax.imshow(img, cmap=_cmap(title), vmin=0, vmax=vmax, interpolation="nearest")
            else:
                ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
            if c == 0 and row_labels:
                ax.set_ylabel(row_labels[r], fontsize=6)
    fig.tight_layout(pad=0.2)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def save_grid(path: str | Path, rows, titles=SAMPLE_COLUMNS, row_labels=None) -> None:
    atomic_write_bytes(path, grid_png(rows, titles, row_labels))


def grid_image(rows, titles=SAMPLE_COLUMNS, row_labels=None) -> Image.Image:
    return Image.open(io.BytesIO(grid_png(rows, titles, row_labels))).convert("RGB")
