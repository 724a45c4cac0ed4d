"""Compose on a real Dask cluster on 127.0.0.1: a scheduler and two worker processes, started
as a user would, give the bytes of a one-process run, also when a worker is killed mid-run.
A wrong address (nothing there, not Dask, a scheduler without workers) is one `error:` line
within a bounded time."""

import dataclasses
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import fgbg.composing.cluster
from fgbg.composing.build import compose_dataset
from fgbg.core.config import TeacherConfig
from fgbg.core.errors import run
from tests.conftest import TINY_COMPOSE
from tests.test_store import _same_files
from tests.test_teacher import mean_model  # noqa: F401  (a fixture)

pytestmark = pytest.mark.slow
CFG = dataclasses.replace(TINY_COMPOSE, shard_size=2)  # 24 shards


BIN = Path(sys.executable).parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), *sys.path])}


def _start_scheduler(tmp_path) -> tuple[subprocess.Popen, str]:
    """A `dask scheduler` on 127.0.0.1, with no workers: (its process, its address)."""
    scheduler_file = tmp_path / "scheduler.json"
    proc = subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                             "--dashboard-address", ":0", "--scheduler-file", str(scheduler_file)],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not scheduler_file.is_file() and time.time() < deadline:
        time.sleep(0.2)
    return proc, json.loads(scheduler_file.read_text())["address"]


