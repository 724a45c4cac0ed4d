"""Where a process runs: its device, and DistributedDataParallel plumbing for `torchrun`.

Under `torchrun --nproc_per_node=N` (WORLD_SIZE > 1) each process joins a process group
and trains on its share of the data; only rank 0 logs, writes and decides (whether to
resume, from what). Without torchrun everything here is a no-op.

On CUDA the group is device-aware, `cpu:gloo,cuda:nccl`: NCCL carries the gradients and
refuses CPU tensors, so the small CPU reductions (epoch sums) and broadcasts of Python
objects go through gloo. A plain NCCL group made every multi-GPU run die at the end of its
first epoch; a gloo test on CPU cannot show that, hence `backend()` and its test.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


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
    if not dist.is_initialized():
        dist.init_process_group(backend=backend(device_type))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local)
    return Dist(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local)


def all_sum(values: dict, d: Dist) -> dict[str, float]:
    """Each value (a number or a 0-d tensor on any device) summed over all processes, as floats.

    The values travel as one float64 tensor on their own device, and come back to the host
    in one read: the one sync of an epoch's sums."""
    keys = sorted(values)
    device = next((v.device for v in values.values() if isinstance(v, torch.Tensor)), torch.device("cpu"))
    t = torch.stack([torch.as_tensor(values[k], dtype=torch.float64, device=device) for k in keys])
    if d.active:
        dist.all_reduce(t)
    return dict(zip(keys, t.tolist()))


def broadcast(obj, d: Dist):
    """Rank 0's `obj` on every process (identity for one process)."""
    if not d.active:
        return obj
    box = [obj if d.main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(d: Dist) -> None:
    if d.active:
        dist.barrier()


def teardown(d: Dist) -> None:
    if d.active and dist.is_initialized():
        dist.destroy_process_group()
