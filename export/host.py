"""``host.safetensors``: the parts of a LoRSP model the chip does not run (format: :mod:`deploy.host`)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from safetensors.torch import save_file

from deploy.fixed_point import FixedPointLayer
from deploy.host import host_tensors
from lorsp.plumbing.fileio import atomic_write
from lorsp.model import PromptedClassifier


def write_host(model: PromptedClassifier, fixed: list[FixedPointLayer], path: str | Path) -> Path:
    """Write the host side of LoRSP ``model`` (chip layers quantised as ``fixed``) to ``path``, atomically."""
    return write_host_scales(model, [fx.scale for fx in fixed], path)


def write_host_scales(model: PromptedClassifier, scales: Sequence[float], path: str | Path) -> Path:
    """Write the host side of LoRSP ``model`` whose chip layers have fixed-point ``scales`` to ``path``, atomically."""
    tensors, metadata = host_tensors(model.prompt, model.head.state_dict(), list(scales))
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
