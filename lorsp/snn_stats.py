"""Spike and synaptic-operation counting: the one rule every report uses.

Synaptic operations follow NeuroBench 2.3's definition: per layer, the number of pairs
(nonzero input, nonzero weight), bias excluded; they count as accumulates (ACs) when the
layer's input only takes values in {-1, 0, 1} (spikes) and as multiply-accumulates (MACs)
otherwise. For a spiking ``Linear`` layer with input spikes ``s[t, i]`` and weights ``W``:

    synops = sum_t sum_i s[t, i] * nnz(W[:, i])
"""
from __future__ import annotations

import torch


def is_spike_like(x: torch.Tensor) -> bool:
    """True when every value is -1, 0 or 1 (NeuroBench counts such inputs as ACs)."""
    return bool(torch.all((x == 0) | (x == 1) | (x == -1)))


def synops_per_sample(inputs: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Synaptic operations per sample of a linear layer over time.

    Args:
        inputs: ``(T, N, D)`` layer inputs (spikes or graded values).
        weight: ``(O, D)`` weight matrix.
    Returns:
        ``(N,)`` counts of (nonzero input, nonzero weight) pairs summed over time.
    """
    fan_out = (weight != 0).sum(0).to(torch.float64)  # (D,) nonzero weights leaving each input
    return ((inputs != 0).to(torch.float64) * fan_out).sum(dim=(0, 2))
