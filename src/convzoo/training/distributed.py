"""Many processes, one run: DistributedDataParallel under torchrun.

    torchrun --nproc_per_node=2 -m convzoo train lenet5 --data digits
    # two machines, one process each: the same command on both (docs/distributed.md)
    torchrun --nnodes=2 --nproc_per_node=1 --rdzv-backend=c10d --rdzv-endpoint=HOST0:29500 --rdzv-id=RUN \
        -m convzoo train lenet5 --data digits

torchrun starts the processes and sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; every
process runs the same training code on its own shard of the data, gradients are averaged across processes
after every backward pass (gloo on CPU, nccl on GPU), and only rank 0 logs and writes files. Without those
variables the same code runs as a single process and none of this is touched. The machines need not share a
disk: rank 0 writes the run folder on its own, and what it reads back (the best checkpoint) it broadcasts.
`--resume` reads the run folder on every process, so it needs the folder at the same path on every machine.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of `tensor` over all processes (the tensor itself in a single process)."""
        if not self.enabled:
            return tensor
        # gloo reduces CPU tensors, nccl GPU tensors: move to this process's device and back.
        summed = tensor.detach().to(self.device, dtype=torch.float64 if tensor.is_floating_point() else tensor.dtype)
        dist.all_reduce(summed, op=dist.ReduceOp.SUM)
        return summed.to(tensor.device, tensor.dtype)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast_from_main(self, tensors: dict[str, torch.Tensor]) -> None:
        """Overwrite every tensor, in place, with rank 0's (a network's state_dict: its parameters and buffers):
        what rank 0 read from its disk reaches processes on machines that do not share that disk."""
        if self.enabled:
            for tensor in tensors.values():
                dist.broadcast(tensor.data, src=0)


def resolve_device(name: str) -> torch.device:
    """'auto' is the GPU when there is one, else the CPU."""
    from ..errors import DeviceError
    from ..runtime import check_device

    if check_device(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} asked for, but PyTorch sees no CUDA GPU here; use --device cpu")
    return device


def setup(device: str = "auto") -> Distributed:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); otherwise a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    base = resolve_device(device)
    if world_size <= 1:
        return Distributed(device=base)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if base.type == "cuda":
        torch.cuda.set_device(local_rank)
        base = torch.device("cuda", local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if base.type == "cuda" else "gloo")
    return Distributed(rank=rank, world_size=world_size, local_rank=local_rank, device=base)


def teardown(context: Distributed) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()
