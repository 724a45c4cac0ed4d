"""Reading and checking the raw sources in `data/`: bg, fg, optional fg_mask and bg_depth.

Each kind is a folder (`data/bg/`), read at any depth together with every `.zip` archive
inside it, and/or a zip archive beside it (`data/bg.zip`), read in place. A source is named
by its path relative to its kind, without the suffix (`data/fg/set1/cat.png` is
`set1/cat`, entry `a/cat.png` of `data/fg/more.zip` is `more/a/cat`, of `data/fg.zip` is
`a/cat`), so names stay unique; `bg_depth` and `fg_mask` pair with them by that name. Each
folder and archive logs its count, and anything else under `data/` gets a warning that
names it and says where it should go: nothing is dropped without a word.
Zip entries are checked against the pixel limit by their declared size before they are
read, and then read with that size as a hard limit (fgbg.archive), so an archive cannot make
fgbg read gigabytes, whatever its headers say. Symbolic links are taken as `dvc add data`
takes them, so that data.dvc records exactly the sources: a link to a file is read as that
file (with a warning when it leaves data/), a link to a folder is not followed (a warning). Every image is turned upright by its
EXIF orientation, as a photo viewer shows it.
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
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fgbg.archive import EntryError, check_total, read_entry
from fgbg.errors import SourceError
from fgbg.imageio import IMAGE_SUFFIXES, MAX_PIXELS

log = logging.getLogger(__name__)

MIN_SIDE = 8
MAX_ENTRY_BYTES = MAX_PIXELS * 8 + 2**20  # the largest a file of MAX_PIXELS can be: 4 channels of 16 bits, + headers
KINDS = ("bg", "fg", "bg_depth", "fg_mask")


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


@dataclass(frozen=True)
class Entry:
    """One source file, from a folder or a zip archive; `label` names it in errors."""

    name: str  # path relative to its kind, without the suffix: unique within the kind
    label: str
    data: bytes


def _zip_entries(archive: Path, prefix: str, suffixes: tuple[str, ...], problems: list[str]) -> list[Entry]:
    """The images in `archive`, named `prefix/<path in the archive>`; sizes checked before reading."""
    found = []
    try:
        with zipfile.ZipFile(archive) as zf:
            images = []
            for info in sorted(zf.infolist(), key=lambda i: i.filename):
                path = PurePosixPath(info.filename)
                if info.is_dir() or path.suffix.lower() not in suffixes:
                    continue
                label = f"{archive}:{info.filename}"
                if path.is_absolute() or ".." in path.parts or ":" in info.filename:
                    problems.append(f"{label}: entry path leaves the archive; refused. "
                                    "Re-create the archive with relative paths")
                elif info.file_size > MAX_ENTRY_BYTES:  # the header's size, before anything is read
                    problems.append(f"{label}: {info.file_size:,} bytes uncompressed, more than an image of "
                                    f"{MAX_PIXELS:,} pixels can be; refused (a zip bomb, or not an image)")
                elif not any(q.startswith(".") for q in path.parts):  # hidden, like __MACOSX/._cat.png
                    images.append((path, label, info))
            check_total([info for _, _, info in images])
            for path, label, info in images:
                try:
                    data = read_entry(archive, info)  # never more than the header declares
                except EntryError as e:
                    problems.append(f"{label}: {e}")
                    continue
                found.append(Entry(str(PurePosixPath(prefix, path.with_suffix(""))), label, data))
    except EntryError as e:
        problems.append(f"{archive}: {e}")
    except zipfile.BadZipFile as e:
        problems.append(f"{archive}: not a readable zip archive ({e}); re-create it")
    log.info("%s: %d image(s)", archive, len(found))
    return found


def _files(folder: Path, data_dir: Path) -> list[Path]:
    """The files under `folder` at any depth, sorted, without hidden ones. Symbolic links go as
    `dvc add data` takes them: a file link is read as the file it points to (a warning names one
    that leaves data/), a folder link is not followed (a warning names it)."""
    files = []
    inside = data_dir.resolve()
    for root, dirs, names in os.walk(folder):  # does not descend into linked folders
        root_path = Path(root)
        for name in sorted(dirs + names):
            path = root_path / name
            if name.startswith(".") or not path.is_symlink():
                continue
            target = Path(os.path.realpath(path))
            if not path.exists():
                log.warning("%s: a broken symbolic link (to %s); not read. Fix or delete it", path, target)
            elif path.is_dir():
                log.warning("%s: a symbolic link to the folder %s; not read, as `dvc add data` does not record "
                            "what is under it. Move or copy the folder itself into %s/", path, target, folder)
            elif not target.is_relative_to(inside):
                log.warning("%s: a symbolic link to %s, outside %s/; read as that file, which `dvc add data` "
                            "records in its place", path, target, data_dir)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (root_path / d).is_symlink())
        files += [root_path / name for name in names if not name.startswith(".") and (root_path / name).is_file()]
    return sorted(files)


def _entries(data_dir: Path, kind: str, suffixes: tuple[str, ...], problems: list[str]) -> list[Entry]:
    """The images of `data_dir/kind/` (any depth, and the zips in it) and `data_dir/kind.zip`, by name."""
    found: list[Entry] = []
    folder, archive = data_dir / kind, data_dir / f"{kind}.zip"
    if archive.is_file():
        found += _zip_entries(archive, "", suffixes, problems)
    if folder.is_dir():
        files = _files(folder, data_dir)
        images = [p for p in files if p.suffix.lower() in suffixes]
        for p in images:
            found.append(Entry(p.relative_to(folder).with_suffix("").as_posix(), str(p), p.read_bytes()))
        log.info("%s/: %d image(s)", folder, len(images))
        for p in files:
            if p.suffix.lower() == ".zip":
                found += _zip_entries(p, p.relative_to(folder).with_suffix("").as_posix(), suffixes, problems)
            elif p.suffix.lower() not in suffixes:
                log.warning("%s: not read: %s/ takes %s files and .zip archives of them; convert, move or delete it",
                            p, folder, " ".join(suffixes))
    names = [e.name for e in found]
    for name in sorted({n for n in names if names.count(n) > 1}):
        labels = ", ".join(e.label for e in found if e.name == name)
        problems.append(f"{kind}: the name {name!r} is used more than once ({labels}); rename all but one")
    return sorted(found, key=lambda e: e.name)


def _warn_unused(data_dir: Path) -> None:
    """A warning for everything in `data_dir` that no kind reads, with where it should go."""
    known = set(KINDS) | {f"{kind}.zip" for kind in KINDS}
    for p in sorted(data_dir.iterdir()):
        if p.name in known or p.name.startswith("."):
            continue
        if p.suffix.lower() == ".zip":
            kind = next((k for k in ("fg", "bg") if p.name.startswith(k)), "fg or bg")
            hint = f"move it into data/{kind}/ (archives there are read) or merge it into data/{kind}.zip"
        else:
            hint = "sources go in data/bg/ and data/fg/ (any depth, .zip archives too), data/bg_depth/, data/fg_mask/"
        log.warning("%s: not read; %s", p, hint)


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
    scale = 255.0 if arr.dtype == np.uint8 else 65535.0
    f = Image.fromarray(arr.astype(np.float32) / scale, mode="F")
    return np.clip(np.asarray(_square(f, size, Image.Resampling.BILINEAR)), 0, 1).astype(np.float32)


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
        rgba = rgba.convert("RGBa").resize((nw, nh), Image.Resampling.LANCZOS).convert("RGBA")
    return np.asarray(rgba)


def load_sources(data_dir: str | Path, bg_size: int, fg_size: int) -> Sources:
    """All sources in `data_dir`, resized by the rules above; every problem is reported at once."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise SourceError(f"{data_dir}/: no source folder here; {missing_data_help(data_dir)}")
    problems: list[str] = []
    bg_entries = _entries(data_dir, "bg", IMAGE_SUFFIXES, problems)
    fg_entries = _entries(data_dir, "fg", (".png",), problems)
    depth_entries = {e.name: e for e in _entries(data_dir, "bg_depth", (".png",), problems)}
    mask_entries = {e.name: e for e in _entries(data_dir, "fg_mask", (".png",), problems)}
    _warn_unused(data_dir)
    for kind, entries in (("bg", bg_entries), ("fg", fg_entries)):
        if not entries:
            problems.append(f"{data_dir / kind}/ (or {kind}.zip): no images; {missing_data_help(data_dir)}")
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
             len(bgs), sum(d is not None for d in depths), len(fgs), data_dir)
    return Sources(
        bg_names=[e.name for e in bg_entries],
        bg=np.stack(bgs),
        bg_depth=depths,
        fg_names=[e.name for e in fg_entries],
        fg=fgs,
    )
