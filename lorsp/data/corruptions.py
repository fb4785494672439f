"""Seeded image corruptions for robustness tests, after ImageNet-C.

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions
and Perturbations", ICLR 2019 (github hendrycks/robustness) define five severities per
corruption. We keep three of its families and its first, third and fifth steps where
the scale carries over to small images:

* ``gaussian_noise``: ``x + N(0, s^2)``, ``s`` = 0.08, 0.18, 0.38 (ImageNet-C's c[0], c[2], c[4]);
* ``gaussian_blur``: Gaussian filter with sigma 1, 3, 6 px at 224 px (its c[0], c[2], c[4]),
  scaled by ``L / 224`` so the blur covers the same share of the image at any size;
* ``contrast``: ``(x - mean) c + mean`` per image, ``c`` = 0.4, 0.2, 0.05 (its c[0], c[2], c[4]).

All act on the model input (``3 x L x L`` in [0, 1], before the prompt) and clip back to
[0, 1]. Noise is drawn from a generator seeded by ``(seed, index)``, so a corrupted test
set is the same for every method, run and batch size.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from lorsp.plumbing.errors import LorspError

SEVERITIES = (1, 2, 3)
NOISE_STD = {1: 0.08, 2: 0.18, 3: 0.38}
BLUR_SIGMA_AT_224 = {1: 1.0, 2: 3.0, 3: 6.0}
CONTRAST_FACTOR = {1: 0.4, 2: 0.2, 3: 0.05}


def gaussian_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype) * NOISE_STD[severity]
    return (x + noise).clamp_(0.0, 1.0)


def gaussian_blur(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:  # noqa: ARG001
    sigma = BLUR_SIGMA_AT_224[severity] * x.shape[-1] / 224
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[0]
    y = x.unsqueeze(0)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1),
                 groups=c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1),
                 groups=c)
    return y.squeeze(0).clamp_(0.0, 1.0)


def contrast(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:  # noqa: ARG001
    mean = x.mean()
    return ((x - mean) * CONTRAST_FACTOR[severity] + mean).clamp_(0.0, 1.0)


CORRUPTIONS: dict[str, Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]] = {
    "gaussian_noise": gaussian_noise, "gaussian_blur": gaussian_blur, "contrast": contrast}


def check_corruption(name: str, severity: int) -> None:
    """Raise LorspError unless ``name`` is a known corruption and ``severity`` one of SEVERITIES."""
    if name not in CORRUPTIONS:
        raise LorspError(f"unknown corruption {name!r}; choose one of: {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise LorspError(f"corruption severity must be one of {SEVERITIES}, got {severity}")


def corrupt(x: torch.Tensor, name: str, severity: int, seed: int = 0, index: int = 0) -> torch.Tensor:
    """Corruption ``name`` at ``severity`` (1..3) of one image ``x`` (``3 x L x L`` in [0, 1])."""
    check_corruption(name, severity)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
    return CORRUPTIONS[name](x, severity, generator)


class CorruptedView(Dataset):
    """``dataset`` with every image corrupted by ``name`` at ``severity``, seeded per item."""

    def __init__(self, dataset: Dataset, name: str, severity: int, seed: int = 0):
        check_corruption(name, severity)
        self.dataset, self.name, self.severity, self.seed = dataset, name, severity, seed
        self.targets = getattr(dataset, "targets", None)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Any]:
        x, y = self.dataset[i]
        return corrupt(x, self.name, self.severity, self.seed, i), y
