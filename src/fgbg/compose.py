"""Composition: every fg and its horizontal flip on every bg at N positions, into shards.

For one placement (bg, fg, flip, x, y, scale):
- fg_bg = fg (resized by `scale`) alpha-blended onto bg with its top-left corner at (x, y);
- mask  = alpha >= mask_threshold;
- depth ("geometry") = the bg depth, except under the mask, where the object takes one
  depth: it stands on the ground at its lowest opaque row, so it takes the median bg depth
  of the pixels under that row. ("teacher": an ONNX network's depth, see fgbg.teacher.)
bg depth is exact where `data/bg_depth/` gives it, else the ground-plane prior below.
Positions are seeded random (the fg wholly inside the bg) or the original 5 x 4 grid.

Shard k holds placements [k * shard_size, (k + 1) * shard_size) and depends on nothing
else, so shards can be made in any order, by several processes (`workers`) or machines
(`part=(i, n)` makes the shards with k % n == i). They are written atomically into
`<out>.partial/`; a rerun skips the finished ones, and when all are there the folder is
completed and renamed to `<out>`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import multiprocessing as mp
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from fgbg.config import ComposeConfig
from fgbg.imageio import atomic_path, atomic_write_json, decode_image, encode_image
from fgbg.sources import Sources, load_sources
from fgbg.store import (
    BG, BG_DEPTH, FORMAT_VERSION, INDEX, META, SHARDS, SUM_COLUMNS, decode_depth, encode_depth, shard_name,
)

log = logging.getLogger(__name__)

PRIOR_HORIZON = 0.4  # ground-plane prior: horizon at 40% of the height from the top
PRIOR_NEAR = 0.05  # ground-plane prior: depth of the bottom row
GRID = (5, 4)  # the original fixed layout: 5 columns x 4 rows of positions


def ground_plane_prior(size: int, horizon: float = PRIOR_HORIZON, near: float = PRIOR_NEAR) -> np.ndarray:
    """Depth of a flat ground seen level: 1 above the horizon, near * (H - h) / (row - h) below.

    Rows are pixel centres; depth is clipped to [near, 1]. Returned as size x size float32.
    """
    h = horizon * size
    rows = np.arange(size) + 0.5
    d = np.where(rows > h, near * (size - h) / np.maximum(rows - h, 1e-6), 1.0)
    return np.broadcast_to(np.clip(d, near, 1.0)[:, None], (size, size)).astype(np.float32)


@dataclass(frozen=True)
class PreparedFg:
    """What every placement of one fg (flipped, resized) shares, computed once."""

    premul: np.ndarray  # h, w, 3 float32: rgb * alpha
    keep: np.ndarray  # h, w, 1 float32: 1 - alpha
    obj: np.ndarray  # h, w bool: alpha >= threshold
    bottom: int  # the lowest row with an object pixel, -1 if none
    foot: np.ndarray  # w bool: the object pixels of that row


def prepare_fg(fg: np.ndarray, mask_threshold: int) -> PreparedFg:
    alpha = fg[..., 3:4].astype(np.float32) / 255.0  # h, w, 1
    obj = fg[..., 3] >= mask_threshold
    rows = np.nonzero(obj.any(axis=1))[0]
    bottom = int(rows[-1]) if len(rows) else -1
    return PreparedFg(fg[..., :3] * alpha, 1 - alpha, obj, bottom, obj[bottom] if len(rows) else obj[0])


def compose_patch(bg: np.ndarray, bg_depth: np.ndarray, fg: PreparedFg, x: int, y: int) -> tuple[np.ndarray, np.float32]:
    """The fg's box only: (fg_bg patch h, w, 3 uint8; object depth, NaN if the mask is empty)."""
    h, w = fg.obj.shape
    if x < 0 or y < 0 or y + h > bg.shape[0] or x + w > bg.shape[1]:
        raise ValueError(f"fg of {w}x{h} at ({x}, {y}) does not fit inside a bg of {bg.shape[1]}x{bg.shape[0]}")
    patch = np.round(bg[y : y + h, x : x + w] * fg.keep + fg.premul).astype(np.uint8)
    if fg.bottom < 0:
        return patch, np.float32(np.nan)
    return patch, np.float32(np.median(bg_depth[y + fg.bottom, x : x + w][fg.foot]))


