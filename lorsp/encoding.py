"""The instance encodings that feed the spiking generator; defined once, used everywhere.

Host side, per image ``x`` (``3 x L x L`` in [0, 1]):

1. reduce the image to ``D`` values ``v_i`` in [0, 1] (the encoding's own step, below);
2. quantise to spike counts ``k_i = round(v_i T)`` in ``{0, ..., T}``;
3. emit a deterministic integrate-and-fire spike train per input: an integer
   accumulator ``a_i(0) = 0``, ``a_i(t) = a_i(t-1) + k_i``; input ``i`` spikes at step
   ``t`` when ``a_i(t) >= T``, and then ``a_i(t) -= T``. Input ``i`` fires exactly ``k_i``
   times in ``T`` steps, evenly spread (the ``rate`` code, every encoding's default). The ``latency``
   code (pixel gating's ``--pixel-code latency``) sends each input at most one spike instead: input
   ``i`` spikes once, at step ``T - k_i + 1`` (1-based; the brightest first), when ``k_i > 0``, and never
   when ``k_i = 0``: at most ``1/T`` of the inputs spike on any step, whatever the image.

Step 1, by encoding (:data:`ENCODINGS`, its ``size`` in brackets):

* ``pool`` (``p``): average-pool to ``3 x p x p`` and flatten, ``D = 3 p^2``;
* ``bands`` (``G``): where the image's content lies, band by band. The grey image
  ``y = mean_c x_c`` and its deviation ``d = |y - mean(y)|`` from its own mean;
  ``d`` averaged over ``G`` bands of rows and over ``G`` bands of columns (band ``b``
  holds rows ``floor(b L / G)`` to ``floor((b + 1) L / G) - 1``, as adaptive average
  pooling cuts them; band gating needs ``G`` to divide ``L``), both divided by the
  largest of the ``2 G`` values (an image whose largest value is at most 1e-6, no
  content, gives zeros): ``D = 2 G``, rows first. A gate that reads its own
  band is told how much of the image's content is in it.

Step 1 runs in float64 (the float32 image widened first) and step 2 rounds ``v T`` in float64,
half to even: a float32 reduction's result depends on the order of its sums (PyTorch's
vectorised order differs from numpy's and between CPUs); in float64 the orders differ by about
1e-16 and give the same counts (checked against a numpy runner on real test images by
``tests/test_run_bundle.py``). This is version :data:`ENCODING_VERSION` of the encodings (version 1 reduced
in float32); the bundle spec (:mod:`deploy.spec`) names it, so a runner without lorsp
reproduces the counts from the formula alone (``examples/run_bundle.py``).

Everything after step 1 is integer arithmetic, so PyTorch, the exporters and every
simulator produce the same binary spikes bit for bit: the chip receives binary events
(Lava's ``Dense`` with its default binary messages), never graded values. The counts
``k`` are what a host sends; :func:`spike_train` is the only definition of the train.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.registry import Registry


def pooled_values(x: torch.Tensor, pool: int) -> torch.Tensor:
    """``(N, 3, L, L)`` images -> ``(N, 3 * pool * pool)`` mean values in [0, 1] (``pool = L``: the pixels)."""
    pooled = x if tuple(x.shape[-2:]) == (pool, pool) else F.adaptive_avg_pool2d(x, pool)
    return pooled.flatten(1).clamp(0.0, 1.0)


ENCODING_VERSION = 2
"""The arithmetic of the encodings (module docstring): 2, step 1 in float64; 1 was float32."""

NO_CONTENT = 1e-6
"""The bands encoding's floor: a largest band deviation at or below it (pixel values in [0, 1]) is no content."""


def band_values(x: torch.Tensor, bands: int) -> torch.Tensor:
    """``(N, 3, L, L)`` images -> ``(N, 2 * bands)``: content per row band, then per column band, in [0, 1]."""
    grey = x.mean(1, keepdim=True)
    deviation = (grey - grey.mean((2, 3), keepdim=True)).abs()
    rows = F.adaptive_avg_pool2d(deviation, (bands, 1)).flatten(1)
    cols = F.adaptive_avg_pool2d(deviation, (1, bands)).flatten(1)
    profile = torch.cat([rows, cols], 1)
    peak = profile.amax(1, keepdim=True)
    # an image with no content (constant, up to float rounding of its mean) encodes as zeros, not as noise
    return torch.where(peak > NO_CONTENT, profile / peak.clamp_min(NO_CONTENT), 0.0).clamp(0.0, 1.0)


@dataclass(frozen=True)
class EncodingKind:
    """One way to reduce an image to the generator's input values (step 1 above)."""

    values: Callable[[torch.Tensor, int], torch.Tensor]
    """``(images (N, 3, L, L), size) -> (N, D)`` in [0, 1]."""
    inputs: Callable[[int], int]
    """``size -> D``."""
    host_operations: Callable[[int, int], tuple[int, int]]
    """``(image size L, size) -> (adds, multiplies)`` per image of step 1 (step 2 adds ``D`` multiplies)."""


ENCODINGS: Registry[EncodingKind] = Registry("encoding", sort_names=False)
ENCODINGS.add("pool", EncodingKind(pooled_values, lambda p: 3 * p * p, lambda L, p: (3 * L * L, 0)))
# grey 3L^2 adds and L^2 multiplies, mean L^2 adds, deviation and |.| 2 L^2, row and column sums 2 L^2,
# 2G divisions counted as multiplies
ENCODINGS.add("bands", EncodingKind(band_values, lambda g: 2 * g, lambda L, g: (8 * L * L, L * L + 2 * g)))


