"""`fgbg export`: a composed dataset as plain image files, for browsing or other tools.

Writes <out>/fg_bg/<name>.png|jpg, <out>/mask/<name>.png (0/255) and <out>/depth/<name>.png
(16-bit, depth = value / 65535), where <name> is `<sample>_<fg>[_flip]_<bg>_x<x>_y<y>` (the
sample number keeps names unique where random positions coincide; a "/" of a source in a
subfolder becomes "-"). The files go into `<out>.partial/`, which is renamed
to `<out>` only when every sample is written: a failure leaves no half export behind.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from fgbg.core.errors import InputError
from fgbg.core.imageio import atomic_write_bytes, encode_image
from fgbg.core.progress import progress
from fgbg.dataset.store import ComposedStore, encode_depth

FOLDERS = ("fg_bg", "mask", "depth")


def sample_name(row) -> str:
    flip = "_flip" if row.flip else ""
    return f"{row.sample:06d}_{row.fg}{flip}_{row.bg}_x{row.x}_y{row.y}".replace("/", "-")


def export_dataset(dataset_dir: str | Path, out: str | Path, limit: int | None = None, seed: int = 0) -> int:
    """Write every sample, or `limit` of them drawn at random with `seed` (so they spread over the
    sources: the first N would all be one fg on one bg); returns how many were written."""
    out = Path(out)
    if out.exists() and not {p.name for p in out.iterdir()} <= set(FOLDERS):
        raise InputError(f"{out}: exists and holds more than an export ({', '.join(FOLDERS)}); "
                         "choose another --out, or empty it")
    ds = ComposedStore(dataset_dir)
    work = out.with_name(out.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    fmt = ds.meta["compose"]["fg_bg_format"]
    ext = "jpg" if fmt == "jpeg" else "png"
    n = len(ds) if limit is None else min(limit, len(ds))
    ids = np.arange(len(ds)) if n == len(ds) else np.sort(np.random.default_rng(seed).choice(len(ds), n, replace=False))
    try:
        for i, row in zip(ids, progress(ds.index.iloc[ids].itertuples(), total=n, desc="export", unit="sample")):
            _, fg_bg, mask, depth = ds.read(int(i))
            name = sample_name(row)
            atomic_write_bytes(work / "fg_bg" / f"{name}.{ext}", encode_image(fg_bg, fmt, ds.meta["compose"]["jpeg_quality"]))
            atomic_write_bytes(work / "mask" / f"{name}.png", encode_image(mask.astype(np.uint8) * 255))
            atomic_write_bytes(work / "depth" / f"{name}.png", encode_depth(depth))
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        ds.close()
    shutil.rmtree(out, ignore_errors=True)
    work.rename(out)
    return n
