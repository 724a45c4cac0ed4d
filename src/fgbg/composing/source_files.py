"""Finding and reading the source files under `data/`, before any image is decoded.

Each kind (bg, fg, bg_depth, fg_mask) is a folder, read at any depth together with every
`.zip` archive inside it, and/or a zip archive beside it (`data/bg.zip`), read in place. A
source is named by its path relative to its kind, without the suffix (`data/fg/set1/cat.png`
is `set1/cat`, entry `a/cat.png` of `data/fg/more.zip` is `more/a/cat`, of `data/fg.zip` is
`a/cat`), so names stay unique. Nothing is dropped without a word: each folder and archive
logs its count, and a warning names every file or entry that is not read and says why.

Limits, each checked before the bytes are read:
- one file or zip entry: MAX_ENTRY_BYTES, the most an image of MAX_PIXELS can take; a zip
  entry is then read with its declared size as a hard limit (fgbg.composing.archive);
- all sources together: MAX_SOURCE_BYTES, since they are all held in memory while composing
  (an archive is refused whole, from its headers, when its images would pass it).

Symbolic links are taken as `dvc add data` takes them, so that data.dvc records exactly the
sources: a link to a file is read as that file (a warning names one that leaves data/), a
link to a folder is not followed (a warning names it), and nor is a broken one.
"""

from __future__ import annotations

import logging
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fgbg.composing.archive import EntryError, read_entry
from fgbg.core.imageio import MAX_PIXELS

log = logging.getLogger(__name__)

MAX_ENTRY_BYTES = MAX_PIXELS * 8 + 2**20  # the largest a file of MAX_PIXELS can be: 4 channels of 16 bits, + headers
MAX_SOURCE_BYTES = 4 * 2**30  # source files held in memory at once, all kinds together
KINDS = ("bg", "fg", "bg_depth", "fg_mask")
HIDDEN = "names starting with '.', such as .DS_Store or __MACOSX/._cat.png"


@dataclass(frozen=True)
class Entry:
    """One source file, from a folder or a zip archive; `label` names it in errors."""

    name: str  # path relative to its kind, without the suffix: unique within the kind
    label: str
    data: bytes


class Budget:
    """The bytes of source files that may still be read into memory (MAX_SOURCE_BYTES in all)."""

    def __init__(self) -> None:
        self.left = MAX_SOURCE_BYTES

    def take(self, size: int, label: str, problems: list[str]) -> bool:
        """Whether `size` more bytes fit; if not, a problem naming `label`, and nothing is taken."""
        if size > self.left:
            problems.append(f"{label}: {size:,} bytes of images, past the {MAX_SOURCE_BYTES:,} bytes of sources fgbg "
                            f"holds in memory at once ({self.left:,} left); downscale the images or use fewer")
            return False
        self.left -= size
        return True


def _too_large(label: str, size: int) -> str:
    return (f"{label}: {size:,} bytes uncompressed, more than an image of {MAX_PIXELS:,} pixels can be; refused "
            "(a zip bomb, or not an image)")


def _zip_entries(archive: Path, prefix: str, suffixes: tuple[str, ...], budget: Budget,
                 problems: list[str]) -> list[Entry]:
    """The images in `archive`, named `prefix/<path in the archive>`; sizes checked before reading."""
    found, hidden = [], 0
    try:
        with zipfile.ZipFile(archive) as zf:
            images = []
            for info in sorted(zf.infolist(), key=lambda i: i.filename):
                path, label = PurePosixPath(info.filename), f"{archive}:{info.filename}"
                if info.is_dir():
                    continue
                if path.is_absolute() or ".." in path.parts or ":" in info.filename:
                    problems.append(f"{label}: entry path leaves the archive; refused. "
                                    "Re-create the archive with relative paths")
                elif any(part.startswith(".") for part in path.parts):
                    hidden += 1
                elif stat.S_ISLNK(info.external_attr >> 16):
                    log.warning("%s: a symbolic link stored in the archive; not read. Store the image itself", label)
                elif path.suffix.lower() not in suffixes:
                    log.warning("%s: not read: takes %s files; convert or remove it", label, " ".join(suffixes))
                elif info.file_size > MAX_ENTRY_BYTES:  # the header's size, before anything is read
                    problems.append(_too_large(label, info.file_size))
                else:
                    images.append((path, label, info))
            if not budget.take(sum(info.file_size for _, _, info in images), str(archive), problems):
                images = []  # refused whole, from its headers
            for path, label, info in images:
                try:
                    data = read_entry(archive, info)  # never more than the header declares
                except EntryError as e:
                    problems.append(f"{label}: {e}")
                    continue
                found.append(Entry(str(PurePosixPath(prefix, path.with_suffix(""))), label, data))
    except (zipfile.BadZipFile, UnicodeDecodeError, OSError, ValueError) as e:
        problems.append(f"{archive}: not a readable zip archive ({e}); re-create it")
    if hidden:
        log.warning("%s: %d hidden entr%s not read (%s)", archive, hidden, "y" if hidden == 1 else "ies", HIDDEN)
    log.info("%s: %d image(s)", archive, len(found))
    return found


