"""One shard of the composed dataset: its records, and its index rows with the exact sums that
fgbg.dataset.stats adds up.

The plan's placements come in runs that share a placed fg and a bg (the N positions of one fg,
flip and bg): each run prepares its fg once and takes its foot medians in one call
(compose.compose_patches); each sample then costs a fixed-point blend, a codec call (and for
JPEG the decode back, so that the sums are of the bytes as read) and two meanStdDev calls,
turned into exact integer sums for the whole shard at the end. Per-sample arrays stay small
on purpose: batches of them page-faulted afresh and ran slower. A shard depends on nothing
but its placements, so the same shard comes out byte for byte wherever and whenever it is made.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zlib
from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd

from fgbg.composing.compose import PreparedFg, compose_patches, placed_fg, placed_size, prepare_fg
from fgbg.composing.sources import Sources
from fgbg.core.config import ComposeConfig
from fgbg.core.imageio import decode_image, encode_image
from fgbg.dataset.store import SUM_COLUMNS, decode_depth, encode_alpha, encode_depth

_TEACHERS: dict = {}  # per process: one ONNX session, not one per shard


def rgb_sums(image: np.ndarray) -> np.ndarray:
    """6 int64: [sum r, g, b, sum of squares r, g, b] of an h, w, 3 uint8 image, exact (see `sums_of`)."""
    return sums_of(moments(image)[None], image.shape[0] * image.shape[1])[0]


def moments(image: np.ndarray) -> np.ndarray:
    """2, 3 float64: each channel's mean and standard deviation (OpenCV's meanStdDev, which sums in
    integers and doubles)."""
    return np.asarray(cv2.meanStdDev(image))[..., 0]


def sums_of(stats: np.ndarray, pixels) -> np.ndarray:
    """N, 2, 3 `moments` of images of `pixels` pixels (a number, or N) -> N, 6 int64 sums and sums of
    squares. n (mean^2 + std^2) is the sum of squares to within n x 65025 x 4e-16 (1e-6 for a 192 px
    image), so rounding recovers it exactly (tests/test_compose.py checks it against integer sums)."""
    mean, std = stats[:, 0], stats[:, 1]
    n = np.asarray(pixels, np.float64).reshape(-1, 1)
    return np.rint(np.concatenate([mean * n, (mean * mean + std * std) * n], axis=1)).astype(np.int64)


@dataclass(frozen=True, eq=False)
class ShardJob:
    """What every shard of one run needs: sent to each Dask worker once (a module-level dataclass, so
    it pickles), and passed to `make_shard` with each shard's number."""

    cfg: ComposeConfig
    plan: pd.DataFrame  # every placement, in sample order (compose.placements)
    sources: Sources
    depths: np.ndarray  # N_bg, S, S float32: each bg's depth (exact, or the ground-plane prior)
    foot_caps: np.ndarray  # N_bg float: the most depth an object takes (compose_patches): PRIOR_FAR on the prior
    bg_sums: np.ndarray  # N_bg, 6 int64: each bg's sums and sums of squares per channel (as rgb_sums)
    depth_sums: np.ndarray  # N_bg, 2 float64: each bg depth's sum and sum of squares
    threads: int  # onnxruntime threads of a teacher session (0: its default)
    teacher_model: bytes | None  # the teacher's ONNX bytes under depth: teacher
    teacher_sha256: str | None


