"""The composed dataset on disk: shard files, a parquet index, and the bg arrays.

A composed folder:
    index.parquet      one row per placement: sample, bg, fg, bg_idx, fg_idx, flip, x, y,
                       scale, h, w, obj_depth, shard, offset, patch_len, mask_len,
                       depth_len, and per-sample sums that `stats` adds up
    shards/NNNNN.bin   records back to back
    bg.npy             N_bg, S, S, 3 uint8: the resized backgrounds
    bg_depth.npy       N_bg, S, S float32: their depth
    meta.json          format version and the composition params

A placement changes the bg only inside the fg's h x w box, so a record holds just that:
    patch  the fg_bg pixels of the box, PNG (lossless) or JPEG (`fg_bg_format`)
    mask   the box's mask bits, np.packbits (lossless)
    depth  empty for geometry depth (bg depth, and `obj_depth` under the mask: exact),
           else the whole depth map as a 16-bit PNG (teacher depth)
`read(i)` rebuilds the full fg_bg, mask and depth with one positioned read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from fgbg.errors import InputError
from fgbg.imageio import decode_image, depth_to_uint16, encode_image

FORMAT_VERSION = 2
INDEX = "index.parquet"
BG = "bg.npy"
BG_DEPTH = "bg_depth.npy"
META = "meta.json"
SHARDS = "shards"
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
    return decode_image(blob).astype(np.float32) / 65535.0


def decode_mask(blob: bytes, h: int, w: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(blob, np.uint8), count=h * w).reshape(h, w).astype(bool)


class Dataset:
    """Random access to a composed folder: `read(i)` -> (bg, fg_bg, mask, depth) arrays."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not (self.root / INDEX).is_file():
            raise FileNotFoundError(
                f"{self.root}: no composed dataset here ({INDEX} is missing); run `dvc repro compose`"
            )
        meta = json.loads((self.root / META).read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise InputError(f"{self.root}: dataset format {meta.get('format_version')}, this fgbg reads "
                             f"{FORMAT_VERSION}; compose it again with `dvc repro compose`")
        self.meta = meta
        self.index = pd.read_parquet(self.root / INDEX)
        self.bg = np.load(self.root / BG, mmap_mode="r")
        self.bg_depth = np.load(self.root / BG_DEPTH, mmap_mode="r")
        cols = ["shard", "offset", "patch_len", "mask_len", "depth_len", "bg_idx", "x", "y", "h", "w"]
        self._cols = self.index[cols].to_numpy(np.int64)
        self._obj_depth = self.index["obj_depth"].to_numpy(np.float32)
        self._fds: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.index)

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
        shard, offset, n_patch, n_mask, n_depth, b, x, y, h, w = self._cols[i]
        blob = os.pread(self._fd(int(shard)), int(n_patch + n_mask + n_depth), int(offset))
        bg = np.array(self.bg[b])
        fg_bg = bg.copy()
        fg_bg[y : y + h, x : x + w] = decode_image(blob[:n_patch])
        mask = np.zeros(bg.shape[:2], bool)
        mask[y : y + h, x : x + w] = decode_mask(blob[n_patch : n_patch + n_mask], int(h), int(w))
        if n_depth:
            depth = decode_depth(blob[n_patch + n_mask :])
        else:
            depth = np.array(self.bg_depth[b])
            depth[mask] = self._obj_depth[i]
        return bg, fg_bg, mask, depth

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
