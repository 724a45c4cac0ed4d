"""Image grids of samples and predictions, drawn with PIL: one cell per image, colour maps by lookup
table. A matplotlib figure of the same grid cost about 2.5 s (20 ms a subplot), which every logged
epoch and every evaluate paid; this costs milliseconds."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

from fgbg.core.contract import Contract, kind_of
from fgbg.core.heads import HEADS
from fgbg.core.imageio import atomic_write_bytes

WORST = 10  # the worst samples (or pairs) that evaluate and `fgbg score` list and draw
CELL = 192  # px per grid cell: the default bg side, shown 1:1; smaller images enlarge (nearest), larger shrink
GAP = 4  # px of white between cells
TITLE_HEIGHT = 18  # px of the column titles above the first row
LABEL_WIDTH = 120  # px of the row labels' column at least, where a grid has them; a wider label widens it
LABEL_MARGIN = 4  # px of white left and right of the widest label
ERROR_MAX = 0.25  # an |error| map is drawn on [0, ERROR_MAX]: small errors stay visible
BACKGROUND = (255, 255, 255)


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
        for head in contract.heads:
            kind, truth = kind_of(head), targets[head][i, 0].numpy()
            pred = kind.answer(outputs[head][i, 0]).float().numpy() if kind.binary else outputs[head][i, 0].float().numpy()
            row += [truth, pred] + ([] if kind.binary else [np.abs(pred - truth)])
        rows.append(tuple(row))
    return rows


def _cmap(title: str) -> str:
    if title.endswith("error"):
        return "inferno"
    head = title.removesuffix("_pred")
    return kind_of(head).cmap if head in HEADS else "magma_r"


@cache
def _lookup(cmap: str) -> np.ndarray:
    """256, 3 uint8: the colour map's colours for the levels 0 to 255."""
    return (colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


def as_rgb(img: np.ndarray, title: str) -> np.ndarray:
    """H, W, 3 uint8 as the grid shows `img`: a 2-D map on [0, 1] (an |error| on [0, ERROR_MAX]) through its
    colour map (binary heads grey; unit heads magma, for depth near = bright; |errors| inferno); colour as it is."""
    if img.ndim == 3:
        return img if img.dtype == np.uint8 else (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    top = ERROR_MAX if title.endswith("error") else 1.0
    return coloured(np.asarray(img, np.float64) / top, _cmap(title))


def coloured(values: np.ndarray, cmap: str) -> np.ndarray:
    """H, W values on [0, 1] (clipped) -> H, W, 3 uint8 through the colour map `cmap`, in 256 levels (value v
    in level floor(256 v), as matplotlib bins them)."""
    levels = np.minimum(np.clip(np.nan_to_num(values), 0, 1) * 256, 255).astype(np.uint8)
    return _lookup(cmap)[levels]


def _fitted(rgb: np.ndarray) -> Image.Image:
    """The image scaled to fit a CELL x CELL cell, its aspect kept."""
    h, w = rgb.shape[:2]
    scale = CELL / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
    return Image.fromarray(np.ascontiguousarray(rgb)).resize(size, resample)


@cache
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _label_width(row_labels: list[str]) -> int:
    """px of the labels' column: the widest label (lines of text) between margins, at least LABEL_WIDTH."""
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    widest = max(measure.multiline_textbbox((0, 0), label, font=_font(11))[2] for label in row_labels)
    return max(LABEL_WIDTH, widest + 2 * LABEL_MARGIN)


def grid_image(rows: list[tuple[np.ndarray, ...]], titles: tuple[str, ...],
               row_labels: list[str] | None = None) -> Image.Image:
    """One row per sample, one CELL-square cell per title (each image centred in it, GAP px apart), the titles
    above the first row and each row's label (lines of text) left of it, in a column as wide as the widest."""
    if row_labels is not None and len(row_labels) != len(rows):
        raise ValueError(f"grid_image: {len(row_labels)} row labels for {len(rows)} rows; give one label a row")
    left, pitch = _label_width(row_labels) if row_labels else 0, CELL + GAP
    grid = Image.new("RGB", (left + pitch * len(titles) - GAP, TITLE_HEIGHT + pitch * len(rows) - GAP), BACKGROUND)
    draw = ImageDraw.Draw(grid)
    for c, title in enumerate(titles):
        draw.text((left + pitch * c + CELL / 2, TITLE_HEIGHT / 2), title, fill=(0, 0, 0), font=_font(12), anchor="mm")
    for r, images in enumerate(rows):
        top = TITLE_HEIGHT + pitch * r
        for c, (img, title) in enumerate(zip(images, titles)):
            cell = _fitted(as_rgb(img, title))
            grid.paste(cell, (left + pitch * c + (CELL - cell.width) // 2, top + (CELL - cell.height) // 2))
        if row_labels:
            draw.multiline_text((LABEL_MARGIN, top + CELL / 2), row_labels[r], fill=(0, 0, 0), font=_font(11),
                                anchor="lm")
    return grid


def grid_png(rows, titles: tuple[str, ...], row_labels=None) -> bytes:
    """grid_image as PNG bytes."""
    buf = io.BytesIO()
    grid_image(rows, titles, row_labels).save(buf, format="png")
    return buf.getvalue()


def save_grid(path: str | Path, rows, titles: tuple[str, ...], row_labels=None) -> None:
    atomic_write_bytes(path, grid_png(rows, titles, row_labels))