def _runs(*columns: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of consecutive placements equal in every column (one placed fg on one bg)."""
    keys = np.stack(columns, axis=1)
    starts = [0, *(np.nonzero((keys[1:] != keys[:-1]).any(axis=1))[0] + 1).tolist()]
    return list(zip(starts, [*starts[1:], len(keys)]))


def _teacher(job: ShardJob):
    """The process's teacher session for this job (a Dask worker keeps it between shards)."""
    from fgbg.composing.teacher import Teacher

    key = (job.teacher_sha256, json.dumps(dataclasses.asdict(job.cfg.teacher), sort_keys=True))
    if key not in _TEACHERS:
        _TEACHERS[key] = Teacher(job.cfg.teacher, job.teacher_model, threads=job.threads)
    return _TEACHERS[key]


def make_shard(k: int, job: ShardJob) -> tuple[int, bytes, bytes]:
    """Shard k of the job's plan: (k, the shard file's bytes, its index rows as parquet bytes)."""
    cfg, src = job.cfg, job.sources
    plan = job.plan.iloc[k * cfg.shard_size : (k + 1) * cfg.shard_size]
    n = len(plan)
    bg_idx, fg_idx, flip, xs, ys, hs, ws = (plan[c].to_numpy() for c in ("bg_idx", "fg_idx", "flip", "x", "y", "h", "w"))
    fg_shapes = np.array([fg.shape[:2] for fg in src.fg])[fg_idx]
    full_h, full_w = placed_size((fg_shapes[:, 0], fg_shapes[:, 1]), plan["scale"].to_numpy())
    patch_blobs, alpha_blobs, depth_blobs = [b""] * n, [b""] * n, [b""] * n
    obj_depth = np.empty(n, np.float32)
    stored, boxes = np.empty((n, 2, 3)), np.empty((n, 2, 3))  # the moments of each fg_bg patch as stored, and of its bg box
    n_obj = np.empty(n, np.int64)
    d_sums = np.empty((n, 2), np.float64)
    patches = [None] * n  # kept for the teacher, which sees whole images
    prepared: dict[tuple, tuple[PreparedFg, bytes]] = {}
    for start, stop in _runs(fg_idx, flip, bg_idx, hs, ws, full_h, full_w):
        key = (fg_idx[start], flip[start], int(full_h[start]), int(full_w[start]), hs[start], ws[start])
        if key not in prepared:
            if len(prepared) > 64:
                prepared.clear()
            placed = placed_fg(src.fg[key[0]], key[1], *key[2:4])[: key[4], : key[5]]  # grid: cropped at the border
            prepared[key] = (prepare_fg(np.ascontiguousarray(placed), cfg.mask_threshold), encode_alpha(placed[..., 3]))
        fg, alpha_blobs[start:stop] = prepared[key][0], [prepared[key][1]] * (stop - start)
        b = bg_idx[start]
        run_patches, obj_depth[start:stop] = compose_patches(
            src.bg[b], job.depths[b], fg, xs[start:stop], ys[start:stop], job.foot_caps[b])
        h, w = fg.obj.shape
        n_obj[start:stop] = fg.n_obj
        for i, patch in zip(range(start, stop), run_patches):
            patch_blobs[i] = encode_image(patch, cfg.fg_bg_format, cfg.jpeg_quality, filtered=False)  # read each epoch
            if cfg.fg_bg_format == "png":
                stored[i] = moments(patch)
            else:  # the sums are of the bytes as read
                stored[i] = moments(decode_image(patch_blobs[i], bgr=True))[:, ::-1]
            boxes[i] = moments(src.bg[b][ys[i] : ys[i] + h, xs[i] : xs[i] + w])
            if cfg.depth == "geometry":  # the bg depth's sums, the object's depth in place of the bg's under it
                under = job.depths[b][ys[i] : ys[i] + h, xs[i] : xs[i] + w][fg.obj].astype(np.float64)
                od = 0.0 if np.isnan(obj_depth[i]) else float(obj_depth[i])
                d_sums[i, 0] = job.depth_sums[b][0] - under.sum() + od * fg.n_obj
                d_sums[i, 1] = job.depth_sums[b][1] - (under * under).sum() + od * od * fg.n_obj
            else:
                patches[i] = patch
    rgb = job.bg_sums[bg_idx] + sums_of(stored, hs * ws) - sums_of(boxes, hs * ws)
    if cfg.depth == "teacher":
        _teacher_depths(job, patches, bg_idx, xs, ys, depth_blobs, d_sums)
    records, lengths, crc = _records(patch_blobs, alpha_blobs, depth_blobs)
    offsets = np.concatenate([[0], np.cumsum(lengths.sum(axis=1))[:-1]])
    rows = pd.DataFrame({"shard": k, "offset": offsets, "patch_len": lengths[:, 0], "alpha_len": lengths[:, 1],
                         "depth_len": lengths[:, 2], "crc32": crc, "obj_depth": obj_depth})
    for j, col in enumerate(SUM_COLUMNS[:6]):
        rows[col] = rgb[:, j]
    rows["mask_sum"], rows["depth_sum"], rows["depth_sq"] = n_obj, d_sums[:, 0], d_sums[:, 1]
    buf = io.BytesIO()
    rows.to_parquet(buf, index=False)
    return k, records, buf.getvalue()


def _teacher_depths(job: ShardJob, patches: list, bg_idx, xs, ys, depth_blobs: list, d_sums: np.ndarray) -> None:
    """The teacher's depth of each whole fg_bg, in batches of teacher.batch: its record and its sums, in place."""
    teacher, step, n = _teacher(job), job.cfg.teacher.batch, len(patches)
    for start in range(0, n, step):
        full = job.sources.bg[bg_idx[start : start + step]].copy()
        for img, i in zip(full, range(start, start + step)):
            h, w = patches[i].shape[:2]
            img[ys[i] : ys[i] + h, xs[i] : xs[i] + w] = patches[i]
        for i, depth in zip(range(start, start + step), teacher.predict(full)):
            depth_blobs[i] = encode_depth(depth)
            q = decode_depth(depth_blobs[i]).astype(np.float64)  # the sums are of the depth as read
            d_sums[i] = q.sum(), (q * q).sum()


def _records(*parts: list[bytes]) -> tuple[bytes, np.ndarray, np.ndarray]:
    """Each sample's record, its parts back to back (patch, alpha, depth): (the shard's bytes, N, 3 part
    lengths, N CRC32s of the records, which every read checks: fgbg.dataset.store)."""
    f = io.BytesIO()
    lengths = np.array([[len(blob) for blob in record] for record in zip(*parts)])
    crc = np.zeros(len(lengths), np.int64)
    for i, record in enumerate(zip(*parts)):
        for blob in record:
            f.write(blob)
            crc[i] = zlib.crc32(blob, crc[i])
    return f.getvalue(), lengths, crc
