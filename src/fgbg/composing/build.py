"""Building the composed dataset: shards made on Dask, on one machine or many, and resumably.

Shard k holds placements [k * shard_size, (k + 1) * shard_size) and depends on nothing
else, so shards can be made in any order, anywhere. They are made by the workers of a
Dask cluster: a LocalCluster of `workers` processes by default, or a running cluster given
by its scheduler's address (`scheduler`, e.g. tcp://host:8786); a wrong address is an error
within about 2 x CLUSTER_TIMEOUT_S. The sources, and a teacher model's bytes, go to the
workers once; each worker sends back a shard's bytes and its index rows, and this process
writes them, atomically, into `<out>.partial/`: workers need no shared filesystem. A
worker lost mid-run has its shards made again elsewhere (Dask reschedules them). With
`workers=1` and no scheduler everything runs in this process. A rerun skips the finished
shards, and when all are there the folder is
completed and renamed to `<out>`. Completing writes index, bg arrays and then meta.json,
which records the plan's fingerprint: a run killed after that renames the folder on its
rerun, and a run killed before it finds every shard still there. For each sample it also records the exact sums that
fgbg.dataset.stats adds up.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from fgbg.composing.compose import PRIOR_FAR, ground_plane_prior, placements
from fgbg.composing.shard import ShardJob, make_shard, rgb_sums
from fgbg.composing.sources import Sources, load_sources
from fgbg.core.config import COMPOSE_RUNTIME_KEYS, ComposeConfig, identity, params_hash
from fgbg.core.errors import InputError
from fgbg.core.imageio import atomic_path, atomic_write_bytes, atomic_write_json
from fgbg.core.progress import progress
from fgbg.dataset.store import (
    BG,
    BG_DEPTH,
    FORMAT_VERSION,
    INDEX,
    META,
    SHARDS,
    file_records,
    shard_name,
)

log = logging.getLogger(__name__)


def _rows_path(work: Path, k: int) -> Path:
    """Shard k's index rows; written after the shard, so its presence marks the shard done."""
    return work / "rows" / f"{k:05d}.parquet"


def _write_shard(work: Path, k: int, shard: bytes, rows: bytes) -> None:
    """Shard k's file, then its rows: their presence marks the shard done."""
    atomic_write_bytes(work / SHARDS / shard_name(k), shard)
    atomic_write_bytes(_rows_path(work, k), rows)


CLUSTER_TIMEOUT_S = 20.0  # to reach a scheduler given by address, and then for it to have a worker


def _cluster(workers: int, scheduler: str | None):
    """A Dask client: of the cluster at `scheduler`, else of a LocalCluster of `workers` processes."""
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)  # its start-up and shutdown chatter
    if scheduler:
        return _connect(scheduler)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           host="127.0.0.1", silence_logs=logging.WARNING)
    return Client(cluster)


def _connect(address: str):
    """A client of the Dask scheduler at `address` once it has a worker; else, within about
    2 x CLUSTER_TIMEOUT_S, an InputError that names the address and what to check."""
    from distributed import Client
    from distributed.exceptions import WorkerStartTimeoutError

    seconds = CLUSTER_TIMEOUT_S
    wrong = f"the Dask scheduler address {address} (--scheduler or FGBG_DASK_SCHEDULER)"
    fix = ("check that `dask scheduler` runs there and that this is the address it prints (port 8786 by default, "
           "not the dashboard's 8787), or leave the address unset to compose on local worker processes")
    try:
        _handshake(address, seconds)
    except TimeoutError:  # before OSError, its base class
        raise InputError(f"{wrong}: it accepted a connection but did not answer as Dask does within {seconds:g} s; "
                         f"{fix}") from None
    except OSError:  # nothing listens there, or the host is unknown or unreachable
        raise InputError(f"{wrong}: could not connect within {seconds:g} s; {fix}") from None
    except ValueError as e:  # a malformed address
        raise InputError(f"{wrong}: {e}; {fix}") from None
    try:
        client = Client(address, timeout=f"{seconds}s")
    except Exception as e:  # it speaks Dask but is no scheduler: a worker's address, say
        raise InputError(f"{wrong}: what answers there is not a Dask scheduler ({type(e).__name__}: {e}); "
                         f"{fix}") from None
    try:
        client.wait_for_workers(1, timeout=seconds)
    except WorkerStartTimeoutError:
        client.close()
        raise InputError(f"the Dask scheduler at {address} has no workers: none joined within {seconds:g} s; start "
                         f"some (`dask worker {address}` on each machine), or leave --scheduler and "
                         "FGBG_DASK_SCHEDULER unset to compose on local worker processes") from None
    return client


