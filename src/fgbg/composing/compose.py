"""Composition rules: every fg and its horizontal flip on every bg at N positions.

For one placement (bg, fg, flip, x, y, scale):
- fg_bg = fg (resized by `scale`) alpha-blended onto bg with its top-left corner at (x, y);
- mask  = alpha >= mask_threshold;
- depth ("geometry") = the bg depth, except under the mask, where the object takes one
  depth: it stands on the ground at its lowest opaque row, so it takes the median bg depth
  of the pixels under that row. On the ground-plane prior, a foot above the horizon (in the
  sky, depth 1) stands on the ground at the horizon: it takes the prior's farthest ground,
  PRIOR_FAR. ("teacher": an ONNX network's depth, see fgbg.composing.teacher.)
bg depth is exact where `data/bg_depth/` gives it, else the ground-plane prior below.
Positions are seeded random (the fg wholly inside the bg) or the original 5 x 4 grid:
x = 28 i for i = 0..4 and y = 28 j for j = 4..1 on a 192 px bg, scaled by bg_size / 192.
There a 96 px fg at x = 112 runs 16 px past the right edge (and at y = 112 past the bottom),
and, as in the original, it is cropped there: the index's h and w are the visible box.
fgbg.composing.build turns these rules into the sharded dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image

from fgbg.composing.sources import Sources, resize_rgba
from fgbg.core.config import ComposeConfig

PRIOR_NEAR = 0.05  # ground-plane prior: depth of the bottom row
PRIOR_FAR = 0.9  # ground-plane prior: depth of the ground at the horizon (the sky is 1)
GRID_STEP = 28  # the original fixed layout on a 192 px bg: x = 28 i (i = 0..4), y = 28 j (j = 4..1)
GRID_X = tuple(GRID_STEP * i for i in range(5))
GRID_Y = tuple(GRID_STEP * j for j in range(4, 0, -1))
GRID_BG = 192


def ground_plane_prior(size: int, horizon: float, near: float = PRIOR_NEAR, far: float = PRIOR_FAR) -> np.ndarray:
    """Depth of a flat ground seen level: the sky, 1, above the horizon (at `horizon` x H from
    the top, compose.prior_horizon); below it near * (H - h) / (row - h), clipped to [near, far].

    Rows are pixel centres. Returned as size x size float32.
    """
    h = horizon * size
    rows = np.arange(size) + 0.5
    ground = np.clip(near * (size - h) / np.maximum(rows - h, 1e-6), near, far)
    return np.broadcast_to(np.where(rows > h, ground, 1.0)[:, None], (size, size)).astype(np.float32)


@dataclass(frozen=True)
class PreparedFg:
    """What every placement of one fg (flipped, resized) shares, computed once."""

    premul: np.ndarray  # h, w, 3 uint16: rgb * alpha + 128 (the rounding of `blend`)
    keep: np.ndarray  # h, w, 3 uint16: 255 - alpha (per channel: contiguous inner loops)
    obj: np.ndarray  # h, w bool: alpha >= threshold
    bottom: int  # the lowest row with an object pixel, -1 if none
    foot: np.ndarray  # the columns of that row's object pixels
    n_obj: int  # the number of object pixels


def prepare_fg(fg: np.ndarray, mask_threshold: int) -> PreparedFg:
    alpha = np.repeat(fg[..., 3:4], 3, axis=2).astype(np.uint16)  # h, w, 3
    obj = fg[..., 3] >= mask_threshold
    rows = np.nonzero(obj.any(axis=1))[0]
    bottom = int(rows[-1]) if len(rows) else -1
    foot = np.nonzero(obj[bottom])[0] if len(rows) else np.zeros(0, np.intp)
    return PreparedFg(fg[..., :3] * alpha + 128, 255 - alpha, obj, bottom, foot, int(obj.sum()))


def blend(box: np.ndarray, fg: PreparedFg) -> np.ndarray:
    """An h, w, 3 uint8 bg box with the fg alpha-blended over it: round((bg (255 - a) + rgb a) / 255),
    exact in 16-bit fixed point: with n = bg (255 - a) + rgb a + 128 <= 65153, round(./255) = (n + n // 256) // 256.
    One box at a time: its temporaries stay small enough to be reused, where a batch's page-fault afresh."""
    n = box.astype(np.uint16)
    n *= fg.keep
    n += fg.premul
    n += n >> 8
    n >>= 8
    return n.astype(np.uint8)


def compose_patches(bg: np.ndarray, bg_depth: np.ndarray, fg: PreparedFg, xs: np.ndarray, ys: np.ndarray,
                    foot_cap: float = 1.0) -> tuple[list[np.ndarray], np.ndarray]:
    """The fg on one bg at N positions (top-left corners xs, ys), its box only: (N fg_bg patches,
    h, w, 3 uint8; N object depths, float32, NaN where the mask is empty).

    The object depth is the median bg depth under its foot, at most `foot_cap`: PRIOR_FAR on the
    ground-plane prior, where a foot in the sky stands at the horizon; 1 (no cap) on an exact bg depth."""
    h, w = fg.obj.shape
    xs, ys = np.asarray(xs, np.intp), np.asarray(ys, np.intp)
    outside = (xs < 0) | (ys < 0) | (ys + h > bg.shape[0]) | (xs + w > bg.shape[1])
    if outside.any():
        x, y = xs[outside][0], ys[outside][0]
        raise ValueError(f"fg of {w}x{h} at ({x}, {y}) does not fit inside a bg of {bg.shape[1]}x{bg.shape[0]}")
    patches = [blend(bg[y : y + h, x : x + w], fg) for x, y in zip(xs, ys)]
    if fg.bottom < 0:
        return patches, np.full(len(xs), np.nan, np.float32)
    under_foot = bg_depth[(ys + fg.bottom)[:, None], xs[:, None] + fg.foot]  # N, foot width
    return patches, np.minimum(np.median(under_foot, axis=1), foot_cap).astype(np.float32)


def placed_size(fg_shape: tuple[int, ...], scale) -> tuple[np.ndarray, np.ndarray]:
    """(h, w) of a fg of `fg_shape` resized by `scale` (a number or an array), at least 1 px."""
    h = np.maximum(1, np.round(fg_shape[0] * np.asarray(scale))).astype(int)
    w = np.maximum(1, np.round(fg_shape[1] * np.asarray(scale))).astype(int)
    return h, w


def grid_positions(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The original 20 positions on a `size` px bg, row by row from the bottom row: (x, y)."""
    x, y = np.meshgrid(GRID_X, GRID_Y)  # 4 rows of 5
    return np.round(x.ravel() * size / GRID_BG).astype(int), np.round(y.ravel() * size / GRID_BG).astype(int)


def placed_fg(fg: np.ndarray, flip: int, h: int, w: int) -> np.ndarray:
    """The fg as placed: mirrored when `flip`, resized to h x w (Lanczos, premultiplied)."""
    out = np.ascontiguousarray(fg[:, ::-1]) if flip else fg
    if out.shape[:2] != (h, w):
        out = np.asarray(resize_rgba(Image.fromarray(out, "RGBA"), w, h))
    return out


def placements(sources: Sources, cfg: ComposeConfig) -> pd.DataFrame:
    """One row per placement, ordered fg, flip, bg, position: x, y, scale and the visible h, w
    (the placed fg's size, cropped at the bg's border on the grid layout), and `bg_measured`: whether
    the bg's depth is a measured map (data/bg_depth/), not the ground-plane prior."""
    size = sources.bg.shape[1]
    lo, hi = cfg.scale_range
    cols: dict[str, list] = {k: [] for k in ("bg_idx", "fg_idx", "flip", "x", "y", "scale", "h", "w")}
    n = cfg.positions
    for fi, fg in enumerate(sources.fg):
        fh, fw = fg.shape[:2]
        for flip in (0, 1):
            for bi in range(len(sources.bg_names)):
                rng = np.random.default_rng([cfg.seed, fi, flip, bi])
                scale = rng.uniform(lo, hi, n) if hi > lo else np.full(n, lo)
                h, w = placed_size((fh, fw), scale)
                if cfg.layout == "grid":
                    x, y = grid_positions(size)
                    h, w = np.minimum(h, size - y), np.minimum(w, size - x)  # cropped at the border
                else:
                    x = np.floor(rng.random(n) * (size - w + 1)).astype(int)
                    y = np.floor(rng.random(n) * (size - h + 1)).astype(int)
                for k, v in (("bg_idx", bi), ("fg_idx", fi), ("flip", flip)):
                    cols[k].extend([v] * n)
                for k, v in (("x", x), ("y", y), ("scale", scale), ("h", h), ("w", w)):
                    cols[k].extend(v.tolist())
    df = pd.DataFrame(cols)
    df.insert(0, "fg", np.asarray(sources.fg_names)[df["fg_idx"]])
    df.insert(0, "bg", np.asarray(sources.bg_names)[df["bg_idx"]])
    df.insert(0, "sample", np.arange(len(df)))
    df["bg_measured"] = sources.measured[df["bg_idx"]]
    return df
