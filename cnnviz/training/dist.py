"""Several processes, one run: what ``torchrun`` sets (rank, world size, local rank), the process group, and the
sums every rank agrees on."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as tdist


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls) -> Dist:
        """What ``torchrun`` sets (RANK, WORLD_SIZE, LOCAL_RANK); a plain process is rank 0 of 1."""
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
        return t


def init_distributed(dist: Dist, device: torch.device) -> torch.device:
    """NCCL on CUDA (one GPU per local rank), gloo on the CPU."""
    if not dist.enabled:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not tdist.is_initialized():
        tdist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    return device


def close_distributed(dist: Dist) -> None:
    """Leave the process group (a no-op for a single process or one that never joined)."""
    if dist.enabled and tdist.is_initialized():
        with contextlib.suppress(Exception):
            tdist.destroy_process_group()