@pytest.fixture
def cluster(tmp_path):
    """(scheduler address, [worker processes]); everything on 127.0.0.1, stopped afterwards."""
    scheduler, address = _start_scheduler(tmp_path)
    procs = [scheduler]
    elsewhere = tmp_path / "workers"  # their working folder: the client's relative paths name nothing there
    elsewhere.mkdir()
    for _ in range(2):
        procs.append(subprocess.Popen([str(BIN / "dask"), "worker", address, "--nworkers", "1", "--nthreads", "1",
                                       "--host", "127.0.0.1", "--no-dashboard", "--preload", "tests.dask_slow_worker"],
                                      env=ENV, cwd=elsewhere, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
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


@pytest.mark.parametrize("write", ["client", "workers"])
def test_a_loopback_cluster_gives_the_bytes_of_one_process(tiny_data, tmp_path, cluster, write):
    address, _ = cluster
    compose_dataset(data_dir=tiny_data, out_dir=tmp_path / "cluster", cfg=CFG, scheduler=address, write=write)
    _same_files(_one_process(tiny_data, tmp_path), tmp_path / "cluster")


@pytest.mark.parametrize("write", ["client", "workers"])
def test_a_worker_killed_mid_run_leaves_the_bytes_unchanged(tiny_data, tmp_path, cluster, write):
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
    compose_dataset(data_dir=tiny_data, out_dir=out, cfg=CFG, scheduler=address, write=write)
    killer.join()
    assert workers[0].wait(timeout=10) == -signal.SIGKILL
    assert 1 <= done_at_kill[0] < 24  # killed while shards were still being made
    _same_files(_one_process(tiny_data, tmp_path), out)


def test_teacher_depth_needs_no_shared_filesystem(tiny_data, tmp_path, cluster, mean_model, monkeypatch):  # noqa: F811
    """The model's path is relative to this process's folder and names nothing in the workers':
    its bytes travel to them, and the shards equal a one-process run's."""
    address, _ = cluster
    here = tmp_path / "client"
    here.mkdir()
    shutil.copy(mean_model, here / "teacher.onnx")
    monkeypatch.chdir(here)
    assert not (tmp_path / "workers" / "teacher.onnx").exists()
    teacher = TeacherConfig(model="teacher.onnx", input_size=0, mean=(0, 0, 0), std=(1, 1, 1), batch=4)
    cfg = dataclasses.replace(CFG, depth="teacher", teacher=teacher, shard_size=10)
    compose_dataset(data_dir=tiny_data, out_dir=tmp_path / "cluster", cfg=cfg, scheduler=address)
    compose_dataset(data_dir=tiny_data, out_dir=tmp_path / "one", cfg=dataclasses.replace(cfg, workers=1))
    _same_files(tmp_path / "one", tmp_path / "cluster")


def test_a_worker_address_is_one_error_line(tiny_data, tmp_path, capsys, cluster):
    address, _ = cluster
    from distributed import Client

    with Client(address, timeout="10s") as client:
        worker = next(iter(client.scheduler_info()["workers"]))
    code, _ = _compose_through_run(tiny_data, tmp_path, worker, within=60)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: the Dask scheduler address {worker} (--scheduler or FGBG_DASK_SCHEDULER): "
                             "what answers there is not a Dask scheduler (")


def _closed_port() -> str:
    """An address on 127.0.0.1 where nothing listens: a port bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


def _compose_through_run(tiny_data, tmp_path, address: str, within: float) -> tuple[int, float]:
    """`compose_dataset(scheduler=address)` as the CLI runs it (fgbg.core.errors.run), in a thread that
    must end within `within` s: (its exit code, seconds taken)."""
    box = {}

    def compose() -> None:
        start = time.monotonic()
        try:
            run(lambda argv: compose_dataset(data_dir=tiny_data, out_dir=tmp_path / "out", cfg=CFG, scheduler=address))
        except SystemExit as e:
            box["code"] = e.code
        except BaseException as e:  # noqa: BLE001  (shown by the assertion below)
            box["error"] = e
        box["seconds"] = time.monotonic() - start

    thread = threading.Thread(target=compose, daemon=True)  # a hang must not keep pytest from exiting
    thread.start()
    thread.join(within)
    assert not thread.is_alive(), f"compose with scheduler {address} still running after {within} s"
    assert "code" in box, f"compose did not stop with a user error but with {box.get('error')!r}"
    return box["code"], box["seconds"]


@pytest.fixture
def short_timeout(monkeypatch):
    monkeypatch.setattr(fgbg.composing.cluster, "CLUSTER_TIMEOUT_S", 2.0)


def test_a_closed_port_is_one_error_line(tiny_data, tmp_path, capsys, short_timeout):
    address = _closed_port()
    code, seconds = _compose_through_run(tiny_data, tmp_path, address, within=40)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: the Dask scheduler address {address} (--scheduler or FGBG_DASK_SCHEDULER): "
                             "could not connect within 2 s; check that `dask scheduler` runs "
                             "there and that this is the address it prints (port 8786 by default, not the "
                             "dashboard's 8787), or leave the address unset to compose on local worker processes")
    assert 2 <= seconds < 6


@pytest.fixture(params=["silent", "http"])
def not_dask(request):
    """The address of a server on 127.0.0.1 that is not Dask: one that accepts and never speaks, or HTTP."""
    if request.param == "silent":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen()  # the kernel accepts connections into the backlog; nobody reads them
            yield f"tcp://127.0.0.1:{sock.getsockname()[1]}"
        return
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_server_that_is_not_dask_is_one_error_line(tiny_data, tmp_path, capsys, short_timeout, not_dask):
    code, seconds = _compose_through_run(tiny_data, tmp_path, not_dask, within=40)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: the Dask scheduler address {not_dask} (--scheduler or FGBG_DASK_SCHEDULER): "
                             "it accepted a connection but did not answer as Dask does within 2 s; check that "
                             "`dask scheduler` runs there")
    assert 2 <= seconds < 6


def test_a_scheduler_without_workers_is_one_error_line(tiny_data, tmp_path, capsys, short_timeout):
    scheduler, address = _start_scheduler(tmp_path)
    try:
        code, seconds = _compose_through_run(tiny_data, tmp_path, address, within=60)
    finally:
        scheduler.kill()
        scheduler.wait()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0] == (f"error: the Dask scheduler at {address} has no workers: none joined within 2 s; start some "
                      f"(`dask worker {address}` on each machine), or leave --scheduler and FGBG_DASK_SCHEDULER "
                      "unset to compose on local worker processes")
    assert 2 <= seconds < 8
