"""Reading and checking the raw sources in `data/`: bg, optional bg_depth, and RGBA fg.

Size rules (one each, stated here and in the README):
- bg: scaled so its shorter side is `bg_size` (Lanczos), then centre-cropped to a square.
  `bg_depth/<stem>.png` (16-bit, 0 = nearest, 65535 = farthest) gets the same scale and
  crop (bilinear). Without it, depth comes from the ground-plane prior in `compose`.
- fg: scaled so its longer side is `fg_size`, keeping aspect (Lanczos on premultiplied
  alpha, so edges do not darken).
Validation collects every problem before failing, each with the file and the fix.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

BG_SUFFIXES = (".jpg", ".jpeg", ".png")
MISSING_DATA_HELP = (
    "generate the built-in default with `fgbg synth data` (or `make data`), pull it with "
    "`dvc pull`, or bring your own images: data/bg/*.jpg|png and data/fg/*.png (RGBA), then "
    "`dvc add data`"
)


class SourceError(ValueError):
    """One or more source files are missing or unusable; the message lists each."""


@dataclass(frozen=True)
class Sources:
    bg_names: list[str]
    bg: np.ndarray  # N_bg, S, S, 3 uint8
    bg_depth: list[np.ndarray | None]  # each S, S float32 in [0, 1], or None
    fg_names: list[str]
    fg: list[np.ndarray]  # each h, w, 4 uint8 with max(h, w) == fg_size


def _open(path: Path, problems: list[str]) -> Image.Image | None:
    try:
        img = Image.open(path)
        img.load()
        return img
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        problems.append(f"{path}: cannot read this image ({e}); replace or delete it")
        return None


def _square(img: Image.Image, size: int, resample: int) -> Image.Image:
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((nw, nh), resample) if (nw, nh) != (w, h) else img
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def _load_bg(path: Path, size: int, problems: list[str]) -> np.ndarray | None:
    img = _open(path, problems)
    if img is None:
        return None
    return np.asarray(_square(img.convert("RGB"), size, Image.Resampling.LANCZOS))


def _load_depth(path: Path, size: int, problems: list[str]) -> np.ndarray | None:
    img = _open(path, problems)
    if img is None:
        return None
    arr = np.asarray(img)
    if arr.ndim != 2 or arr.dtype not in (np.uint16, np.int32, np.uint8):
        problems.append(f"{path}: bg depth must be a 1-channel 16-bit PNG, got mode {img.mode}; re-save it as 16-bit greyscale")
        return None
    scale = 255.0 if arr.dtype == np.uint8 else 65535.0
    f = Image.fromarray(arr.astype(np.float32) / scale, mode="F")
    return np.clip(np.asarray(_square(f, size, Image.Resampling.BILINEAR)), 0, 1).astype(np.float32)


def _load_fg(path: Path, size: int, problems: list[str]) -> np.ndarray | None:
    img = _open(path, problems)
    if img is None:
        return None
    if "A" not in img.getbands() and "transparency" not in img.info:
        problems.append(f"{path}: foreground has no alpha channel; save it as an RGBA PNG with a transparent background")
        return None
    rgba = img.convert("RGBA")
    if rgba.getchannel("A").getextrema()[1] == 0:
        problems.append(f"{path}: foreground alpha is empty (fully transparent); cut the object out again")
        return None
    w, h = rgba.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if (nw, nh) != (w, h):
        rgba = rgba.convert("RGBa").resize((nw, nh), Image.Resampling.LANCZOS).convert("RGBA")
    return np.asarray(rgba)


def _list(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes and not p.name.startswith("."))


def load_sources(data_dir: str | Path, bg_size: int, fg_size: int) -> Sources:
    """All sources in `data_dir`, resized by the rules above; every problem is reported at once."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise SourceError(f"{data_dir}/: no source folder here; {MISSING_DATA_HELP}")
    problems: list[str] = []
    for sub in ("bg", "fg"):
        if not (data_dir / sub).is_dir() or not _list(data_dir / sub, BG_SUFFIXES):
            problems.append(f"{data_dir / sub}/: no images; {MISSING_DATA_HELP}")
    if problems:
        raise SourceError("\n".join(problems))
    bg_paths = _list(data_dir / "bg", BG_SUFFIXES)
    fg_paths = _list(data_dir / "fg", (".png",))
    for kind, paths in (("bg", bg_paths), ("fg", fg_paths)):
        stems = [p.stem for p in paths]
        for stem in sorted({s for s in stems if stems.count(s) > 1}):
            problems.append(f"{data_dir / kind}/: two files named {stem!r} with different suffixes; rename one")
    bgs, depths = [], []
    for p in bg_paths:
        bgs.append(_load_bg(p, bg_size, problems))
        dpath = data_dir / "bg_depth" / f"{p.stem}.png"
        depths.append(_load_depth(dpath, bg_size, problems) if dpath.is_file() else None)
    fgs = [_load_fg(p, fg_size, problems) for p in fg_paths]
    if problems:
        raise SourceError(f"{len(problems)} problem(s) with the sources:\n" + "\n".join(problems))
    log.info("loaded %d bg (%d with exact depth) and %d fg from %s",
             len(bgs), sum(d is not None for d in depths), len(fgs), data_dir)
    return Sources(
        bg_names=[p.stem for p in bg_paths],
        bg=np.stack(bgs),
        bg_depth=depths,
        fg_names=[p.stem for p in fg_paths],
        fg=fgs,
    )
