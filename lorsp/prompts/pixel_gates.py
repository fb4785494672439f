r"""Pixel gating: one spiking gate neuron per pixel, fed by the image and by the prompt's own magnitude.

LoRSP under ``gate="pixel"`` (docs/method.md, "Pixel gating"). The low-rank prompt
``P_c = B_c diag(m_c) A`` of the shared factors is switched on and off pixel by pixel: the gate
neuron of pixel ``(i, j)`` is an snnTorch ``Leaky`` (zero reset, no reset delay) that, for ``T``
steps, integrates the current

.. math::

    I_t(i, j) = (w * s_t)(i, j) + \mathrm{drive}(i, j), \qquad
    \mathrm{drive} = b + \kappa \, \frac{M}{\overline{M}}, \quad M = \sum_c |P_c|

where ``s_t`` is the image's pool encoding at full resolution (``3 x L x L`` binary spikes,
:mod:`lorsp.encoding`), ``w`` a ``3 x 3`` convolution from the three channels to the gate map, ``b``
its bias, ``kappa`` a learned gain and ``M / mean(M)`` the prompt's magnitude map over its mean
(the mean held out of the gradient). The factors are thus fed into the spiking neurons, which
integrate and fire (the abstract's "factors fed into an SNN"); the prompt passes where the gate
fired at least once: ``P(x) = P * 1[rho(x) > 0]``, ``rho`` the gate's rate. The image part makes
each image's mask its own; the magnitude part keeps the pixels where the prompt is strong.

Every value the neurons compute with lies on :data:`lorsp.prompts.grid.GRID_STEP` (the weights,
and the drive map as a whole, straight-through), as the learned band generator does. After
training the drive is a fixed per-neuron bias map.
"""
from __future__ import annotations

import snntorch as snn
import torch
import torch.nn.functional as F
from snntorch import surrogate
from torch import nn

from lorsp.prompts.grid import on_grid, snap_to_grid

OPEN_DRIVE = 1.125
"""The start's bias, in thresholds: above ``theta / 2``, so with ``beta = 0.5`` a gate whose convolution adds
little fires, and with the start's small weights nearly every gate does (docs/method.md): the prompt starts
dense; the sparsity term then lowers it."""
START_WEIGHT_SCALE = 0.5
"""The start's convolution: PyTorch's default initialisation times this."""


def run_zero_reset(neurons: snn.Leaky, currents: torch.Tensor) -> torch.Tensor:
    """Spikes ``(T, ...)`` of ``neurons`` over input currents ``(T, ...)`` from rest: what stepping the snnTorch
    ``Leaky`` once per step gives, forward and backward, in four tensor operations per step instead of the
    module's call (tests/test_pixel_gates.py holds it to the module bit for bit; the training step it saves:
    docs/method.md, "Training cost").

    Holds for the configuration the gates build (zero reset in the step a neuron fires, ``threshold > 0``, no
    graded spikes, state quantisation or inhibition): there the module's reset of the step before is always 0
    (a neuron that fired was set to exactly 0; one that did not lies at or below the threshold), so its step
    reduces to ``U = beta U + I``, ``S = spike_grad(U - threshold)``, ``U = U - S U``.
    """
    beta, threshold = neurons.beta.clamp(0, 1), neurons.threshold
    mem = torch.zeros_like(currents[0])
    spikes = []
    for current in currents.unbind(0):
        mem = beta * mem + current
        spike = neurons.spike_grad(mem - threshold)
        mem = mem - spike * mem
        spikes.append(spike)
    return torch.stack(spikes)


class PixelGates(nn.Module):
    """The gate neurons of pixel gating (module docstring): a ``3 x 3`` convolution of the image's spikes plus
    the drive map, into one ``Leaky`` neuron per pixel."""

    def __init__(self, beta: float, threshold: float, slope: float, kernel: int = 3, reads_image: bool = True):
        """``reads_image=False``: the convolution is held at zero, so every image gets the same mask, the one the
        drive alone gives (the static-mask ablation of docs/method.md)."""
        super().__init__()
        self.conv = nn.Conv2d(3, 1, kernel, padding=kernel // 2)
        self.kappa = nn.Parameter(torch.tensor(1.0))
        self.neurons = snn.Leaky(beta=torch.tensor(float(beta)), threshold=torch.tensor(float(threshold)),
                                 reset_mechanism="zero", reset_delay=False, init_hidden=True,
                                 spike_grad=surrogate.fast_sigmoid(slope=slope))
        with torch.no_grad():
            self.conv.weight.mul_(START_WEIGHT_SCALE if reads_image else 0.0)
            self.conv.bias.fill_(OPEN_DRIVE * threshold)
            for p in self.parameters():
                p.copy_(snap_to_grid(p))
        self.conv.weight.requires_grad_(reads_image)

    def drive(self, magnitude: torch.Tensor, grid: bool) -> torch.Tensor:
        """The constant part of each gate's current, ``(1, 1, L, L)``: ``b + kappa M / mean(M)`` for the prompt's
        magnitude map ``M`` ``(L, L)`` (zero while the prompt is zero); on the grid as a whole when ``grid``."""
        scale = magnitude.mean().detach()
        relative = magnitude / scale if float(scale) > 0 else torch.zeros_like(magnitude)
        drive = self.conv.bias + self.kappa * relative
        return (on_grid(drive) if grid else drive)[None, None]

    def weight(self, grid: bool) -> torch.Tensor:
        """The convolution's weights ``(1, 3, k, k)`` the neurons compute with (on the grid when ``grid``)."""
        return on_grid(self.conv.weight) if grid else self.conv.weight

    def forward(self, spikes_in: torch.Tensor, magnitude: torch.Tensor, grid: bool = False) -> torch.Tensor:
        """Gate spikes ``(T, N, L * L)`` for input spikes ``(T, N, 3 L L)`` and the magnitude map ``(L, L)``."""
        steps, n = spikes_in.shape[:2]
        side = magnitude.shape[-1]
        weight = self.weight(grid)
        drive = self.drive(magnitude, grid)
        # one convolution over all T steps (the input does not depend on the gates); the neurons then step in time
        images = spikes_in.reshape(steps * n, 3, side, side).contiguous(memory_format=torch.channels_last)
        currents = F.conv2d(images, weight, padding=self.conv.padding)  # channels-last: 4x faster on CPU here
        currents = currents.view(steps, n, side * side) + drive.view(1, 1, side * side)
        return run_zero_reset(self.neurons, currents)

    def synops_per_sample(self, spikes_in: torch.Tensor) -> torch.Tensor:
        """Synaptic operations per sample ``(N,)`` (the rule of :mod:`lorsp.snn_stats`): each input spike times the
        number of gate neurons its nonzero weights reach (fewer at the image's border)."""
        steps, n = spikes_in.shape[:2]
        side = int(round((spikes_in.shape[-1] // 3) ** 0.5))
        nonzero = (self.conv.weight != 0).to(torch.float64)
        fan_out = F.conv_transpose2d(torch.ones(1, 1, side, side, dtype=torch.float64), nonzero,
                                     padding=self.conv.padding)  # (1, 3, L, L)
        return ((spikes_in != 0).to(torch.float64).view(steps, n, 3, side, side) * fan_out).sum(dim=(0, 2, 3, 4))