def _readable(path: Path, data_dir: Path) -> bool:
    """Whether `path` is read: a plain file, or a link to a file (named in a warning when it leaves
    data/); a link to a folder, or a broken one, is named in a warning and not read."""
    if not path.is_symlink():
        return path.is_file()
    target = Path(os.path.realpath(path))
    if not path.exists():
        log.warning("%s: a broken symbolic link (to %s); not read. Fix or delete it", path, target)
    elif path.is_dir():
        log.warning("%s: a symbolic link to the folder %s; not read, as `dvc add data` does not record what is "
                    "under it. Move or copy the folder itself into %s/", path, target, path.parent)
    else:
        if not target.is_relative_to(data_dir.resolve()):
            log.warning("%s: a symbolic link to %s, outside %s/; read as that file, which `dvc add data` records "
                        "in its place", path, target, data_dir)
        return True
    return False


def _files(folder: Path, data_dir: Path) -> list[Path]:
    """The files under `folder` at any depth, sorted; hidden ones and links as the module doc says."""
    files, hidden = [], 0
    for root, dirs, names in os.walk(folder):  # does not descend into linked folders
        root_path = Path(root)
        hidden += sum(name.startswith(".") for name in dirs + names)
        visible = sorted(name for name in dirs + names if not name.startswith("."))
        readable = {name for name in visible if _readable(root_path / name, data_dir)}  # warns for links
        dirs[:] = sorted(d for d in dirs if d in visible and not (root_path / d).is_symlink())
        files += [root_path / name for name in names if name in readable]
    if hidden:
        log.warning("%s/: %d hidden file(s) or folder(s) not read (%s)", folder, hidden, HIDDEN)
    return sorted(files)


def _folder_entries(folder: Path, data_dir: Path, suffixes: tuple[str, ...], budget: Budget,
                    problems: list[str]) -> list[Entry]:
    """The images of `folder` at any depth and of the archives in it."""
    found, images = [], 0
    for path in _files(folder, data_dir):
        name = path.relative_to(folder).with_suffix("").as_posix()
        if path.suffix.lower() == ".zip":
            found += _zip_entries(path, name, suffixes, budget, problems)
        elif path.suffix.lower() not in suffixes:
            log.warning("%s: not read: %s/ takes %s files and .zip archives of them; convert, move or delete it",
                        path, folder, " ".join(suffixes))
        elif (size := path.stat().st_size) > MAX_ENTRY_BYTES:
            problems.append(_too_large(str(path), size))
        elif budget.take(size, str(path), problems):
            found.append(Entry(name, str(path), path.read_bytes()))
            images += 1
    log.info("%s/: %d image(s)", folder, images)
    return found


def kind_entries(data_dir: Path, kind: str, suffixes: tuple[str, ...], budget: Budget,
                 problems: list[str]) -> list[Entry]:
    """The images of `data_dir/kind/` and `data_dir/kind.zip`, sorted by name; a name used twice is a problem."""
    found: list[Entry] = []
    folder, archive = data_dir / kind, data_dir / f"{kind}.zip"
    if _readable(archive, data_dir):
        found += _zip_entries(archive, "", suffixes, budget, problems)
    if folder.is_symlink():
        _readable(folder, data_dir)  # a linked folder: named in a warning, not read
    elif folder.is_dir():
        found += _folder_entries(folder, data_dir, suffixes, budget, problems)
    names = [e.name for e in found]
    for name in sorted({n for n in names if names.count(n) > 1}):
        labels = ", ".join(e.label for e in found if e.name == name)
        problems.append(f"{kind}: the name {name!r} is used more than once ({labels}); rename all but one")
    return sorted(found, key=lambda e: e.name)


def warn_unused(data_dir: Path) -> None:
    """A warning for everything in `data_dir` that no kind reads, with where it should go."""
    known = set(KINDS) | {f"{kind}.zip" for kind in KINDS}
    for path in sorted(data_dir.iterdir()):
        if path.name in known:
            continue
        if path.name.startswith("."):
            hint = f"hidden ({HIDDEN})"
        elif path.suffix.lower() == ".zip":
            kind = next((k for k in ("fg", "bg") if path.name.startswith(k)), "fg or bg")
            hint = f"move it into data/{kind}/ (archives there are read) or merge it into data/{kind}.zip"
        else:
            hint = "sources go in data/bg/ and data/fg/ (any depth, .zip archives too), data/bg_depth/, data/fg_mask/"
        log.warning("%s: not read; %s", path, hint)