def compose_sample(
    bg: np.ndarray, bg_depth: np.ndarray, fg: np.ndarray, x: int, y: int, mask_threshold: int = 128
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """bg S, S, 3 uint8; bg_depth S, S; fg h, w, 4 uint8 at column x, row y.

    Returns (fg_bg S, S, 3 uint8; mask S, S bool; depth S, S float32).
    """
    prepared = prepare_fg(fg, mask_threshold)
    patch, obj_depth = compose_patch(bg, bg_depth, prepared, x, y)
    h, w = prepared.obj.shape
    fg_bg = bg.copy()
    fg_bg[y : y + h, x : x + w] = patch
    mask = np.zeros(bg.shape[:2], bool)
    mask[y : y + h, x : x + w] = prepared.obj
    depth = np.array(bg_depth, dtype=np.float32)
    depth[mask] = obj_depth
    return fg_bg, mask, depth


def placed_fg(fg: np.ndarray, flip: int, h: int, w: int) -> np.ndarray:
    """The fg as placed: mirrored when `flip`, resized to h x w (Lanczos, premultiplied)."""
    out = np.ascontiguousarray(fg[:, ::-1]) if flip else fg
    if out.shape[:2] != (h, w):
        img = Image.fromarray(out, "RGBA").convert("RGBa").resize((w, h), Image.Resampling.LANCZOS)
        out = np.asarray(img.convert("RGBA"))
    return out


def placements(sources: Sources, cfg: ComposeConfig) -> pd.DataFrame:
    """One row per placement, ordered fg, flip, bg, position: x, y, scale and the placed h, w."""
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
                h = np.maximum(1, np.round(fh * scale)).astype(int)
                w = np.maximum(1, np.round(fw * scale)).astype(int)
                if cfg.layout == "grid":
                    gx = np.linspace(0, 1, GRID[0])
                    gy = np.linspace(0, 1, GRID[1])
                    fx, fy = np.meshgrid(gx, gy)  # row-major: 4 rows of 5
                    x = np.round(fx.ravel() * (size - w)).astype(int)
                    y = np.round(fy.ravel() * (size - h)).astype(int)
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
    return df


_STATE: dict = {}  # set before the worker pool forks; read by _compose_shard


def _rgb_sums(img: np.ndarray) -> np.ndarray:
    """[sum r, g, b, sum of squares r, g, b] of an h, w, 3 uint8 image, exact (float64 BLAS)."""
    f = img.reshape(-1, 3).astype(np.float64)
    ones = np.ones(f.shape[0])
    return np.concatenate([ones @ f, ones @ (f * f)])


def _compose_shard(k: int) -> int:
    s = _STATE
    cfg: ComposeConfig = s["cfg"]
    plan: pd.DataFrame = s["plan"].iloc[k * cfg.shard_size : (k + 1) * cfg.shard_size]
    src: Sources = s["sources"]
    depths: np.ndarray = s["depths"]
    teacher = None
    if cfg.depth == "teacher":
        from fgbg.teacher import Teacher

        teacher = s.setdefault("teacher", Teacher(cfg.teacher, threads=s["threads"]))
    prepared: dict[tuple, tuple[PreparedFg, bytes]] = {}
    out_rows = []
    offset = 0
    step = cfg.teacher.batch if teacher else len(plan)
    with atomic_path(s["work"] / SHARDS / shard_name(k)) as tmp, open(tmp, "wb") as f:
        for start in range(0, len(plan), step):
            chunk = list(plan.iloc[start : start + step].itertuples())
            parts = []
            for r in chunk:
                key = (r.fg_idx, r.flip, r.h, r.w)
                if key not in prepared:
                    if len(prepared) > 64:
                        prepared.clear()
                    fg = prepare_fg(placed_fg(src.fg[r.fg_idx], r.flip, r.h, r.w), cfg.mask_threshold)
                    prepared[key] = (fg, np.packbits(fg.obj, axis=None).tobytes())
                parts.append((*compose_patch(src.bg[r.bg_idx], depths[r.bg_idx], prepared[key][0], r.x, r.y),
                              *prepared[key]))
            teacher_depth = [None] * len(chunk)
            if teacher:
                full = np.stack([src.bg[r.bg_idx] for r in chunk])
                for img, r, (patch, *_) in zip(full, chunk, parts):
                    img[r.y : r.y + r.h, r.x : r.x + r.w] = patch
                teacher_depth = list(teacher.predict(full))
            for r, (patch, obj_depth, fg, mask_bits), tdepth in zip(chunk, parts, teacher_depth):
                blobs = [encode_image(patch, cfg.fg_bg_format, cfg.jpeg_quality), mask_bits, encode_depth(tdepth)]
                stored = decode_image(blobs[0]) if cfg.fg_bg_format == "jpeg" else patch
                box = src.bg[r.bg_idx][r.y : r.y + r.h, r.x : r.x + r.w]
                rgb = s["bg_sums"][r.bg_idx] + _rgb_sums(stored) - _rgb_sums(box)
                n_obj = int(fg.obj.sum())
                if tdepth is None:
                    under = depths[r.bg_idx][r.y : r.y + r.h, r.x : r.x + r.w][fg.obj].astype(np.float64)
                    od = 0.0 if np.isnan(obj_depth) else float(obj_depth)
                    d_sum = s["depth_sums"][r.bg_idx][0] - under.sum() + od * n_obj
                    d_sq = s["depth_sums"][r.bg_idx][1] - (under * under).sum() + od * od * n_obj
                else:
                    q = decode_depth(blobs[2]).astype(np.float64)
                    d_sum, d_sq = q.sum(), (q * q).sum()
                for blob in blobs:
                    f.write(blob)
                out_rows.append([offset, *map(len, blobs), obj_depth, *rgb.astype(np.int64), n_obj, d_sum, d_sq])
                offset += sum(map(len, blobs))
    cols = ["offset", "patch_len", "mask_len", "depth_len", "obj_depth", *SUM_COLUMNS]
    rows = pd.DataFrame(out_rows, columns=cols)
    rows.insert(0, "shard", k)
    with atomic_path(s["work"] / "rows" / f"{k:05d}.parquet") as tmp:
        rows.to_parquet(tmp, index=False)
    return k


def _identity(cfg: ComposeConfig) -> dict:
    """The params that decide the dataset's bytes (all but `workers`)."""
    d = dataclasses.asdict(cfg)
    d.pop("workers")
    return d


def _fingerprint(sources: Sources, cfg: ComposeConfig) -> str:
    h = hashlib.sha256(json.dumps(_identity(cfg), sort_keys=True).encode())
    for arr in [sources.bg, *sources.fg, *[d for d in sources.bg_depth if d is not None]]:
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(json.dumps([sources.bg_names, sources.fg_names]).encode())
    return h.hexdigest()


def _prepare_work(work: Path, fingerprint: str) -> None:
    plan_file = work / "plan.json"
    if work.exists() and (not plan_file.is_file() or json.loads(plan_file.read_text()) != fingerprint):
        log.info("%s holds shards of other sources or params; starting afresh", work)
        shutil.rmtree(work)
    for sub in (SHARDS, "rows"):
        (work / sub).mkdir(parents=True, exist_ok=True)
        for stale in (work / sub).glob(".*.tmp"):  # left by a killed run
            stale.unlink()
    atomic_write_json(plan_file, fingerprint)


def compose_dataset(
    *, data_dir: str | Path, out_dir: str | Path, cfg: ComposeConfig, part: tuple[int, int] | None = None
) -> pd.DataFrame | None:
    """Compose the shards of `part` (all by default); when every shard exists, finish `out_dir`.

    Returns the index once the dataset is complete, else None (other parts still missing).
    """
    sources = load_sources(data_dir, cfg.bg_size, cfg.fg_size)
    out_dir = Path(out_dir)
    work = out_dir.with_name(out_dir.name + ".partial")
    _prepare_work(work, _fingerprint(sources, cfg))
    plan = placements(sources, cfg)
    n_shards = math.ceil(len(plan) / cfg.shard_size)
    mine = [k for k in range(n_shards) if part is None or k % part[1] == part[0]]
    todo = [k for k in mine if not (work / "rows" / f"{k:05d}.parquet").is_file()]
    depths = np.stack([d if d is not None else ground_plane_prior(cfg.bg_size) for d in sources.bg_depth])
    bg64 = sources.bg.reshape(len(sources.bg), -1, 3).astype(np.int64)
    d64 = depths.reshape(len(depths), -1).astype(np.float64)
    _STATE.clear()
    _STATE.update(
        cfg=cfg, plan=plan, sources=sources, depths=depths, work=work,
        bg_sums=np.concatenate([bg64.sum(1), (bg64 * bg64).sum(1)], axis=1),
        depth_sums=np.stack([d64.sum(1), (d64 * d64).sum(1)], axis=1),
        threads=1 if cfg.workers > 1 else 0,
    )
    log.info("composing %d of %d shards (%d samples in all) with %d worker(s)",
             len(todo), n_shards, len(plan), cfg.workers)
    bar = tqdm(total=len(todo), desc="compose", unit="shard")
    if cfg.workers > 1 and len(todo) > 1:
        with mp.get_context("fork").Pool(cfg.workers) as pool:
            for _ in pool.imap_unordered(_compose_shard, todo):
                bar.update()
    else:
        for k in todo:
            _compose_shard(k)
            bar.update()
    bar.close()
    _STATE.clear()
    missing = [k for k in range(n_shards) if not (work / "rows" / f"{k:05d}.parquet").is_file()]
    if missing:
        log.info("part done; %d of %d shards still missing in %s: run the other parts, then compose "
                 "without --part to finish", len(missing), n_shards, work)
        return None
    return _finish(work, out_dir, plan, sources, depths, cfg, n_shards)


def _finish(work: Path, out_dir: Path, plan: pd.DataFrame, sources: Sources, depths: np.ndarray,
            cfg: ComposeConfig, n_shards: int) -> pd.DataFrame:
    rows = pd.concat([pd.read_parquet(work / "rows" / f"{k:05d}.parquet") for k in range(n_shards)], ignore_index=True)
    index = pd.concat([plan, rows], axis=1)
    index.to_parquet(work / INDEX, index=False)
    np.save(work / BG, sources.bg)
    np.save(work / BG_DEPTH, depths)
    atomic_write_json(work / META, {"format_version": FORMAT_VERSION, "compose": _identity(cfg),
                                    "samples": len(index), "shards": n_shards})
    shutil.rmtree(work / "rows")
    (work / "plan.json").unlink()
    work.chmod(0o755)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    work.rename(out_dir)
    log.info("composed %d samples into %d shards in %s", len(index), n_shards, out_dir)
    return index
