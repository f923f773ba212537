"""Data-parallel training under `torchrun`: the process group and the few collectives the loop
needs. A single process (no torchrun) gets a context whose collectives are no-ops, so the loop
reads the same either way.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; NCCL joins CUDA processes (one GPU per local
rank), gloo joins CPU ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """Where this process stands among the data-parallel ranks."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """True when there is more than one rank (collectives really communicate)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, writes checkpoints and shows progress."""
        return self.rank == 0

    def all_true(self, flag: bool) -> bool:
        """True when `flag` is true on every rank (e.g. "my loss is finite": a rank that skips the
        backward alone would leave the others waiting in the gradient all-reduce forever)."""
        if not self.active:
            return flag
        t = torch.tensor([int(flag)], dtype=torch.int32, device=_collective_device())
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item())

    def any_true(self, flag: bool) -> bool:
        """True when `flag` is true on some rank (e.g. "a signal arrived")."""
        return not self.all_true(not flag)

    def sum_on_device(self, t: torch.Tensor) -> torch.Tensor:
        """`t` summed over ranks, in place and without a host read (NCCL queues the reduction
        on the current stream; the host goes on). `t` lives on the training device, which is
        the collective's device (CUDA under NCCL, CPU under gloo)."""
        if self.active:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def gather(self, value: float) -> list[float]:
        """`value` from every rank, in rank order."""
        if not self.active:
            return [value]
        t = torch.tensor([value], dtype=torch.float64, device=_collective_device())
        out = [torch.zeros_like(t) for _ in range(self.world_size)]
        dist.all_gather(out, t)
        return [float(x.item()) for x in out]


def _collective_device() -> torch.device:
    # NCCL communicates only CUDA tensors; gloo only CPU ones.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def init_distributed(device_pref: str) -> DistContext:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); otherwise a
    single-process context. On CUDA each process takes the GPU of its LOCAL_RANK."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_pref != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistContext(rank, world_size, local_rank)


def shutdown_distributed(ctx: DistContext, wait: bool = True) -> None:
    """Leave the process group; with `wait`, first wait for every rank to get here."""
    if ctx.active and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def parameter_digest(module: torch.nn.Module) -> float:
    """A cheap fingerprint of the weights: the sum of every parameter's sum, in float64. Ranks
    that trained in sync have equal digests."""
    with torch.no_grad():
        return float(sum(p.detach().double().sum().item() for p in module.parameters()))
