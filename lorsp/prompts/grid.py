"""The dyadic grid a spiking generator computes on, so that fixed point on the chip is exact (docs/method.md,
"Exact on the chip")."""
from __future__ import annotations

import torch

GRID_STEP = 2.0 ** -5
"""Band gating's start (relay weights, calibrated gate biases) lies on multiples of this step.

Dyadic values with few bits survive every stage unrounded: float32 sums and products by a
dyadic ``beta`` are exact, and :func:`deploy.fixed_point.choose_scale` finds a power-of-two
scale that turns each of them into an (even) integer. With ``beta = 0.5`` and ``T <= 8``
Loihi's integer decay is exact as well, so the fixed-point chip gives PyTorch's spikes bit
for bit (docs/method.md, "Exact on the chip")."""


def snap_to_grid(values: torch.Tensor, step: float = GRID_STEP) -> torch.Tensor:
    """``values`` rounded to the nearest multiple of ``step``."""
    return torch.round(values / step) * step


def on_grid(values: torch.Tensor, step: float = GRID_STEP) -> torch.Tensor:
    """``values`` snapped to the grid in the forward pass, the gradient passed straight through: a generator that
    learns computes what the fixed-point chip computes (docs/method.md, "Exact on the chip")."""
    return values + (snap_to_grid(values, step) - values).detach()
