"""Decoding and checking the raw sources in `data/`: bg, fg, optional fg_mask and bg_depth.

Which files are read, how they are named, and the limits on their bytes are
fgbg.composing.source_files'; `bg_depth` and `fg_mask` pair with bg and fg by name. Every image is
turned upright by its EXIF orientation, as a photo viewer shows it.
Size rules (one each, stated here and in the README):
- bg: scaled so its shorter side is `bg_size` (Lanczos), then centre-cropped to a square.
  `bg_depth/<stem>.png` (16-bit, 0 = nearest, 65535 = farthest) gets the same scale and
  crop (bilinear). Without it, depth comes from the ground-plane prior in `compose`.
- fg: scaled so its longer side is `fg_size`, keeping aspect (Lanczos on premultiplied
  alpha, so edges do not darken). `fg_mask/<stem>.png` (greyscale, same size) replaces
  the fg's alpha.
Modes are converted: palette, greyscale, CMYK and 16-bit images to RGB(A). Validation
collects every problem before failing, each with the file and the fix.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fgbg.composing.source_files import Budget, Entry, kind_entries, warn_unused
from fgbg.core.errors import SourceError
from fgbg.core.imageio import IMAGE_SUFFIXES, MAX_PIXELS, uint16_to_depth

log = logging.getLogger(__name__)

MIN_SIDE = 8


def missing_data_help(data_dir: Path) -> str:
    """How to get sources; `dvc pull` only where the repository has a DVC remote to pull from."""
    config = data_dir.resolve().parent / ".dvc" / "config"
    has_remote = config.is_file() and "[\'remote" in config.read_text().replace('"', "\'")
    pull = "pull them with `dvc pull data.dvc`, " if has_remote else ""
    return ("generate the built-in default with `make data` (or `fgbg synth data`), " + pull +
            "or bring your own images: data/bg/*.jpg|png and data/fg/*.png (RGBA), then `dvc add data`")


@dataclass(frozen=True)
class Sources:
    bg_names: list[str]
    bg: np.ndarray  # N_bg, S, S, 3 uint8
    bg_depth: list[np.ndarray | None]  # each S, S float32 in [0, 1], or None
    fg_names: list[str]
    fg: list[np.ndarray]  # each h, w, 4 uint8 with max(h, w) == fg_size

    @property
    def measured(self) -> np.ndarray:
        """N_bg bool: whether each bg's depth is a map from data/bg_depth/ (else the ground-plane prior)."""
        return np.array([depth is not None for depth in self.bg_depth], bool)


def _open(entry: Entry, problems: list[str]) -> Image.Image | None:
    """The image, upright by its EXIF orientation; None (and a problem) when it cannot be used."""
    try:
        img = Image.open(io.BytesIO(entry.data))
        w, h = img.size
        if w * h > MAX_PIXELS:
            problems.append(f"{entry.label}: absurd size {w}x{h} (over {MAX_PIXELS:,} pixels); downscale it")
            return None
        if min(w, h) < MIN_SIDE:
            problems.append(f"{entry.label}: only {w}x{h} pixels; use images at least {MIN_SIDE} px on each side")
            return None
        img.load()
        return ImageOps.exif_transpose(img)
    except UnidentifiedImageError:
        problems.append(f"{entry.label}: not an image, or a format that is not supported; save it as PNG or JPEG, "
                        "or delete it")
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
        problems.append(f"{entry.label}: cannot read this image ({e}); replace or delete it")
    return None


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB from any mode: 16-bit greyscale is scaled down, palette/CMYK/grey converted."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img).astype(np.float64)
        img = Image.fromarray(np.clip(arr / 257.0 + 0.5, 0, 255).astype(np.uint8), "L")
    return img.convert("RGB")


def _square(img: Image.Image, size: int, resample: int) -> Image.Image:
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((nw, nh), resample) if (nw, nh) != (w, h) else img
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def resize_rgba(img: Image.Image, w: int, h: int) -> Image.Image:
    """An RGBA image resized to w x h by Lanczos on premultiplied alpha (RGBa), so that the colour of
    transparent pixels does not bleed into the edges and darken them."""
    return img.convert("RGBa").resize((w, h), Image.Resampling.LANCZOS).convert("RGBA")


