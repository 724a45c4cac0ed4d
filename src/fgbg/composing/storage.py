"""Where a composed dataset is written: a local folder, or shared storage named by an fsspec URL
(s3://bucket/composed, gcs://..., file:///mnt/nfs/composed, ...), each file written atomically.

A file appears whole or not at all: locally a temporary file renamed into place (os.replace);
elsewhere the bytes go to a temporary name beside it and are moved into place (on an object
store a move is a server-side copy, and an object is only ever seen whole). Temporary names
start with "." and end in ".tmp", so that a rerun can delete those a kill left behind.
Locations may not hold the characters that fsspec reads as a pattern (PATTERN_CHARS).
"""

from __future__ import annotations

import uuid

import fsspec
from fsspec.implementations.local import LocalFileSystem

from fgbg.core.imageio import atomic_write_bytes
from fgbg.dataset.store import META

PATTERN_CHARS = "[]?*"  # fsspec's glob and mv read them as a pattern, not as a name


def is_url(location: str) -> bool:
    """Whether `location` names storage by a protocol (s3://, file://, ...) rather than a plain path."""
    return "://" in location


class Folder:
    """A folder at a local path or an fsspec URL; every path below is relative to it."""

    def __init__(self, location: str) -> None:
        self.location = str(location)
        self.fs, self.root = fsspec.core.url_to_fs(self.location)
        self.local = isinstance(self.fs, LocalFileSystem)

    def __reduce__(self):  # to the workers: the filesystem is made again there, a local path made absolute here
        return Folder, (self.root if self.local else self.location,)

    def sibling(self, suffix: str) -> Folder:
        """The folder beside this one whose name has `suffix` added (`<out>.partial`)."""
        return Folder(self.location.rstrip("/") + suffix)

    def path(self, rel: str = "") -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def name(self, rel: str = "") -> str:
        """How messages name `rel`: below the location as the user gave it."""
        return f"{self.location.rstrip('/')}/{rel}" if rel else self.location

    def exists(self, rel: str = "") -> bool:
        return self.fs.exists(self.path(rel))

    def read(self, rel: str) -> bytes:
        return self.fs.cat_file(self.path(rel))

    def size(self, rel: str) -> int:
        return self.fs.size(self.path(rel))

    def write(self, rel: str, data: bytes) -> None:
        """Write `data` to `rel` atomically (module doc)."""
        if self.local:
            atomic_write_bytes(self.path(rel), data)
            return
        target = self.path(rel)
        parent, _, base = target.rpartition("/")
        tmp = f"{parent}/.{base}.{uuid.uuid4().hex}.tmp"
        try:
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, target)
        except BaseException:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
            raise

    def makedirs(self, rel: str) -> None:
        self.fs.makedirs(self.path(rel), exist_ok=True)

    def remove(self, rel: str = "") -> None:
        """Delete `rel` (a file, or a folder and all below it) if it is there."""
        if self.exists(rel):
            self.fs.rm(self.path(rel), recursive=True)

    def remove_dataset(self) -> None:
        """Delete this folder, its meta.json last: a kill midway leaves it still marked as a dataset."""
        for entry in self.fs.ls(self.root, detail=False):
            if entry.rstrip("/").rpartition("/")[2] != META:
                self.fs.rm(entry, recursive=True)
        self.remove(META)
        self.remove()

    def remove_stale_temps(self, rel: str = "") -> None:
        """Delete the temporary files that killed writes left in the folder `rel`."""
        for stale in self.fs.glob(f"{self.path(rel)}/.*.tmp"):
            self.fs.rm(stale)

    def move_to(self, other: Folder) -> None:
        """Rename this local folder to `other`, replacing it (one rename: elsewhere a folder's move is a
        copy of each file, which compose avoids by writing in place)."""
        assert self.local and other.local, "a folder is renamed on local disk only"
        if other.exists():
            other.remove_dataset()
        self.fs.mv(self.root, other.root)
