"""Building the composed dataset: shards made on Dask, on one machine or many, and resumably.

Shard k holds placements [k * shard_size, (k + 1) * shard_size) and depends on nothing
else, so shards can be made in any order, anywhere. They are made by the workers of a
Dask cluster (fgbg.composing.cluster): a LocalCluster of `workers` processes by default, or
a running cluster given by its scheduler's address (`scheduler`, e.g. tcp://host:8786). The
sources, and a teacher model's bytes, go to the workers once. With `workers=1` and no
scheduler everything runs in this process.

`out_dir` is a local path or an fsspec URL (fgbg.composing.storage). On local disk the shards
go into `<out>.partial/`, renamed to `<out>` when complete; at a URL they go straight into
`<out>`, since a folder's rename there is a copy of every file, and meta.json, written last,
marks it complete (a reader checks it). Each file is written atomically, in one of two ways
(`write`):
- "client": each worker sends a shard's bytes and index rows back and this process writes
  them, so the workers need no shared filesystem;
- "workers": each worker writes its shards itself, and this process checks that it sees
  them; the storage must be shared by all.
"auto" has the workers write wherever the storage is known to be shared with them: a
LocalCluster on this machine, or an `out_dir` given as a URL; with a cluster elsewhere and a
plain path, the client writes (README "Composing on a cluster" has the measurements).

A worker lost mid-run has its shards made again elsewhere (Dask reschedules them). A rerun
skips the finished shards, and when all are there the folder is completed (and renamed).
Completing writes index, bg arrays and then meta.json, which records the plan's
fingerprint: a run killed after that only tidies up on its rerun, and a run killed
before it finds every shard still there. For each sample it also records the exact sums
that fgbg.dataset.stats adds up.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from fgbg.composing.cluster import client_of
from fgbg.composing.compose import PRIOR_FAR, ground_plane_prior, placements
from fgbg.composing.shard import ShardJob, make_shard, rgb_sums
from fgbg.composing.sources import Sources, load_sources
from fgbg.composing.storage import PATTERN_CHARS, Folder, is_url
from fgbg.core.config import COMPOSE_RUNTIME_KEYS, ComposeConfig, identity, params_hash
from fgbg.core.errors import InputError
from fgbg.core.imageio import json_bytes
from fgbg.core.progress import progress
from fgbg.dataset.store import BG, BG_DEPTH, FORMAT_VERSION, INDEX, META, SHARDS, shard_name

log = logging.getLogger(__name__)

WRITERS = ("auto", "client", "workers")
PLAN = "plan.json"  # the plan's fingerprint, while the shards are made
ROWS = "rows"  # each shard's index rows, while the shards are made


def _rows(k: int) -> str:
    """Shard k's index rows; written after the shard, so their presence marks the shard done."""
    return f"{ROWS}/{k:05d}.parquet"


def _write_shard(work: Folder, k: int, shard: bytes, rows: bytes) -> int:
    """Shard k's file, then its rows (which mark it done); returns k."""
    work.write(f"{SHARDS}/{shard_name(k)}", shard)
    work.write(_rows(k), rows)
    return k


def make_and_write_shard(k: int, job: ShardJob, work: Folder) -> int:
    """Make shard k and write it into `work` (on a worker, with write="workers"); returns k."""
    return _write_shard(work, *make_shard(k, job))


def choose_writer(write: str, out: str, workers: int, scheduler: str | None) -> str:
    """"client" or "workers" for `write` (module doc); in-process runs write themselves ("client")."""
    if write not in WRITERS:
        raise InputError(f"--write {write!r}: not a way to write shards; use one of {', '.join(WRITERS)}")
    if workers == 1 and not scheduler:
        return "client"
    if write != "auto":
        return write
    return "workers" if is_url(out) or not scheduler else "client"


