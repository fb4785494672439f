"""Where this process trains: alone, or as one rank of a torchrun group (DistributedDataParallel).

Under ``torchrun`` the group's backend follows the device (gloo on the CPU, NCCL on CUDA, each
rank on ``cuda:LOCAL_RANK``); rank 0 evaluates and writes, once.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from lorsp.plumbing.device import local_rank, process_group_backend, resolve_device


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: its rank, the number of ranks and its device."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> Dist:
    """Resolve ``--device`` for this rank and join the process group torchrun set up, or run alone.

    The group's backend follows the device (:func:`lorsp.plumbing.device.process_group_backend`); a CUDA
    rank is made the current device before the group starts.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    chosen = resolve_device(device, world=world, local_rank=local_rank())
    if world <= 1:
        return Dist(device=chosen)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group(process_group_backend(chosen))
    return Dist(dist.get_rank(), dist.get_world_size(), chosen)


def barrier(d: Dist) -> None:
    if d.world > 1:
        dist.barrier()
