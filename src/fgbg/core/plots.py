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

from fgbg.core.contract import Contract, kind_of  # noqa: E402
from fgbg.core.heads import HEADS  # noqa: E402
from fgbg.core.imageio import atomic_write_bytes  # noqa: E402

WORST = 10  # the worst samples (or pairs) that evaluate and `fgbg score` list and draw


def sample_columns(heads: tuple[str, ...]) -> tuple[str, ...]:
    """A grid's columns: bg, fg_bg, then per head its target and prediction, and a unit head's |error|
    (for mask and depth: bg, fg_bg, mask, mask_pred, depth, depth_pred, depth_error)."""
    columns = ["bg", "fg_bg"]
    for head in heads:
        columns += [head, f"{head}_pred"] + ([] if kind_of(head).binary else [f"{head}_error"])
    return tuple(columns)


def sample_rows(x: torch.Tensor, targets: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor],
                contract: Contract) -> list[tuple[np.ndarray, ...]]:
    """Grid rows in sample_columns' order from a batch: inputs N, C, H, W; targets and outputs {head: N, 1, H, W}."""
    rows = []
    for i in range(x.shape[0]):
        row = list(contract.decode_images(x[i]))
        for head, target in targets.items():
            kind, truth = kind_of(head), target[i, 0].numpy()
            pred = kind.answer(outputs[head][i, 0]).float().numpy() if kind.binary else outputs[head][i, 0].float().numpy()
            row += [truth, pred] + ([] if kind.binary else [np.abs(pred - truth)])
        rows.append(tuple(row))
    return rows


def _cmap(title: str) -> str:
    if title.endswith("error"):
        return "inferno"
    head = title.removesuffix("_pred")
    return kind_of(head).cmap if head in HEADS else "magma_r"


def grid_png(rows: list[tuple[np.ndarray, ...]], titles: tuple[str, ...], row_labels: list[str] | None = None) -> bytes:
    """A PNG: one row per sample, one column per title. 2-D arrays are shown in [0, 1] (binary
    heads grey; unit heads magma, for depth near = bright; |errors| inferno, scale [0, 0.25])."""
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


def save_grid(path: str | Path, rows, titles: tuple[str, ...], row_labels=None) -> None:
    atomic_write_bytes(path, grid_png(rows, titles, row_labels))


def grid_image(rows, titles: tuple[str, ...], row_labels=None) -> Image.Image:
    return Image.open(io.BytesIO(grid_png(rows, titles, row_labels))).convert("RGB")
