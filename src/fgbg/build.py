"""Building the composed dataset: shards made in parallel, in parts, and resumably.

Shard k holds placements [k * shard_size, (k + 1) * shard_size) and depends on nothing
else, so shards can be made in any order, by several processes (`workers`) or machines
(`part=(i, n)` makes the shards with k % n == i). They are written atomically into
`<out>.partial/`; a rerun skips the finished ones, and when all are there the folder is
completed and renamed to `<out>`. Completing writes index, bg arrays and then meta.json,
which records the plan's fingerprint: a run killed after that renames the folder on its
rerun, and a run killed before it finds every shard still there. For each sample it also records the exact sums that
fgbg.stats adds up.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import math
import multiprocessing as mp
import shutil
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from fgbg.compose import PreparedFg, compose_patch, ground_plane_prior, placed_fg, placed_size, placements, prepare_fg
from fgbg.config import ComposeConfig
from fgbg.errors import InputError
from fgbg.imageio import atomic_path, atomic_write_json, decode_image, encode_image
from fgbg.progress import progress
from fgbg.sources import Sources, load_sources
from fgbg.store import (
    BG, BG_DEPTH, FORMAT_VERSION, INDEX, META, SHARDS, SUM_COLUMNS, decode_depth, encode_depth, file_records, shard_name,
)

log = logging.getLogger(__name__)


_STATE: dict = {}  # set before the worker pool forks; read by _compose_shard


def _rgb_sums(img: np.ndarray) -> np.ndarray:
    """[sum r, g, b, sum of squares r, g, b] of an h, w, 3 uint8 image, exact (float64 BLAS)."""
    f = img.reshape(-1, 3).astype(np.float64)
    ones = np.ones(f.shape[0])
    return np.concatenate([ones @ f, ones @ (f * f)])


def _rows_path(work: Path, k: int) -> Path:
    """Shard k's index rows; written after the shard, so its presence marks the shard done."""
    return work / "rows" / f"{k:05d}.parquet"


def _compose_shard(k: int) -> int:
    s = _STATE
    cfg: ComposeConfig = s["cfg"]
    plan: pd.DataFrame = s["plan"].iloc[k * cfg.shard_size : (k + 1) * cfg.shard_size]
    src: Sources = s["sources"]
    depths: np.ndarray = s["depths"]
    teacher = None
    if cfg.depth == "teacher":
        from fgbg.teacher import Teacher

        if "teacher" not in s:  # one ONNX session per process, not per shard
            s["teacher"] = Teacher(cfg.teacher, threads=s["threads"])
        teacher = s["teacher"]
    prepared: dict[tuple, tuple[PreparedFg, bytes]] = {}
    out_rows = []
    offset = 0
    step = cfg.teacher.batch if teacher else len(plan)
    with atomic_path(s["work"] / SHARDS / shard_name(k)) as tmp, open(tmp, "wb") as f:
        for start in range(0, len(plan), step):
            chunk = list(plan.iloc[start : start + step].itertuples())
            parts = []
            for r in chunk:
                full_h, full_w = placed_size(src.fg[r.fg_idx].shape, r.scale)
                key = (r.fg_idx, r.flip, int(full_h), int(full_w), r.h, r.w)
                if key not in prepared:
                    if len(prepared) > 64:
                        prepared.clear()
                    placed = placed_fg(src.fg[r.fg_idx], r.flip, int(full_h), int(full_w))[: r.h, : r.w]  # grid: cropped
                    fg = prepare_fg(np.ascontiguousarray(placed), cfg.mask_threshold)
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
                crc = zlib.crc32(b"".join(blobs))  # checked on every read (fgbg.store)
                out_rows.append([offset, *map(len, blobs), crc, obj_depth, *rgb.astype(np.int64), n_obj, d_sum, d_sq])
                offset += sum(map(len, blobs))
    cols = ["offset", "patch_len", "mask_len", "depth_len", "crc32", "obj_depth", *SUM_COLUMNS]
    rows = pd.DataFrame(out_rows, columns=cols)
    rows.insert(0, "shard", k)
    with atomic_path(_rows_path(s["work"], k)) as tmp:
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
    fingerprint = _fingerprint(sources, cfg)
    if _completed(work, fingerprint):  # killed between completing and renaming
        return _rename(work, out_dir)
    _prepare_work(work, fingerprint)
    plan = placements(sources, cfg)
    n_shards = math.ceil(len(plan) / cfg.shard_size)
    mine = [k for k in range(n_shards) if part is None or k % part[1] == part[0]]
    todo = [k for k in mine if not _rows_path(work, k).is_file()]
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
    bar = progress(total=len(todo), desc="compose", unit="shard")
    try:
        if cfg.workers > 1 and len(todo) > 1:
            with mp.get_context("fork").Pool(cfg.workers) as pool:
                for _ in pool.imap_unordered(_compose_shard, todo):
                    bar.update()
        else:
            for k in todo:
                _compose_shard(k)
                bar.update()
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        done = sum(_rows_path(work, k).is_file() for k in range(n_shards))
        raise InputError(f"{work}: the disk is full ({shutil.disk_usage(work).free / 2**20:.0f} MiB free). The "
                         f"{done} finished shard(s) of {n_shards} are kept there; free some space and run the "
                         "same command again (`dvc repro compose`): it resumes") from None
    finally:
        bar.close()
        _STATE.clear()
    missing = [k for k in range(n_shards) if not _rows_path(work, k).is_file()]
    if missing:
        log.info("part done; %d of %d shards still missing in %s: run the other parts, then compose "
                 "without --part to finish", len(missing), n_shards, work)
        return None
    _finish(work, plan, sources, depths, cfg, n_shards, fingerprint)
    return _rename(work, out_dir)


def _completed(work: Path, fingerprint: str) -> bool:
    """Whether `work` was completed (meta.json written last) from this plan."""
    if not (work / META).is_file():
        return False
    return json.loads((work / META).read_text()).get("fingerprint") == fingerprint


def _finish(work: Path, plan: pd.DataFrame, sources: Sources, depths: np.ndarray,
            cfg: ComposeConfig, n_shards: int, fingerprint: str) -> None:
    """Complete `work`: the index, the bg arrays, then meta.json, which marks it complete."""
    rows = pd.concat([pd.read_parquet(_rows_path(work, k)) for k in range(n_shards)], ignore_index=True)
    index = pd.concat([plan, rows], axis=1)
    with atomic_path(work / INDEX) as tmp:
        index.to_parquet(tmp, index=False)
    for name, array in ((BG, sources.bg), (BG_DEPTH, depths)):
        with atomic_path(work / name) as tmp, open(tmp, "wb") as f:
            np.save(f, array)
    atomic_write_json(work / META, {"format_version": FORMAT_VERSION, "compose": _identity(cfg),
                                    "samples": len(index), "shards": n_shards, "fingerprint": fingerprint,
                                    "files": file_records(work, n_shards)})


def _rename(work: Path, out_dir: Path) -> pd.DataFrame:
    """Drop the bookkeeping of a completed `work` and rename it to `out_dir`."""
    shutil.rmtree(work / "rows", ignore_errors=True)
    (work / "plan.json").unlink(missing_ok=True)
    work.chmod(0o755)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    work.rename(out_dir)
    meta = json.loads((out_dir / META).read_text())
    log.info("composed %d samples into %d shards in %s", meta["samples"], meta["shards"], out_dir)
    return pd.read_parquet(out_dir / INDEX)
