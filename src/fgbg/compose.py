"""Composition: every fg and its horizontal flip on every bg at N seeded positions.

For one placement (bg, fg, flip, x, y):
- fg_bg = fg alpha-blended onto bg with its top-left corner at (x, y);
- mask  = alpha >= mask_threshold;
- depth = the bg depth, except under the mask, where the object takes one depth: the
  object stands on the ground at its lowest opaque row, so it takes the median bg depth
  of the pixels under that row ("geometry" depth).
bg depth is exact where `data/bg_depth/` gives it, else the ground-plane prior below.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from fgbg.sources import Sources, load_sources
from fgbg.store import BG, INDEX, ShardWriter, encode_record, replace_dir, temp_dir_beside

log = logging.getLogger(__name__)

PRIOR_HORIZON = 0.4  # ground-plane prior: horizon at 40% of the height from the top
PRIOR_NEAR = 0.05  # ground-plane prior: depth of the bottom row


def ground_plane_prior(size: int, horizon: float = PRIOR_HORIZON, near: float = PRIOR_NEAR) -> np.ndarray:
    """Depth of a flat ground seen level: 1 above the horizon, near * (H - h) / (row - h) below.

    Rows are pixel centres; depth is clipped to [near, 1]. Returned as size x size float32.
    """
    h = horizon * size
    rows = np.arange(size) + 0.5
    d = np.where(rows > h, near * (size - h) / np.maximum(rows - h, 1e-6), 1.0)
    return np.broadcast_to(np.clip(d, near, 1.0)[:, None], (size, size)).astype(np.float32)


def compose_sample(
    bg: np.ndarray, bg_depth: np.ndarray, fg: np.ndarray, x: int, y: int, mask_threshold: int = 128
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """bg H, W, 3 uint8; bg_depth H, W; fg h, w, 4 uint8 placed at column x, row y.

    Returns (fg_bg H, W, 3 uint8; mask H, W bool; depth H, W float32).
    """
    h, w = fg.shape[:2]
    if x < 0 or y < 0 or y + h > bg.shape[0] or x + w > bg.shape[1]:
        raise ValueError(f"fg of {w}x{h} at ({x}, {y}) does not fit inside a bg of {bg.shape[1]}x{bg.shape[0]}")
    fg_bg = bg.copy()
    alpha = fg[..., 3:4].astype(np.float32) / 255.0  # h, w, 1
    patch = bg[y : y + h, x : x + w].astype(np.float32)
    fg_bg[y : y + h, x : x + w] = np.round(patch * (1 - alpha) + fg[..., :3] * alpha).astype(np.uint8)
    obj = fg[..., 3] >= mask_threshold  # h, w
    mask = np.zeros(bg.shape[:2], dtype=bool)
    mask[y : y + h, x : x + w] = obj
    depth = np.array(bg_depth, dtype=np.float32, copy=True)
    rows = np.nonzero(obj.any(axis=1))[0]
    if len(rows):
        bottom = rows[-1]
        foot = depth[y + bottom, x : x + w][obj[bottom]]
        depth[mask] = np.median(foot)
    return fg_bg, mask, depth


def placements(sources: Sources, positions: int, seed: int) -> pd.DataFrame:
    """One row per placement, ordered fg, flip, bg, position; x, y seeded and fg wholly inside."""
    size = sources.bg.shape[1]
    rows = []
    for fi, fg in enumerate(sources.fg):
        h, w = fg.shape[:2]
        for flip in (0, 1):
            for bi in range(len(sources.bg_names)):
                rng = np.random.default_rng([seed, fi, flip, bi])
                xs = rng.integers(0, size - w + 1, positions)
                ys = rng.integers(0, size - h + 1, positions)
                for x, y in zip(xs, ys):
                    rows.append((sources.bg_names[bi], sources.fg_names[fi], bi, fi, flip, int(x), int(y)))
    df = pd.DataFrame(rows, columns=["bg", "fg", "bg_idx", "fg_idx", "flip", "x", "y"])
    df.insert(0, "sample", np.arange(len(df)))
    return df


def compose_dataset(
    *, data_dir: str | Path, out_dir: str | Path, bg_size: int, fg_size: int, positions: int,
    seed: int, mask_threshold: int, shard_size: int,
) -> pd.DataFrame:
    """Compose every placement into `out_dir` (see fgbg.store); returns the index."""
    sources = load_sources(data_dir, bg_size, fg_size)
    out_dir = Path(out_dir)
    index = placements(sources, positions, seed)
    depths = [d if d is not None else ground_plane_prior(bg_size) for d in sources.bg_depth]
    flipped = {}
    tmp = temp_dir_beside(out_dir)
    try:
        writer = ShardWriter(tmp, shard_size)
        records = []
        for row in tqdm(index.itertuples(), total=len(index), desc="compose", unit="sample"):
            key = (row.fg_idx, row.flip)
            if key not in flipped:
                fg = sources.fg[row.fg_idx]
                flipped[key] = np.ascontiguousarray(fg[:, ::-1]) if row.flip else fg
            sample = compose_sample(
                sources.bg[row.bg_idx], depths[row.bg_idx], flipped[key], row.x, row.y, mask_threshold
            )
            records.append(writer.add(encode_record(*sample)))
        writer.close()
        index = pd.concat([index, pd.DataFrame(records)], axis=1)
        index.to_csv(tmp / INDEX, index=False)
        np.save(tmp / BG, sources.bg)
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("composed %d samples into %d shards in %s", len(index), index["shard"].nunique(), out_dir)
    return index
