"""DistributedDataParallel on CPU (gloo), two processes on 127.0.0.1: `torchrun --nproc_per_node=2`
trains and rank 0 alone writes; a rank with no val samples, a padded train share and a NaN on
one rank only end the same way on every rank, within a bounded time."""

import json
import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import yaml

from fgbg.core.config import Params, from_dict
from fgbg.core.imageio import atomic_write_json
from fgbg.dataset.split import split_index
from fgbg.dataset.stats import dataset_stats
from fgbg.dataset.store import ComposedStore
from fgbg.training import distributed
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_two_processes_train_and_only_rank_0_writes(tiny_dataset, tmp_path):
    ds = ComposedStore(tiny_dataset)
    atomic_write_json(tmp_path / "stats.json", dataset_stats(ds))
    atomic_write_json(tmp_path / "split.json", split_index(ds.index, group_by="fg", val_fraction=0.25, test_fraction=0.25, seed=0))
    params = {"epochs": 2, "batch_size": 4, "compose": {"bg_size": 16, "fg_size": 8},
              "model": {"width": 4, "levels": 2}, "train": {"threads": 1, "image_every": 1, "crop": 0}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", str(ROOT / "stages" / "train.py"),
           "--params", str(tmp_path / "params.yaml"), "--dataset", str(tiny_dataset), "--stats", str(tmp_path / "stats.json"),
           "--split", str(tmp_path / "split.json"), "--models", str(tmp_path / "models"), "--live", str(tmp_path / "live"),
           "--metrics", str(tmp_path / "train.json")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-4000:]
    assert r.stderr.count("device cpu x 2") == 1  # one process logs
    assert r.stderr.count("epoch 1 (16 px)") == 1
    summary = json.loads((tmp_path / "train.json").read_text())
    split = json.loads((tmp_path / "split.json").read_text())
    # each process validates a disjoint share; the reduced count is the whole val split, once
    assert summary["epoch"] == 1 and summary["samples"] == {"train": len(split["train"]), "val": len(split["val"])}
    assert (tmp_path / "models" / "last.pt").is_file() and not list((tmp_path / "models").glob(".*.tmp"))
    assert len((tmp_path / "live" / "plots" / "metrics" / "val" / "loss.tsv").read_text().splitlines()) == 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(rank: int, port: int, target, args: tuple, out: Path) -> None:
    """One of two processes: run `target(rank, *args)`, pickle ("ok", its result) or ("error", the error) to `out`."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
                      LOCAL_RANK=str(rank), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    try:
        result = ("ok", target(rank, *args))
    except Exception as e:  # noqa: BLE001  (compared across ranks by the test)
        result = ("error", f"{type(e).__name__}: {e}")
    distributed.teardown(distributed.Dist(rank=rank, world=2))
    out.write_bytes(pickle.dumps(result))


def _in_two_processes(tmp_path: Path, target, *args, within: float = 120) -> list[tuple]:
    """`target(rank, *args)` in two spawned processes that torchrun's variables make ranks 0 and 1;
    their results, or a failure naming the ranks still running after `within` s (killed)."""
    ctx = mp.get_context("spawn")
    port = _free_port()
    outs = [tmp_path / f"rank{rank}.pkl" for rank in range(2)]
    procs = [ctx.Process(target=_rank_main, args=(rank, port, target, args, outs[rank])) for rank in range(2)]
    for proc in procs:
        proc.start()
    deadline = time.monotonic() + within
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
    hung = [rank for rank, proc in enumerate(procs) if proc.is_alive()]
    for proc in procs:
        if proc.is_alive():
            proc.kill()
            proc.join()
    assert not hung, f"rank(s) {hung} still running after {within} s: blocked in a collective"
    return [pickle.loads(out.read_bytes()) if out.is_file() else ("died", proc.exitcode)
            for out, proc in zip(outs, procs)]


def _collectives(rank: int) -> tuple:
    d = distributed.setup("cpu")  # the backend that `backend("cpu")` chooses
    sums = distributed.all_sum({"n": rank + 1, "loss": torch.tensor(0.5 * rank, dtype=torch.float64)}, d,
                               torch.device("cpu"))
    share = distributed.Sums(["loss"])  # rank 1's share is empty: its zero still travels
    if rank == 0:
        share.add({"loss": torch.tensor(2.0)}, 3)
        share.count(3)
    return d.world, torch.distributed.get_backend(), sums, distributed.broadcast(f"from rank {rank}", d), \
        share.reduce(d)


def test_the_group_that_setup_joins_carries_the_epoch_sums_and_broadcasts(tmp_path):
    expected = ("ok", (2, "gloo", {"loss": 0.5, "n": 3.0}, "from rank 0", ({"loss": 2.0}, 3)))
    assert _in_two_processes(tmp_path, _collectives) == [expected] * 2


def _prepared(tiny_dataset, tmp_path: Path, n_train: int, n_val: int) -> dict:
    """The paths train_model takes, with a split of `n_train` and `n_val` samples."""
    ds = ComposedStore(tiny_dataset)
    split = split_index(ds.index, group_by="fg", val_fraction=0.25, test_fraction=0.25, seed=0)
    split.update(train=split["train"][:n_train], val=split["val"][:n_val])
    atomic_write_json(tmp_path / "stats.json", dataset_stats(ds))
    atomic_write_json(tmp_path / "split.json", split)
    return dict(dataset_dir=tiny_dataset, stats_path=tmp_path / "stats.json", split_path=tmp_path / "split.json",
                model_dir=tmp_path / "models", live_dir=tmp_path / "live", metrics_path=tmp_path / "train.json")


TWO_RANKS = {"epochs": 1, "batch_size": 4, "compose": {"bg_size": 16, "fg_size": 8}, "model": {"width": 4, "levels": 2},
             "train": {"threads": 1, "image_every": 0, "crop": 0}}


def _train(rank: int, paths: dict, nan: tuple[str, int] | None = None) -> dict:
    """train_model on this rank; `nan`: (phase, step) at which rank 1's loss is NaN."""
    from fgbg.training.train import train_model
    from fgbg.training.trainer import Heads

    if nan and rank == 1:
        real, calls = Heads.forward, {"train": 0, "val": 0}

        def forward(self, model, x, targets):
            outputs, loss, terms = real(self, model, x, targets)
            phase = "train" if model.training else "val"
            calls[phase] += 1
            if (phase, calls[phase] - 1) == nan:
                loss = loss * float("nan")
            return outputs, loss, terms

        Heads.forward = forward
    return train_model(params=from_dict(Params, TWO_RANKS), **paths)["samples"]


