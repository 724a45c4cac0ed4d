"""The composed dataset on disk: shard files, a parquet index, and the bg arrays.

A composed folder:
    index.parquet      one row per placement: sample, bg, fg, bg_idx, fg_idx, flip, x, y,
                       scale, h, w, bg_measured (the bg's depth is a map from data/bg_depth/,
                       not the ground-plane prior), obj_depth, shard, offset, patch_len, alpha_len,
                       depth_len, crc32 of the record, and per-sample sums that `stats` adds up
    shards/NNNNN.bin   records back to back
    bg.npy             N_bg, S, S, 3 uint8: the resized backgrounds
    bg_depth.npy       N_bg, S, S float32: their depth
    meta.json          format version, the composition params, and a record of every other
                       file: the sha256 of index.parquet, bg.npy and bg_depth.npy, and the
                       size of each shard

A placement changes the bg only inside the fg's h x w box, so a record holds just that:
    patch  the fg_bg pixels of the box, PNG (lossless) or JPEG (`fg_bg_format`)
    alpha  the placed fg's 8-bit alpha in the box, zlib (lossless); the mask is
           alpha >= compose.mask_threshold, as composing decided it
    depth  empty for geometry depth (bg depth, and `obj_depth` under the mask: exact),
           else the whole depth map as a 16-bit PNG (teacher depth)
`read(i)` rebuilds the full fg_bg, mask and depth with one positioned read; `sample(i)` adds the
bg depth and the alpha.

Damage is caught before it can reach a metric. Opening a dataset checks meta.json's record
of every file (a missing or truncated shard, a damaged index or bg array), and every read
checks its record's CRC32; either stops the run with the file (and sample) and the fix,
`RESTORE`. The CRC costs about 1% of a read (`benchmarks/bench_dataset.py`).
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from fgbg.core.errors import InputError
from fgbg.core.imageio import decode_image, decode_rgb, depth_to_uint16, encode_image, uint16_to_depth

FORMAT_VERSION = 5  # 4: the alpha in place of the mask bits; 5: bg_measured in the index
INDEX = "index.parquet"
BG = "bg.npy"
BG_DEPTH = "bg_depth.npy"
META = "meta.json"
SHARDS = "shards"
RESTORE = ("restore it with `dvc checkout dataset/composed` (from the DVC cache), or compose it again "
           "with `dvc repro -f compose`")
SUM_COLUMNS = ["fg_bg_sum_r", "fg_bg_sum_g", "fg_bg_sum_b", "fg_bg_sq_r", "fg_bg_sq_g", "fg_bg_sq_b",
               "mask_sum", "depth_sum", "depth_sq"]


def shard_name(k: int) -> str:
    return f"{k:05d}.bin"


def encode_depth(depth: np.ndarray | None) -> bytes:
    """S, S depth in [0, 1] -> 16-bit PNG bytes (value = round(depth * 65535)); None -> b""."""
    if depth is None:
        return b""
    return encode_image(depth_to_uint16(depth))


def decode_depth(blob: bytes) -> np.ndarray:
    return uint16_to_depth(decode_image(blob))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_files(root: Path, meta: dict) -> None:
    """Every file meta.json records is there, of its size or hash; else the file and the fix."""
    files = meta["files"]
    for k, size in enumerate(files["shard_bytes"]):
        path = root / SHARDS / shard_name(k)
        if not path.is_file():
            raise InputError(f"{path}: shard missing from the composed dataset; {RESTORE}")
        if path.stat().st_size != size:
            raise InputError(f"{path}: shard is {path.stat().st_size:,} bytes, meta.json records {size:,} "
                             f"(truncated or damaged); {RESTORE}")
    for name, digest in files["sha256"].items():
        path = root / name
        if not path.is_file():
            raise InputError(f"{path}: missing from the composed dataset; {RESTORE}")
        if _sha256(path) != digest:
            raise InputError(f"{path}: its checksum differs from meta.json's (damaged); {RESTORE}")


def encode_alpha(alpha: np.ndarray) -> bytes:
    """h, w uint8 alpha -> its record bytes (zlib: lossless, and about 3x faster to decode than a PNG)."""
    return zlib.compress(np.ascontiguousarray(alpha, np.uint8).tobytes(), 6)


def decode_alpha(blob: bytes, h: int, w: int) -> np.ndarray:
    return np.frombuffer(zlib.decompress(blob), np.uint8).reshape(h, w)


class Sample(NamedTuple):
    """One sample's images and maps (whole, or cropped and augmented alike): what a head's target is made from."""

    bg: np.ndarray  # H, W, 3 uint8
    fg_bg: np.ndarray  # H, W, 3 uint8
    mask: np.ndarray  # H, W bool
    depth: np.ndarray  # H, W float32 in [0, 1]
    bg_depth: np.ndarray  # H, W float32 in [0, 1]: the scene's depth without the object (the bg's)
    alpha: np.ndarray  # H, W float32 in [0, 1]: the object's alpha (k / 255, 0 outside its box)


class ComposedStore:
    """Random access to a composed folder: `read(i)` -> (bg, fg_bg, mask, depth) arrays."""

    def __init__(self, root: str | Path, verify_records: bool = True) -> None:
        """`verify_records=False` skips the per-read CRC (only the benchmark's baseline does)."""
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: no composed dataset here; run `dvc repro compose`")
        try:
            meta = json.loads((self.root / META).read_text())
        except (OSError, ValueError) as e:
            raise InputError(f"{self.root / META}: missing or damaged ({type(e).__name__}); {RESTORE}") from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise InputError(f"{self.root}: dataset format {meta.get('format_version')}, this fgbg reads "
                             f"{FORMAT_VERSION}; compose it again with `dvc repro compose`")
        _check_files(self.root, meta)
        self.meta = meta
        self.index = pd.read_parquet(self.root / INDEX)
        # memory-mapped, shared by DataLoader workers; plain ndarray views (np.memmap's slicing costs ~1 us a call)
        self.bg = np.load(self.root / BG, mmap_mode="r").view(np.ndarray)
        self.bg_depth = np.load(self.root / BG_DEPTH, mmap_mode="r").view(np.ndarray)
        self.mask_threshold = int(meta["compose"]["mask_threshold"])
        cols = ["shard", "offset", "patch_len", "alpha_len", "depth_len", "crc32", "bg_idx", "x", "y", "h", "w"]
        self._cols = self.index[cols].to_numpy(np.int64)
        self._obj_depth = self.index["obj_depth"].to_numpy(np.float32)
        self._measured = self.index["bg_measured"].to_numpy(bool)
        self._fds: dict[int, int] = {}
        self.verify_records = verify_records

    def __len__(self) -> int:
        return len(self.index)

    def box(self, i: int) -> tuple[int, int, int, int]:
        """(x, y, h, w) of sample i's object box."""
        x, y, h, w = self._cols[i, -4:]
        return int(x), int(y), int(h), int(w)

    def measured(self, i: int) -> bool:
        """Whether sample i's bg depth is a measured map (data/bg_depth/), not the ground-plane prior."""
        return bool(self._measured[i])

    def check_ids(self, ids, source: str) -> None:
        """Every sample id in `ids` (from `source`, say a split file) exists in this dataset."""
        beyond = [i for i in ids if not 0 <= i < len(self)]
        if beyond:
            raise InputError(f"{source}: lists sample {beyond[0]} ({len(beyond)} beyond the dataset's {len(self)}); "
                             "it was made for another dataset: run `dvc repro split`")

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_fds"] = {}  # file descriptors do not cross into DataLoader workers
        return state

    def _fd(self, shard: int) -> int:
        if shard not in self._fds:
            self._fds[shard] = os.open(self.root / SHARDS / shard_name(shard), os.O_RDONLY)
        return self._fds[shard]

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(bg S, S, 3 uint8; fg_bg S, S, 3 uint8; mask S, S bool; depth S, S float32 in [0, 1])."""
        return self._read(i)[:4]

    def sample(self, i: int) -> Sample:
        """`read(i)`, the bg depth of its bg and the object's alpha, as a Sample."""
        bg, fg_bg, mask, depth, alpha_box = self._read(i)
        x, y, h, w = self.box(i)
        alpha = np.zeros(mask.shape, np.float32)
        alpha[y : y + h, x : x + w] = alpha_box / np.float32(255)
        return Sample(bg, fg_bg, mask, depth, np.array(self.bg_depth[self._cols[i, 6]]), alpha)

    def _read(self, i: int) -> tuple[np.ndarray, ...]:
        """`read(i)` and the h, w uint8 alpha of the object's box. bg is a read-only view of the bg
        array; the rest is written only where the box is."""
        shard, offset, n_patch, n_alpha, n_depth, crc, b, x, y, h, w = self._cols[i]
        blob = os.pread(self._fd(int(shard)), int(n_patch + n_alpha + n_depth), int(offset))
        if self.verify_records and zlib.crc32(blob) != crc:
            raise InputError(f"{self.root / SHARDS / shard_name(int(shard))}: the record of sample {i} is damaged "
                             f"(its CRC32 differs from the index); {RESTORE}")
        box = slice(y, y + h), slice(x, x + w)
        bg = self.bg[b]
        fg_bg = bg.copy()
        fg_bg[box] = decode_rgb(blob[:n_patch])
        alpha = decode_alpha(blob[n_patch : n_patch + n_alpha], int(h), int(w))
        mask = np.zeros(bg.shape[:2], bool)
        mask[box] = alpha >= self.mask_threshold
        if n_depth:
            depth = decode_depth(blob[n_patch + n_alpha :])
        else:
            depth = self.bg_depth[b].copy()
            depth[box][mask[box]] = self._obj_depth[i]
        return bg, fg_bg, mask, depth, alpha

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
