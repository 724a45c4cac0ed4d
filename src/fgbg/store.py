"""The composed dataset on disk: a few shard files, an index, and the bg images.

Layout of a composed folder:
    index.csv          one row per placement: sample, bg, fg, bg_idx, fg_idx, flip, x, y,
                       shard, offset, fg_bg_len, mask_len, depth_len
    shards/NNNNN.bin   records back to back; a record is fg_bg PNG | mask PNG | depth PNG
    bg.npy             N_bg, S, S, 3 uint8: the resized bg every placement refers to
A record is read with one positioned read at `offset`, so any sample is reachable at
random without touching the others. mask PNGs hold 0/255; depth PNGs are 16-bit with
depth = value / 65535.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from fgbg.imageio import decode_image, encode_image

KINDS = ("fg_bg", "mask", "depth")
INDEX = "index.csv"
BG = "bg.npy"
SHARDS = "shards"


def encode_record(fg_bg: np.ndarray, mask: np.ndarray, depth: np.ndarray) -> list[bytes]:
    """fg_bg H, W, 3 uint8; mask H, W bool; depth H, W float in [0, 1] -> three PNG blobs."""
    return [
        encode_image(fg_bg),
        encode_image(mask.astype(np.uint8) * 255),
        encode_image(np.round(np.clip(depth, 0, 1) * 65535).astype(np.uint16)),
    ]


class ShardWriter:
    """Appends records to numbered shard files of at most `shard_size` records each."""

    def __init__(self, root: Path, shard_size: int) -> None:
        self.dir = root / SHARDS
        self.dir.mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size
        self.shard, self.count, self.offset = -1, shard_size, 0
        self.file = None

    def add(self, blobs: list[bytes]) -> dict[str, int]:
        if self.count >= self.shard_size:
            self.close()
            self.shard, self.count, self.offset = self.shard + 1, 0, 0
            self.file = open(self.dir / f"{self.shard:05d}.bin", "wb")
        row = {"shard": self.shard, "offset": self.offset}
        for kind, blob in zip(KINDS, blobs):
            self.file.write(blob)
            row[f"{kind}_len"] = len(blob)
            self.offset += len(blob)
        self.count += 1
        return row

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished folder into place, replacing any old one."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def temp_dir_beside(final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    tmp.chmod(0o755)  # mkdtemp makes it private; the dataset is not
    return tmp


class Dataset:
    """Random access to a composed folder: `read(i)` -> (fg_bg, mask, depth) arrays."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not (self.root / INDEX).is_file():
            raise FileNotFoundError(
                f"{self.root}: no composed dataset here ({INDEX} is missing); run `dvc repro compose`"
            )
        self.index = pd.read_csv(self.root / INDEX)
        self.bg = np.load(self.root / BG, mmap_mode="r")
        self._cols = self.index[["shard", "offset", "fg_bg_len", "mask_len", "depth_len", "bg_idx"]].to_numpy()
        self._fds: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_fds"] = {}  # file descriptors do not cross into DataLoader workers
        return state

    def _fd(self, shard: int) -> int:
        if shard not in self._fds:
            self._fds[shard] = os.open(self.root / SHARDS / f"{shard:05d}.bin", os.O_RDONLY)
        return self._fds[shard]

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(bg H, W, 3 uint8; fg_bg H, W, 3 uint8; mask H, W bool; depth H, W float32 in [0, 1])."""
        shard, offset, n_img, n_mask, n_depth, bg_idx = (int(v) for v in self._cols[i])
        blob = os.pread(self._fd(shard), n_img + n_mask + n_depth, offset)
        fg_bg = decode_image(blob[:n_img])
        mask = decode_image(blob[n_img : n_img + n_mask]) > 127
        depth = decode_image(blob[n_img + n_mask :]).astype(np.float32) / 65535.0
        return np.array(self.bg[bg_idx]), fg_bg, mask, depth

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
