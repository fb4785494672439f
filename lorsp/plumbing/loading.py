"""Batches for training and evaluation: ``--workers N`` loader processes whose number never changes a result.

Why the figures cannot depend on ``N``:

* the order of the training images is the :class:`EpochSampler`'s, which runs in the main process and
  depends only on ``(seed, epoch)`` (and the rank under DDP), never on the loader;
* the images themselves are a pure function of their index (:class:`lorsp.data.ToModelInput`
  resizes; nothing is drawn at random), and batches come back in sampler order whatever worker
  made them;
* every loader draws its worker seeds from its own generator, seeded from the run's seed, not from
  the global one: a loader with workers would otherwise take numbers from the global generator on
  a different schedule (once, persistent, against once an epoch), and whatever training draws
  from it (LoRSP's noise, a new head) would change with ``N``. Each worker seeds ``random`` and
  NumPy from its torch seed, so a random transform added later is reproducible too.

With ``N > 0`` the workers are persistent (started once per run, not once per epoch); on CUDA
batches come in pinned memory so that the copy to the GPU overlaps the next step.
"""
from __future__ import annotations

import math
import random
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lorsp.plumbing.errors import LorspError

LOADER_SEED_OFFSET = 7_919
"""Added to the run's seed for the loaders' own generator (any constant: it only keeps it apart from the model's)."""


def epoch_indices(n: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[int]:
    """This rank's share of a permutation of ``range(n)`` that depends only on (seed, epoch)."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g).tolist()
    per_rank = math.ceil(n / world)
    perm += perm[: per_rank * world - n]  # pad so every rank takes the same number of steps
    return perm[rank::world]


class EpochSampler(Sampler[int]):
    """The training order: :func:`epoch_indices` of the epoch last given to :meth:`set_epoch`."""

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.seed, self.rank, self.world = n, seed, rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return iter(epoch_indices(self.n, self.seed, self.epoch, self.rank, self.world))

    def __len__(self) -> int:
        return math.ceil(self.n / self.world)


def check_workers(workers: int) -> int:
    """``--workers`` as given, or a one-line :class:`LorspError` for a negative count."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise LorspError(f"--workers must be a whole number >= 0, got {workers!r}")
    return workers


def seed_worker(worker_id: int) -> None:  # noqa: ARG001 - DataLoader's worker_init_fn signature
    """Seed ``random`` and NumPy in a loader worker from the torch seed the loader gave it."""
    seed = torch.initial_seed() % 2 ** 32
    random.seed(seed)
    np.random.seed(seed)


def make_loader(dataset: Dataset, batch_size: int, *, seed: int, workers: int = 0,
                device: torch.device = torch.device("cpu"), sampler: Sampler[int] | None = None) -> DataLoader:
    """A loader over ``dataset`` in ``sampler``'s order (or in order), ``workers`` persistent processes,
    pinned memory when ``device`` is CUDA, worker seeds from a generator seeded with ``seed``."""
    check_workers(workers)
    generator = torch.Generator().manual_seed(seed + LOADER_SEED_OFFSET)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=workers,
                      persistent_workers=workers > 0, pin_memory=device.type == "cuda",
                      worker_init_fn=seed_worker if workers > 0 else None, generator=generator)
