"""DistributedDataParallel: `torchrun --nproc_per_node=2` on CPU (gloo) trains, rank 0 alone writes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fgbg.imageio import atomic_write_json
from fgbg.split import split_index
from fgbg.stats import dataset_stats
from fgbg.store import Dataset
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_two_processes_train_and_only_rank_0_writes(tiny_dataset, tmp_path):
    ds = Dataset(tiny_dataset)
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


def test_a_cuda_group_also_carries_cpu_tensors():
    """NCCL refuses CPU tensors; the epoch sums and the resume broadcast are CPU objects."""
    from fgbg.distributed import backend

    assert backend("cuda") == "cpu:gloo,cuda:nccl"
    assert backend("cpu") == "gloo"


def test_one_process_needs_no_group():
    from fgbg.distributed import Dist, all_sum, broadcast

    assert all_sum({"n": 3.0}, Dist()) == {"n": 3.0} and broadcast({"a": 1}, Dist()) == {"a": 1}