def _make_shards(todo: list[int], job: ShardJob, work: Folder, workers: int, scheduler: str | None,
                 writer: str) -> None:
    """Make the shards `todo`, on Dask (see module doc), written by `writer` as they are made."""
    if workers == 1 and not scheduler:
        with progress(total=len(todo), desc="compose", unit="shard") as bar:
            for k in todo:
                _write_shard(work, *make_shard(k, job))
                bar.update()
        return
    from distributed import as_completed

    with client_of(workers, scheduler) as client, progress(total=len(todo), desc="compose", unit="shard") as bar:
        shared = client.scatter(job, broadcast=True)  # the sources travel to each worker once
        if writer == "workers":
            futures = client.map(make_and_write_shard, todo, job=shared, work=work, pure=False)
        else:
            futures = client.map(make_shard, todo, job=shared, pure=False)
        for future in as_completed(futures):
            try:
                if writer == "workers":
                    _check_written(work, future.result())
                else:
                    _write_shard(work, *future.result())
            except ImportError as e:  # a worker lacks the URL's fsspec package, e.g. "Install s3fs to access S3"
                raise InputError(f"{work.name()}: a worker cannot open it: {e}; install that package on every "
                                 "worker, or let this process write the shards (--write client)") from None
            bar.update()
            future.release()  # the bytes are stored: free them on the worker


def _check_written(work: Folder, k: int) -> None:
    """A shard a worker wrote must be where this process reads: else the storage is not shared."""
    if not work.exists(_rows(k)):
        raise InputError(f"{work.name()}: a worker wrote shard {k} there, but this process does not see it, so "
                         "that storage is not shared with the workers; give --out as a path every machine mounts "
                         "or as a URL of shared storage (s3://..., gcs://...), or let this process write the "
                         "shards (--write client)")


def _identity(cfg: ComposeConfig) -> dict:
    """The params that decide the dataset's bytes: all but the runtime keys (`workers`), and keys the
    chosen options do not use put back to their defaults (ComposeConfig.decisive)."""
    return identity(cfg.decisive(), COMPOSE_RUNTIME_KEYS)


def _fingerprint(sources: Sources, cfg: ComposeConfig, teacher_sha256: str | None) -> str:
    digest = params_hash(_identity(cfg))
    if teacher_sha256:  # another model at the same path makes other shards
        digest.update(teacher_sha256.encode())
    for arr in [sources.bg, *sources.fg, *[depth for depth in sources.bg_depth if depth is not None]]:
        digest.update(np.ascontiguousarray(arr).tobytes())
    measured = sources.measured.tolist()  # which bg each depth map belongs to
    digest.update(json.dumps([FORMAT_VERSION, sources.bg_names, sources.fg_names, measured]).encode())
    return digest.hexdigest()


def _prepare_work(work: Folder, out: Folder, fingerprint: str) -> None:
    """Make `work` ready for this plan's shards: kept if it holds this plan's, else emptied (meta.json
    last, so that a kill leaves it recognisably ours); plan.json written before the folders, for the
    same reason; stale temporary files deleted. Storage that cannot be written is an InputError."""
    try:
        if work.exists() and _read_json(work, PLAN) != fingerprint:
            log.info("%s holds another plan's shards or dataset; starting afresh", work.name())
            work.remove_dataset()
        work.write(PLAN, json_bytes(fingerprint))
        for sub in ("", SHARDS, ROWS):
            work.makedirs(sub)
            work.remove_stale_temps(sub)  # left by a killed run
    except (OSError, ConnectionError) as e:  # refused, read-only, no permission
        raise _unreachable(out, e) from None


def _unreachable(out: Folder, e: Exception) -> InputError:
    return InputError(f"--out {out.name()}: cannot write there ({type(e).__name__}: {e}); check the path or URL, "
                      "and that this machine may write to it")


def _read_json(folder: Folder, rel: str):
    """The JSON in `rel`, or None where it is missing or is not JSON."""
    try:
        return json.loads(folder.read(rel)) if folder.exists(rel) else None
    except ValueError:
        return None