def _load_bg(entry: Entry, size: int, problems: list[str]) -> np.ndarray | None:
    img = _open(entry, problems)
    if img is None:
        return None
    return np.asarray(_square(_to_rgb(img), size, Image.Resampling.LANCZOS))


def _load_depth(entry: Entry, size: int, problems: list[str]) -> np.ndarray | None:
    img = _open(entry, problems)
    if img is None:
        return None
    arr = np.asarray(img)
    if arr.ndim != 2 or arr.dtype not in (np.uint16, np.int32, np.uint8):
        problems.append(f"{entry.label}: bg depth must be 1-channel 16-bit, got mode {img.mode}; "
                        "save it as 16-bit greyscale PNG (0 = nearest, 65535 = farthest)")
        return None
    depth = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else uint16_to_depth(arr)
    resized = _square(Image.fromarray(depth, mode="F"), size, Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized), 0, 1).astype(np.float32)


def _load_fg(entry: Entry, mask: Entry | None, size: int, problems: list[str]) -> np.ndarray | None:
    img = _open(entry, problems)
    if img is None:
        return None
    has_alpha = "A" in img.getbands() or "transparency" in img.info
    rgba = _to_rgb(img).convert("RGBA") if not has_alpha else img.convert("RGBA")
    if mask is not None:
        m = _open(mask, problems)
        if m is None:
            return None
        if m.size != rgba.size:
            problems.append(f"{mask.label}: mask is {m.size[0]}x{m.size[1]} but its fg is "
                            f"{rgba.size[0]}x{rgba.size[1]}; make them the same size")
            return None
        rgba.putalpha(_to_rgb(m).convert("L"))
    elif not has_alpha:
        problems.append(f"{entry.label}: foreground has no alpha channel; save it as an RGBA PNG with a "
                        f"transparent background, or add fg_mask/{entry.name}.png")
        return None
    if rgba.getchannel("A").getextrema()[1] == 0:
        problems.append(f"{entry.label}: foreground alpha is empty (fully transparent); cut the object out again")
        return None
    w, h = rgba.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if (nw, nh) != (w, h):
        rgba = resize_rgba(rgba, nw, nh)
    return np.asarray(rgba)


def load_sources(data_dir: str | Path, bg_size: int, fg_size: int) -> Sources:
    """All sources in `data_dir`, resized by the rules above; every problem is reported at once."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise SourceError(f"{data_dir}/: no source folder here; {missing_data_help(data_dir)}")
    problems: list[str] = []
    budget = Budget()
    entries = {}
    for kind, suffixes in (("bg", IMAGE_SUFFIXES), ("fg", (".png",)), ("bg_depth", (".png",)), ("fg_mask", (".png",))):
        before = len(problems)
        entries[kind] = kind_entries(data_dir, kind, suffixes, budget, problems)
        if not entries[kind] and kind in ("bg", "fg") and len(problems) == before:  # not when its files were refused
            problems.append(f"{data_dir / kind}/ (or {kind}.zip): no images; {missing_data_help(data_dir)}")
    warn_unused(data_dir)
    bg_entries, fg_entries = entries["bg"], entries["fg"]
    depth_entries = {e.name: e for e in entries["bg_depth"]}
    mask_entries = {e.name: e for e in entries["fg_mask"]}
    for kind, extra, known in (("bg_depth", depth_entries, bg_entries), ("fg_mask", mask_entries, fg_entries)):
        for name in sorted(set(extra) - {e.name for e in known}):
            problems.append(f"{extra[name].label}: no {kind.split('_')[0]} named {name!r} to go with it; "
                            "rename or delete it")
    bgs = [_load_bg(e, bg_size, problems) for e in bg_entries]
    depths = [_load_depth(depth_entries[e.name], bg_size, problems) if e.name in depth_entries else None
              for e in bg_entries]
    fgs = [_load_fg(e, mask_entries.get(e.name), fg_size, problems) for e in fg_entries]
    if problems:
        raise SourceError(f"{len(problems)} problem(s) with the sources:\n" + "\n".join(problems))
    log.info("loaded %d bg (%d with exact depth) and %d fg from %s",
             len(bgs), sum(depth is not None for depth in depths), len(fgs), data_dir)
    return Sources(
        bg_names=[e.name for e in bg_entries],
        bg=np.stack(bgs),
        bg_depth=depths,
        fg_names=[e.name for e in fg_entries],
        fg=fgs,
    )
