"""Where a run computes: ``--device auto|cpu|cuda|cuda:N``, and the process group that goes with it.

* ``auto``: the first CUDA device when torch sees one, else the CPU;
* ``cpu``: the CPU, whatever is installed;
* ``cuda`` / ``cuda:N``: that GPU; refused in one line where torch has no CUDA, or no device ``N``.

Under ``torchrun`` (``WORLD_SIZE > 1``) a CUDA run pins each rank to ``cuda:LOCAL_RANK``
(``cuda`` and ``auto`` do that; an explicit ``cuda:N`` is refused, since every rank would take
the same GPU), and :func:`process_group_backend` picks NCCL there and gloo on the CPU.
"""
from __future__ import annotations

import os
import re

import torch

from lorsp.plumbing.errors import LorspError

DEVICE_CHOICES = "auto|cpu|cuda|cuda:N"
_SPEC = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


def device_spelling_ok(spec: str) -> bool:
    """Whether ``spec`` is spelt as ``--device`` takes it (:data:`DEVICE_CHOICES`), present here or not."""
    match = _SPEC.match(str(spec).strip())
    return match is not None and (match.group(1) == "cuda" or match.group(2) is None)


def _cuda_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(spec: str, *, world: int = 1, local_rank: int = 0) -> torch.device:
    """The :class:`torch.device` that ``--device spec`` names on this machine, for this rank.

    Raises :class:`LorspError` (one line) for a malformed name, for CUDA where torch has none,
    for a device index beyond those present, or for ``cuda:N`` under more than one process.
    """
    match = _SPEC.match(str(spec).strip())
    if not device_spelling_ok(spec):
        raise LorspError(f"--device must be one of {DEVICE_CHOICES}, got {spec!r}")
    kind, index = match.group(1), match.group(2)
    count = _cuda_count()
    if kind == "cpu" or (kind == "auto" and count == 0):
        return torch.device("cpu")
    if count == 0:
        built = "torch was built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
        raise LorspError(f"--device {spec}: {built} here (torch {torch.__version__}); use --device cpu or auto")
    if index is not None:
        if world > 1:
            raise LorspError(f"--device {spec} under torchrun would put every rank on one GPU: use --device cuda "
                             f"(rank k takes cuda:LOCAL_RANK)")
        chosen = int(index)
    else:
        chosen = local_rank if world > 1 else 0
    if chosen >= count:
        raise LorspError(f"--device {spec}: cuda:{chosen} does not exist (this machine has {count} CUDA "
                         f"device{'s' if count != 1 else ''})")
    return torch.device("cuda", chosen)


def local_rank() -> int:
    """This process's index on its node under torchrun (``LOCAL_RANK``), 0 when run alone."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def process_group_backend(device: torch.device) -> str:
    """``nccl`` for CUDA ranks, ``gloo`` for CPU ones."""
    return "nccl" if device.type == "cuda" else "gloo"


def describe_device(device: torch.device) -> str:
    """``cpu``, or ``cuda:0 (NVIDIA H200)``: what a run's metrics.json records."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)
