"""Scoring a model on image files, as a user's photos reach it.

Two users of the same code path as `fgbg predict` (files read from disk, EXIF applied,
the whole pair at native resolution):
- evaluate's `test_files`: every test sample written as two separate JPEG files (quality
  90, as the original dataset saved each bg and fg_bg) and read back;
- `fgbg score PAIRS`: a user's labelled pairs, PAIRS/bg/, PAIRS/fg_bg/, PAIRS/mask/ and
  optionally PAIRS/depth/ (16-bit, depth = value / 65535), paired by file name.
Each pair gets the metrics of fgbg.core.metrics and the trivial baselines of fgbg.evaluation.baselines.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fgbg.core.checkpoint import load_for_inference
from fgbg.core.errors import InputError
from fgbg.core.imageio import (
    atomic_write_bytes,
    atomic_write_json,
    image_files,
    paired_stems,
    read_image,
    uint16_to_depth,
)
from fgbg.core.metrics import DEPTH_KEYS, MASK_KEYS, depth_metrics, mask_metrics
from fgbg.core.plots import WORST, grid_png
from fgbg.core.progress import progress
from fgbg.core.runtime import predict_pair
from fgbg.evaluation.baselines import choose_threshold, difference

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledPair:
    """One pair of image files and its targets; depth and bg_depth (H, W in [0, 1]) are optional."""

    name: str
    bg: Path
    fg_bg: Path
    mask: np.ndarray  # H, W bool
    depth: np.ndarray | None = None
    bg_depth: np.ndarray | None = None


def _metrics(pred_mask: np.ndarray, pred_depth: np.ndarray | None, pair: LabelledPair) -> dict[str, float]:
    """Per-image metrics of a predicted mask (H, W bool) and depth against the pair's targets."""
    def batch(image):
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]  # 1, 1, H, W

    out = {k: float(v[0]) for k, v in mask_metrics(batch(pred_mask) * 2 - 1, batch(pair.mask)).items()}
    if pred_depth is not None and pair.depth is not None:
        out |= {k: float(v[0]) for k, v in depth_metrics(batch(pred_depth), batch(pair.depth)).items()}
    return out


def _read_pair(pair: LabelledPair) -> tuple[np.ndarray, np.ndarray]:
    bg, fg_bg = read_image(pair.bg, "RGB"), read_image(pair.fg_bg, "RGB")
    for path, img in ((pair.fg_bg, fg_bg), (pair.bg, bg)):
        if img.shape[:2] != pair.mask.shape:
            raise InputError(f"{path} is {img.shape[1]}x{img.shape[0]} but its mask is {pair.mask.shape[1]}x"
                             f"{pair.mask.shape[0]}; a bg, its fg_bg and their mask must be the same size")
    return bg, fg_bg


def score_pairs(model, ckpt: dict, pairs: list[LabelledPair], device, threshold: int | None = None,
                size: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(model metrics, baseline metrics, the difference threshold) per pair, one row each.

    `threshold` None: chosen on these pairs (optimistic for the baseline, so fair to the model)."""
    diffs = []
    rows, base_rows = [], []
    for pair in progress(pairs, desc="score", unit="pair"):
        bg, fg_bg = _read_pair(pair)
        pred_mask, pred_depth = predict_pair(model, ckpt, bg, fg_bg, device, size)
        rows.append({"name": pair.name, **_metrics(pred_mask, pred_depth, pair)})
        diffs.append(difference(bg, fg_bg))
    if threshold is None:
        threshold = choose_threshold(zip(diffs, (p.mask for p in pairs)))
    for pair, diff in zip(pairs, diffs):
        base_rows.append({"name": pair.name, **_metrics(diff > threshold, pair.bg_depth, pair)})
    return pd.DataFrame(rows), pd.DataFrame(base_rows), threshold


def means(df: pd.DataFrame) -> dict:
    """{"mask": {...}, "depth": {...}} averages over the rows (depth only where it was scored)."""
    out = {"mask": {k: float(df[k].mean()) for k in MASK_KEYS}}
    if all(k in df for k in DEPTH_KEYS):
        out["depth"] = {k: float(df[k].mean()) for k in DEPTH_KEYS}
    return out


def _listing(folder: Path, optional: bool = False) -> dict[str, Path]:
    if not folder.is_dir():
        if optional:
            return {}
        raise InputError(f"{folder}/: missing; a pairs folder holds bg/, fg_bg/ and mask/ (and optionally depth/)")
    return image_files(folder)


def labelled_pairs(root: str | Path) -> list[LabelledPair]:
    """The pairs of a folder (see module doc); a file without its partners names it."""
    root = Path(root)
    bgs, fg_bgs, masks = (_listing(root / kind) for kind in ("bg", "fg_bg", "mask"))
    depths = _listing(root / "depth", optional=True)
    names = paired_stems([bgs, fg_bgs, masks], "each pair needs bg/<name>, fg_bg/<name> and mask/<name> (and "
                         "depth/<name> where depth is given)", extra=depths)
    if not names:
        raise InputError(f"{root}/bg/: no .jpg or .png images to score")
    pairs = []
    for name in names:
        mask = read_image(masks[name], "L") >= 128
        depth = uint16_to_depth(read_image(depths[name])) if name in depths else None
        pairs.append(LabelledPair(name, bgs[name], fg_bgs[name], mask, depth))
    return pairs


def score_folder(checkpoint: str | Path, pairs_dir: str | Path, out: str | Path, device: str = "auto",
                 threshold: int | None = None, size: int | None = None) -> dict:
    """`fgbg score`: metrics and baseline of a pairs folder into `out` (JSON), and a grid of the
    worst pairs beside it (`<out stem>_worst.png`)."""
    model, ckpt, dev = load_for_inference(checkpoint, device)
    pairs = labelled_pairs(pairs_dir)
    chosen = "given" if threshold is not None else "chosen on these pairs"
    df, base, threshold = score_pairs(model, ckpt, pairs, dev, threshold, size)
    result = {**means(df), "pairs": len(df), "checkpoint": str(checkpoint),
              "baseline": {**means(base), "mask_rule": f"|fg_bg - bg| > {threshold} ({chosen})"},
              "per_pair": df.to_dict(orient="records")}
    out = Path(out)
    atomic_write_json(out, result)
    worst = df.sort_values("iou", kind="stable").head(WORST)
    rows = []
    for row in worst.itertuples():
        pair = pairs[row.Index]
        bg, fg_bg = _read_pair(pair)
        pred_mask, _ = predict_pair(model, ckpt, bg, fg_bg, dev, size)
        rows.append((bg, fg_bg, pair.mask.astype(np.float32), pred_mask.astype(np.float32)))
    labels = [f"{r.name}\nIoU {r.iou:.2f}" for r in worst.itertuples()]
    atomic_write_bytes(out.with_name(f"{out.stem}_worst.png"),
                       grid_png(rows, ("bg", "fg_bg", "mask", "mask_pred"), row_labels=labels))
    log.info("scored %d pairs: iou %.4f (baseline %.4f); wrote %s", len(df), result["mask"]["iou"],
             result["baseline"]["mask"]["iou"], out)
    return result