def _is_ours(folder: Folder) -> bool:
    """Whether `folder` is a composed dataset or one being composed (so that composing may replace it)."""
    meta, plan = _read_json(folder, META), _read_json(folder, PLAN)
    return (isinstance(meta, dict) and {"format_version", "fingerprint"} <= meta.keys()) or (
        isinstance(plan, str) and len(plan) == 64)


def _out_folder(out_dir: str, data_dir: Path) -> tuple[Folder, Folder]:
    """(the Folder of --out, the one the shards go into: `<out>.partial` on local disk, else `<out>`),
    refused where composing would break them or delete what it must not: a name fsspec would read as a
    pattern, a file, the sources' folder or one above it, the working folder or one above it, or a folder
    of other files (not a composed dataset, nor one being composed). A URL whose protocol is unknown or
    needs a package, or storage that cannot be reached, names the fix."""
    if not out_dir.strip() or any(c in out_dir for c in PATTERN_CHARS):
        raise InputError(f"--out {out_dir!r}: give a folder's path or URL, without any of {PATTERN_CHARS} "
                         "(fsspec reads them as a pattern)")
    try:
        out = Folder(out_dir if is_url(out_dir) else os.path.normpath(out_dir))
    except ImportError as e:  # fsspec's own message names the package, e.g. "Install s3fs to access S3"
        raise InputError(f"--out {out_dir}: {e}; install it in this environment and on every worker") from None
    except ValueError as e:  # "Protocol not known: ..."
        raise InputError(f"--out {out_dir}: {e}; give a local path or an fsspec URL (s3://, gcs://, file://, ...)") \
            from None
    except (OSError, ConnectionError) as e:  # some filesystems (ftp, sftp) connect as they are made
        raise InputError(f"--out {out_dir}: cannot reach it ({type(e).__name__}: {e}); check the URL") from None
    work = out.sibling(".partial") if out.local else out
    _refuse_to_replace(out, out_dir, Path(data_dir), "")
    if work is not out:
        _refuse_to_replace(work, out_dir, Path(data_dir), f"its work folder {work.name()} ")
    return out, work


def _refuse_to_replace(folder: Folder, out_dir: str, data_dir: Path, subject: str) -> None:
    """An InputError where composing into `folder` (which it replaces) would break or delete the wrong thing."""
    if folder.local:
        root = Path(folder.root).resolve()
        for keep, what in ((data_dir.resolve(), "the sources (--data)"), (Path.cwd(), "the working folder")):
            if keep == root or root in keep.parents:
                raise InputError(f"--out {out_dir}: composing {f'in {subject}' if subject else 'there '}would "
                                 f"delete {what}, {keep}; give a folder of its own, such as dataset/composed")
    try:
        present = folder.exists()
        if present and folder.fs.isfile(folder.root):
            raise InputError(f"--out {out_dir}: {subject}is a file; give the path of a folder to compose into")
        if present and folder.fs.ls(folder.root) and not _is_ours(folder):
            raise InputError(f"--out {out_dir}: {subject}holds files that are not a composed dataset, which "
                             "composing there would delete; give a new or empty folder")
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001  (the first contact with the storage: each backend raises its own)
        if folder.local and not isinstance(e, OSError):
            raise
        raise InputError(f"--out {out_dir}: cannot reach it ({type(e).__name__}: {e}); check the path or URL, "
                         "and that this machine may read it") from None