def test_a_rank_without_val_samples_and_a_padded_train_share(tiny_dataset, tmp_path):
    """1 val sample for 2 ranks: rank 1 validates none. 23 train samples: the sampler pads rank 1's
    share to 12 with a repeat, which `samples` does not count."""
    paths = _prepared(tiny_dataset, tmp_path, n_train=23, n_val=1)
    assert _in_two_processes(tmp_path, _train, paths) == [("ok", {"train": 23, "val": 1})] * 2


@pytest.mark.parametrize("phase, step", [("val", 0), ("train", 2)])  # train: rank 1's last step of 3
def test_a_nan_on_one_rank_stops_every_rank_with_the_same_error(tiny_dataset, tmp_path, phase, step):
    paths = _prepared(tiny_dataset, tmp_path, n_train=23, n_val=2)
    results = _in_two_processes(tmp_path, _train, paths, (phase, step))
    assert results[0] == results[1], results
    assert results[0][0] == "error" and results[0][1].startswith(
        f"FloatingPointError: loss is not finite at epoch 0, between steps 0 and {step} ({phase}, rank 1); terms at "
        f"step {step}: {{'mask_bce': "), results


def test_one_process_needs_no_group():
    from fgbg.training.distributed import Dist, all_sum, broadcast

    assert all_sum({"n": 3.0}, Dist(), torch.device("cpu")) == {"n": 3.0} and broadcast({"a": 1}, Dist()) == {"a": 1}


def test_sums_weigh_their_values_and_reduce_to_means():
    from fgbg.training.distributed import Dist, Sums

    sums = Sums(["loss", "unseen"])
    for loss, n in ((1.0, 2), (4.0, 1)):
        sums.add({"loss": torch.tensor(loss), "extra": torch.tensor(3.0)}, n)
        sums.count(n)
    assert sums.reduce(Dist()) == ({"extra": 3.0, "loss": 2.0, "unseen": 0.0}, 3)
