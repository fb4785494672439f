"""The instance encoding that feeds the spiking generator; defined once, used everywhere.

Host side, per image ``x`` (``3 x L x L`` in [0, 1]):

1. average-pool to ``3 x p x p`` and flatten to ``D = 3 p^2`` values ``v_i`` in [0, 1];
2. quantise to spike counts ``k_i = round(v_i T)`` in ``{0, ..., T}``;
3. emit a deterministic integrate-and-fire spike train per input: an integer
   accumulator ``a_i(0) = 0``, ``a_i(t) = a_i(t-1) + k_i``; input ``i`` spikes at step
   ``t`` when ``a_i(t) >= T``, and then ``a_i(t) -= T``. Input ``i`` fires exactly ``k_i``
   times in ``T`` steps, evenly spread.

Everything after step 1 is integer arithmetic, so PyTorch, the exporters and every
simulator produce the same binary spikes bit for bit: the chip receives binary events
(Lava's ``Dense`` with its default binary messages), never graded values. The counts
``k`` are what a host sends; :func:`spike_train` is the only definition of the train.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def pooled_values(x: torch.Tensor, pool: int) -> torch.Tensor:
    """``(N, 3, L, L)`` images -> ``(N, 3 * pool * pool)`` mean values in [0, 1]."""
    return F.adaptive_avg_pool2d(x, pool).flatten(1).clamp(0.0, 1.0)


def spike_counts(x: torch.Tensor, pool: int, time_steps: int) -> torch.Tensor:
    """Integer spike counts ``k = round(v T)`` per input, shape ``(N, 3 * pool^2)``, int64."""
    return torch.round(pooled_values(x, pool) * time_steps).to(torch.int64)


def spike_train(counts: torch.Tensor | np.ndarray, time_steps: int) -> torch.Tensor | np.ndarray:
    """Binary spike trains ``(T, N, D)`` from counts ``(N, D)`` (torch or numpy, same type back)."""
    is_numpy = isinstance(counts, np.ndarray)
    k = torch.from_numpy(np.asarray(counts, dtype=np.int64)) if is_numpy else counts.to(torch.int64)
    t = torch.arange(1, time_steps + 1, dtype=torch.int64).view(-1, *([1] * k.ndim))
    # a spike at step t (1-based) iff floor(t k / T) increases: the accumulator above in closed form
    fired = (t * k) // time_steps - ((t - 1) * k) // time_steps
    out = fired.to(torch.float32)
    return out.numpy() if is_numpy else out


def encode(x: torch.Tensor, pool: int, time_steps: int) -> torch.Tensor:
    """Images ``(N, 3, L, L)`` -> input spikes ``(T, N, 3 * pool^2)`` in {0, 1}."""
    return spike_train(spike_counts(x, pool, time_steps), time_steps)