def compose_dataset(
    *, data_dir: str | Path, out_dir: str | Path, cfg: ComposeConfig, scheduler: str | None = None,
    write: str = "auto",
) -> pd.DataFrame:
    """Compose every shard not made yet (see module doc), then complete `out_dir`; returns the index."""
    writer = choose_writer(write, str(out_dir), cfg.workers, scheduler)
    out, work = _out_folder(str(out_dir), Path(data_dir))
    sources = load_sources(data_dir, cfg.bg_size, cfg.fg_size)
    teacher_model = None
    if cfg.depth == "teacher":
        from fgbg.composing.teacher import read_model

        teacher_model = read_model(cfg.teacher)  # sent to the workers with the sources
    teacher_sha256 = hashlib.sha256(teacher_model).hexdigest() if teacher_model is not None else None
    fingerprint = _fingerprint(sources, cfg, teacher_sha256)
    if _completed(work, fingerprint):  # killed between completing and renaming
        return _rename(work, out)
    _prepare_work(work, out, fingerprint)
    plan = placements(sources, cfg)
    n_shards = math.ceil(len(plan) / cfg.shard_size)
    todo = [k for k in range(n_shards) if not work.exists(_rows(k))]
    depths = np.stack([depth if depth is not None else ground_plane_prior(cfg.bg_size, cfg.prior_horizon)
                       for depth in sources.bg_depth])
    d64 = depths.reshape(len(depths), -1).astype(np.float64)
    job = ShardJob(
        cfg=cfg, plan=plan, sources=sources, depths=depths,
        foot_caps=np.where(sources.measured, 1.0, PRIOR_FAR),
        bg_sums=np.stack([rgb_sums(bg) for bg in sources.bg]),
        depth_sums=np.stack([d64.sum(1), (d64 * d64).sum(1)], axis=1),
        threads=1 if cfg.workers > 1 or scheduler else 0, teacher_model=teacher_model, teacher_sha256=teacher_sha256,
    )
    where = f"the Dask cluster at {scheduler}" if scheduler else f"{cfg.workers} local worker process(es)"
    log.info("composing %d of %d shards (%d samples in all) on %s, written by the %s", len(todo), n_shards,
             len(plan), where, "workers" if writer == "workers" else "client")
    try:
        _make_shards(todo, job, work, cfg.workers, scheduler, writer)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        done = sum(work.exists(_rows(k)) for k in range(n_shards))
        free = f" ({shutil.disk_usage(work.root).free / 2**20:.0f} MiB free)" if work.local else ""
        raise InputError(f"{work.name()}: the disk is full{free}. The {done} finished shard(s) of {n_shards} are "
                         "kept there; free some space and run the same command again (`dvc repro compose`): it "
                         "resumes") from None
    _finish(work, plan, sources, depths, cfg, n_shards, fingerprint)
    return _rename(work, out)


def _completed(work: Folder, fingerprint: str) -> bool:
    """Whether `work` was completed (meta.json written last) from this plan."""
    meta = _read_json(work, META)
    return isinstance(meta, dict) and meta.get("fingerprint") == fingerprint


def _finish(work: Folder, plan: pd.DataFrame, sources: Sources, depths: np.ndarray,
            cfg: ComposeConfig, n_shards: int, fingerprint: str) -> None:
    """Complete `work`: the index, the bg arrays, then meta.json, which marks it complete and
    records each file's size or hash (checked on opening)."""
    rows = pd.concat([pd.read_parquet(io.BytesIO(work.read(_rows(k)))) for k in range(n_shards)], ignore_index=True)
    index = pd.concat([plan, rows], axis=1)
    files = {INDEX: _parquet_bytes(index), BG: _npy_bytes(sources.bg), BG_DEPTH: _npy_bytes(depths)}
    for name, data in files.items():
        work.write(name, data)
    records = {"sha256": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
               "shard_bytes": [work.size(f"{SHARDS}/{shard_name(k)}") for k in range(n_shards)]}
    work.write(META, json_bytes({"format_version": FORMAT_VERSION, "compose": _identity(cfg), "samples": len(index),
                                 "shards": n_shards, "fingerprint": fingerprint, "files": records}))


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _rename(work: Folder, out: Folder) -> pd.DataFrame:
    """Drop the bookkeeping of a completed `work` and rename it to `out` (on local disk; elsewhere
    `work` is `out`)."""
    work.remove(ROWS)
    work.remove(PLAN)
    work.remove_stale_temps()  # of a write killed after its file was in place (an object store's move)
    if work is not out:
        work.move_to(out)
    meta = json.loads(out.read(META))
    log.info("composed %d samples into %d shards in %s", meta["samples"], meta["shards"], out.name())
    return pd.read_parquet(io.BytesIO(out.read(INDEX)))