def _handshake(address: str, seconds: float) -> None:
    """Open a Dask connection to `address` and close it: Dask's own connect waits forever for
    the answer of a server that accepts and never speaks (an HTTP server, say), hence the bound."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from distributed.comm import connect
    from distributed.security import Security

    async def open_and_close() -> None:
        comm = await connect(address, timeout=seconds, **Security().get_connection_args("client"))
        await comm.close()

    bounded = asyncio.wait_for(open_and_close(), seconds + 1)  # + 1: connect's own timeout comes first
    with ThreadPoolExecutor(1) as thread:  # a loop of its own, also where one runs already (a notebook)
        thread.submit(asyncio.run, bounded).result()


def _make_shards(todo: list[int], job: ShardJob, work: Path, workers: int, scheduler: str | None) -> None:
    """Make the shards `todo`, on Dask (see module doc), writing each as it arrives."""
    if workers == 1 and not scheduler:
        with progress(total=len(todo), desc="compose", unit="shard") as bar:
            for k in todo:
                _write_shard(work, *make_shard(k, job))
                bar.update()
        return
    from distributed import as_completed

    with _cluster(workers, scheduler) as client, progress(total=len(todo), desc="compose", unit="shard") as bar:
        shared = client.scatter(job, broadcast=True)  # the sources travel to each worker once
        futures = client.map(make_shard, todo, job=shared, pure=False)
        for future in as_completed(futures):
            _write_shard(work, *future.result())
            bar.update()
            future.release()  # the bytes are on disk: free them on the worker


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
    digest.update(json.dumps([sources.bg_names, sources.fg_names]).encode())
    return digest.hexdigest()


def _prepare_work(work: Path, fingerprint: str) -> None:
    plan_file = work / "plan.json"
    if work.exists() and (not plan_file.is_file() or json.loads(plan_file.read_text()) != fingerprint):
        log.info("%s holds shards of other sources or params; starting afresh", work)
        shutil.rmtree(work)
    for sub in (SHARDS, "rows"):
        (work / sub).mkdir(parents=True, exist_ok=True)
        for stale in (work / sub).glob(".*.tmp"):  # left by a killed run
            stale.unlink()
    atomic_write_json(plan_file, fingerprint)


def compose_dataset(
    *, data_dir: str | Path, out_dir: str | Path, cfg: ComposeConfig, scheduler: str | None = None
) -> pd.DataFrame:
    """Compose every shard not made yet (see module doc), then complete `out_dir`; returns the index."""
    sources = load_sources(data_dir, cfg.bg_size, cfg.fg_size)
    teacher_model = None
    if cfg.depth == "teacher":
        from fgbg.composing.teacher import read_model

        teacher_model = read_model(cfg.teacher)  # sent to the workers with the sources
    teacher_sha256 = hashlib.sha256(teacher_model).hexdigest() if teacher_model is not None else None
    out_dir = Path(out_dir)
    work = out_dir.with_name(out_dir.name + ".partial")
    fingerprint = _fingerprint(sources, cfg, teacher_sha256)
    if _completed(work, fingerprint):  # killed between completing and renaming
        return _rename(work, out_dir)
    _prepare_work(work, fingerprint)
    plan = placements(sources, cfg)
    n_shards = math.ceil(len(plan) / cfg.shard_size)
    todo = [k for k in range(n_shards) if not _rows_path(work, k).is_file()]
    depths = np.stack([depth if depth is not None else ground_plane_prior(cfg.bg_size, cfg.prior_horizon)
                       for depth in sources.bg_depth])
    d64 = depths.reshape(len(depths), -1).astype(np.float64)
    job = ShardJob(
        cfg=cfg, plan=plan, sources=sources, depths=depths,
        foot_caps=np.array([1.0 if depth is not None else PRIOR_FAR for depth in sources.bg_depth]),
        bg_sums=np.stack([rgb_sums(bg) for bg in sources.bg]),
        depth_sums=np.stack([d64.sum(1), (d64 * d64).sum(1)], axis=1),
        threads=1 if cfg.workers > 1 or scheduler else 0, teacher_model=teacher_model, teacher_sha256=teacher_sha256,
    )
    where = f"the Dask cluster at {scheduler}" if scheduler else f"{cfg.workers} local worker process(es)"
    log.info("composing %d of %d shards (%d samples in all) on %s", len(todo), n_shards, len(plan), where)
    try:
        _make_shards(todo, job, work, cfg.workers, scheduler)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        done = sum(_rows_path(work, k).is_file() for k in range(n_shards))
        raise InputError(f"{work}: the disk is full ({shutil.disk_usage(work).free / 2**20:.0f} MiB free). The "
                         f"{done} finished shard(s) of {n_shards} are kept there; free some space and run the "
                         "same command again (`dvc repro compose`): it resumes") from None
    _finish(work, plan, sources, depths, cfg, n_shards, fingerprint)
    return _rename(work, out_dir)


def _completed(work: Path, fingerprint: str) -> bool:
    """Whether `work` was completed (meta.json written last) from this plan."""
    if not (work / META).is_file():
        return False
    return json.loads((work / META).read_text()).get("fingerprint") == fingerprint


def _finish(work: Path, plan: pd.DataFrame, sources: Sources, depths: np.ndarray,
            cfg: ComposeConfig, n_shards: int, fingerprint: str) -> None:
    """Complete `work`: the index, the bg arrays, then meta.json, which marks it complete."""
    rows = pd.concat([pd.read_parquet(_rows_path(work, k)) for k in range(n_shards)], ignore_index=True)
    index = pd.concat([plan, rows], axis=1)
    with atomic_path(work / INDEX) as tmp:
        index.to_parquet(tmp, index=False)
    for name, array in ((BG, sources.bg), (BG_DEPTH, depths)):
        with atomic_path(work / name) as tmp, open(tmp, "wb") as f:
            np.save(f, array)
    atomic_write_json(work / META, {"format_version": FORMAT_VERSION, "compose": _identity(cfg),
                                    "samples": len(index), "shards": n_shards, "fingerprint": fingerprint,
                                    "files": file_records(work, n_shards)})


def _rename(work: Path, out_dir: Path) -> pd.DataFrame:
    """Drop the bookkeeping of a completed `work` and rename it to `out_dir`."""
    shutil.rmtree(work / "rows", ignore_errors=True)
    (work / "plan.json").unlink(missing_ok=True)
    work.chmod(0o755)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    work.rename(out_dir)
    meta = json.loads((out_dir / META).read_text())
    log.info("composed %d samples into %d shards in %s", meta["samples"], meta["shards"], out_dir)
    return pd.read_parquet(out_dir / INDEX)
