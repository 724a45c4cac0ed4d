"""Compose on a real Dask cluster on 127.0.0.1: a scheduler and two worker processes, started
as a user would, give the bytes of a one-process run, also when a worker is killed mid-run."""

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fgbg.build import compose_dataset
from tests.conftest import TINY_COMPOSE
from tests.test_store import _same_files

pytestmark = pytest.mark.slow
CFG = dataclasses.replace(TINY_COMPOSE, shard_size=2)  # 24 shards


@pytest.fixture
def cluster(tmp_path):
    """(scheduler address, [worker processes]); everything on 127.0.0.1, stopped afterwards."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), *sys.path])}
    scheduler_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--dashboard-address", ":0", "--scheduler-file", str(scheduler_file)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    deadline = time.time() + 60
    while not scheduler_file.is_file() and time.time() < deadline:
        time.sleep(0.2)
    import json

    address = json.loads(scheduler_file.read_text())["address"]
    for _ in range(2):
        procs.append(subprocess.Popen([str(bin_dir / "dask"), "worker", address, "--nworkers", "1", "--nthreads", "1",
                                       "--host", "127.0.0.1", "--no-dashboard", "--preload", "tests.dask_slow_worker"],
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    from distributed import Client

    with Client(address, timeout="60s") as client:
        client.wait_for_workers(2, timeout=60)
    yield address, procs[1:]
    for p in procs:
        p.kill()
        p.wait()


def _one_process(tiny_data, tmp_path):
    out = tmp_path / "one"
    compose_dataset(data_dir=tiny_data, out_dir=out, cfg=dataclasses.replace(CFG, workers=1))
    return out


def test_a_loopback_cluster_gives_the_bytes_of_one_process(tiny_data, tmp_path, cluster):
    address, _ = cluster
    compose_dataset(data_dir=tiny_data, out_dir=tmp_path / "cluster", cfg=CFG, scheduler=address)
    _same_files(_one_process(tiny_data, tmp_path), tmp_path / "cluster")


def test_a_worker_killed_mid_run_leaves_the_bytes_unchanged(tiny_data, tmp_path, cluster):
    address, workers = cluster
    out = tmp_path / "cluster"
    rows = tmp_path / "cluster.partial" / "rows"
    done_at_kill = []

    def kill_one_worker_after_the_first_shard():
        deadline = time.time() + 60
        while time.time() < deadline and not (rows.is_dir() and any(rows.iterdir())):
            time.sleep(0.05)
        done_at_kill.append(len(list(rows.iterdir())))
        os.kill(workers[0].pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_one_worker_after_the_first_shard)
    killer.start()
    compose_dataset(data_dir=tiny_data, out_dir=out, cfg=CFG, scheduler=address)
    killer.join()
    assert workers[0].wait(timeout=10) == -signal.SIGKILL
    assert 1 <= done_at_kill[0] < 24  # killed while shards were still being made
    _same_files(_one_process(tiny_data, tmp_path), out)
