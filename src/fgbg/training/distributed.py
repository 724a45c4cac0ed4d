"""Where a process runs: its device, and DistributedDataParallel plumbing for `torchrun`.

Under `torchrun --nproc_per_node=N` (WORLD_SIZE > 1) each process joins a process group
and trains on its share of the data; only rank 0 logs, writes and decides (whether to
resume, from what). Without torchrun everything here is a no-op.

Every rank sends the same collectives, with tensors of the same shape on its own device,
whatever its share of the data (none at all included): the epoch sums (`Sums`) are one
float64 tensor of fixed keys, and the finiteness flag (`first_rank`) is one int64. On CUDA the group
is device-aware, `cpu:gloo,cuda:nccl`: those device tensors and the gradients go through
NCCL, which refuses CPU tensors, and broadcasts of Python objects (the resume decision, an
error message), which torch sends as CPU tensors in such a group, go through gloo. The tests
run two processes on gloo (CPU); nothing here depends on which backend carries a tensor.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as torch_dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def backend(device_type: str) -> str:
    """The process-group backend for processes on `device_type`."""
    return "cpu:gloo,cuda:nccl" if device_type == "cuda" else "gloo"


def setup(device_type: str) -> Dist:
    """Join the process group when launched by torchrun; returns this process's place."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend=backend(device_type))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local)
    return Dist(rank=torch_dist.get_rank(), world=torch_dist.get_world_size(), local_rank=local)


def all_sum(values: dict, dist: Dist, device: torch.device) -> dict[str, float]:
    """Each value (a number or a 0-d tensor) summed over all processes, as floats.

    Every rank must give the same keys. The values travel as one float64 tensor on `device`,
    this rank's device (under NCCL a CPU tensor on one rank and a CUDA one on another would
    not meet), and come back to the host in one read: the one sync of an epoch's sums."""
    keys = sorted(values)
    sums = torch.stack([torch.as_tensor(values[k], dtype=torch.float64, device=device) for k in keys])  # len(keys)
    if dist.active:
        torch_dist.all_reduce(sums)
    return dict(zip(keys, sums.tolist()))


class Sums:
    """Weighted sums of 0-d device tensors and a sample count, reduced over every process once.

    `keys` start at a float64 zero on `device`, so that every rank sends the same keys whatever
    its share of the data (none at all included); others are added as they come. Adding reads
    nothing back from the device; `reduce` is the one sync (see all_sum)."""

    def __init__(self, keys: Iterable[str] = (), device: torch.device = torch.device("cpu")) -> None:
        self.device = device
        self.values: dict[str, torch.Tensor] = {k: torch.zeros((), dtype=torch.float64, device=device) for k in keys}
        self.n = 0  # samples counted: a host int

    def add(self, values: dict[str, torch.Tensor], weight: float = 1) -> None:
        """values[k] * weight added to sum k, in float64 on the values' device."""
        for k, v in values.items():
            self.values[k] = self.values.get(k, 0.0) + v.double() * weight  # 0-d float64

    def count(self, n: int) -> None:
        self.n += n

    def reduce(self, dist: Dist) -> tuple[dict[str, float], int]:
        """(mean of each sum over the samples of every process, that sample count)."""
        totals = all_sum({**self.values, "n": self.n}, dist, self.device)
        n = totals.pop("n")
        return {k: v / n for k, v in totals.items()}, int(n)


def first_rank(flag: torch.Tensor | None, dist: Dist, device: torch.device) -> int | None:
    """The lowest rank whose `flag` (a 0-d bool tensor; None for unset) is set, or None.

    Every rank must call it at the same point: one all_reduce of an int64 on `device`, so
    that a condition met on one rank (a NaN in its share) stops every rank alike."""
    flag = torch.zeros((), dtype=torch.bool, device=device) if flag is None else flag.to(device)
    rank = torch.where(flag, dist.rank, dist.world).to(torch.int64).reshape(1)  # 1, on every rank
    if dist.active:
        torch_dist.all_reduce(rank, op=torch_dist.ReduceOp.MIN)
    first = int(rank.item())
    return None if first == dist.world else first


def broadcast(obj, dist: Dist, src: int = 0):
    """Rank `src`'s `obj` on every process (identity for one process)."""
    if not dist.active:
        return obj
    box = [obj if dist.rank == src else None]
    torch_dist.broadcast_object_list(box, src=src)
    return box[0]


def broadcast_buffers(module: torch.nn.Module, dist: Dist) -> None:
    """Rank 0's buffers (BatchNorm statistics) on every rank, in place.

    DDP broadcasts them at the start of a training forward, so after an epoch's last step each
    rank's differ by its own last batch; DDP's own broadcast at the next forward never comes
    on a rank with no val samples, which is why validation runs on the module itself, after this."""
    if dist.active:
        for buffer in module.buffers():
            torch_dist.broadcast(buffer, src=0)


def barrier(dist: Dist) -> None:
    if dist.active:
        torch_dist.barrier()


def teardown(dist: Dist) -> None:
    """Leave the process group, all ranks together: a rank that destroys it while another still
    talks to it can abort in gloo's threads ("terminate called without an active exception")."""
    if dist.active and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()