def list_encodings() -> list[str]:
    """The names of the instance encodings."""
    return ENCODINGS.names()


@dataclass(frozen=True)
class Encoding:
    """An instance encoding: its ``name`` (:data:`ENCODINGS`), ``size`` (``p`` or ``G``) and ``time_steps`` ``T``."""

    name: str
    size: int
    time_steps: int
    code: str = "rate"
    """How counts become spikes (step 3): :data:`SPIKE_CODES`."""

    def __post_init__(self) -> None:
        ENCODINGS.get(self.name)
        SPIKE_CODES.get(self.code)
        if not isinstance(self.size, int) or self.size < 1:
            raise LorspError(f"encoding size must be a positive integer, got {self.size!r}")
        if not isinstance(self.time_steps, int) or not 1 <= self.time_steps <= 1024:
            raise LorspError(f"--time-steps must be an integer in 1..1024, got {self.time_steps}")

    @property
    def inputs(self) -> int:
        """``D``, the generator's input width."""
        return ENCODINGS.get(self.name).inputs(self.size)

    def values(self, x: torch.Tensor) -> torch.Tensor:
        """Step 1: ``(N, 3, L, L)`` -> ``(N, D)`` float64 in [0, 1], computed in float64."""
        return ENCODINGS.get(self.name).values(x.to(torch.float64), self.size)

    def counts(self, x: torch.Tensor) -> torch.Tensor:
        """Step 2: integer spike counts ``k = round(v T)`` per input (float64, half to even), ``(N, D)`` int64."""
        return torch.round(self.values(x) * self.time_steps).to(torch.int64)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(N, 3, L, L)`` -> input spikes ``(T, N, D)`` in {0, 1}."""
        return SPIKE_CODES.get(self.code)(self.counts(x), self.time_steps)

    def host_operations(self, image_size: int) -> tuple[int, int]:
        """``(adds, multiplies)`` per image of steps 1-3 on the host (fp32 arithmetic, counted once)."""
        adds, mults = ENCODINGS.get(self.name).host_operations(image_size, self.size)
        return adds + self.time_steps * self.inputs, mults + self.inputs


def spike_train(counts: torch.Tensor | np.ndarray, time_steps: int) -> torch.Tensor | np.ndarray:
    """Binary spike trains ``(T, N, D)`` from counts ``(N, D)`` (torch or numpy, same type back)."""
    is_numpy = isinstance(counts, np.ndarray)
    k = torch.from_numpy(np.asarray(counts, dtype=np.int64)) if is_numpy else counts.to(torch.int64)
    check_counts(k, time_steps)
    out = lookup(train_table(time_steps, k.device), k)
    return out.numpy() if is_numpy else out


def latency_train(counts: torch.Tensor | np.ndarray, time_steps: int) -> torch.Tensor | np.ndarray:
    """Binary spike trains ``(T, N, D)`` of the latency code (module docstring) from counts ``(N, D)``: one spike at
    step ``T - k + 1`` (1-based) for ``k > 0``, none for ``k = 0`` (torch or numpy, same type back)."""
    is_numpy = isinstance(counts, np.ndarray)
    k = torch.from_numpy(np.asarray(counts, dtype=np.int64)) if is_numpy else counts.to(torch.int64)
    check_counts(k, time_steps)
    levels = torch.arange(1, time_steps + 1, device=k.device)
    table = torch.zeros(time_steps + 1, time_steps, dtype=torch.float32, device=k.device)
    table[levels, time_steps - levels] = 1.0  # (T + 1, T): count k > 0 fires at 0-based step T - k
    out = lookup(table, k)
    return out.numpy() if is_numpy else out


def lookup(table: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``(T, N, D)`` trains from a table ``(T + 1, T)`` (row ``k``: the train of count ``k``) and counts ``(N, D)``:
    one ``index_select`` along the table's transpose (the same values as indexing ``table.t()[:, k]``, in fewer
    passes over the output)."""
    return torch.index_select(table.t().contiguous(), 1, k.reshape(-1)).view(table.shape[1], *k.shape)


def check_counts(k: torch.Tensor, time_steps: int) -> None:
    """A one-line LorspError unless every count lies in ``0..T``."""
    if k.numel() and (int(k.min()) < 0 or int(k.max()) > time_steps):
        raise LorspError(f"spike counts must lie in 0..{time_steps} (T), got {int(k.min())}..{int(k.max())}")


def train_table(time_steps: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The train of every count, ``(T + 1, T)`` float32: row ``k`` spikes at step ``t`` (1-based) iff
    ``floor(t k / T)`` increases there, the accumulator of the module docstring in closed form. A lookup in it
    is what :func:`spike_train` does per input (a few times faster than the integer arithmetic per element)."""
    k = torch.arange(time_steps + 1, dtype=torch.int64, device=device)[:, None]
    t = torch.arange(1, time_steps + 1, dtype=torch.int64, device=device)[None, :]
    return ((t * k) // time_steps - ((t - 1) * k) // time_steps).to(torch.float32)


SPIKE_CODES: Registry[Callable[..., torch.Tensor | np.ndarray]] = Registry("spike code", sort_names=False)
"""Step 3 by name: ``(counts (N, D), T) -> spikes (T, N, D)``."""
SPIKE_CODES.add("rate", spike_train)
SPIKE_CODES.add("latency", latency_train)
