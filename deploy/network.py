r"""The one description of a feed-forward spiking network that every backend runs.

A network is an input of ``D`` binary spike channels and a chain of layers. Layer ``k``
is a dense synapse block feeding current-based LIF neurons (Loihi's compartment), in
discrete time with ``t = 1, ..., T``:

.. math::

    I_i[t] = \sum_j W_{ij}\, s^{k-1}_j[t]

    u_i[t] = \alpha_i\, u_i[t-1] + I_i[t]

    v_i[t] = \beta_i\, v_i[t-1] + u_i[t] + b_i

    s^k_i[t] = [\, v_i[t] > \theta_i \,], \qquad v_i[t] \leftarrow 0 \text{ where } s^k_i[t] = 1

with ``u[0] = v[0] = 0`` at the start of every sample. ``alpha = 0`` (NIR ``LIF``, snnTorch
``Leaky``) leaves no synaptic state: ``u[t] = I[t]`` and the layer is exactly
``Linear(W, b) -> Leaky(beta, threshold, reset_mechanism="zero", reset_delay=False)``.
``alpha > 0`` is NIR ``CubaLIF`` (snnTorch ``Synaptic``) without a bias.

Parameters are float32 numpy arrays, one value per neuron. Reading NIR into this form is
:mod:`deploy.nir_reader`; the integer form for Loihi is :mod:`deploy.fixed_point`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lorsp.plumbing.errors import LorspError


@dataclass(frozen=True)
class Layer:
    """Dense synapses ``W`` (out x in), bias ``b`` and per-neuron ``alpha, beta, theta``."""

    name: str
    weight: np.ndarray
    bias: np.ndarray
    beta: np.ndarray
    threshold: np.ndarray
    alpha: np.ndarray
    sources: tuple[str, ...] = ()
    """Names of the NIR nodes this layer was made of (for messages and reports)."""

    def __post_init__(self) -> None:
        if self.weight.ndim != 2:
            raise LorspError(f"layer {self.name}: weight must be a matrix, got shape {self.weight.shape}")
        n = self.weight.shape[0]
        for key in ("bias", "beta", "threshold", "alpha"):
            shape = getattr(self, key).shape
            if shape != (n,):
                raise LorspError(f"layer {self.name}: {key} has shape {shape}, expected ({n},) "
                                 f"(one value per neuron of a {n}-neuron layer)")
        if not np.all((self.beta >= 0) & (self.beta <= 1)):
            raise LorspError(f"layer {self.name}: every beta must lie in [0, 1]")
        if not np.all((self.alpha >= 0) & (self.alpha < 1)):
            raise LorspError(f"layer {self.name}: every alpha must lie in [0, 1)")
        if not np.all(self.threshold > 0):
            raise LorspError(f"layer {self.name}: every threshold must be positive")

    @property
    def size(self) -> int:
        return int(self.weight.shape[0])

    @property
    def fan_in(self) -> int:
        return int(self.weight.shape[1])


@dataclass(frozen=True)
class SpikingNetwork:
    """``input_size`` binary inputs, then ``layers`` in order; the last layer is the output."""

    input_size: int
    layers: tuple[Layer, ...]
    dt: float = 1e-4
    """The step NIR time constants were discretised with (snnTorch's fixed 1e-4)."""
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.layers:
            raise LorspError("the network has no spiking layer")
        width = self.input_size
        for layer in self.layers:
            if layer.fan_in != width:
                raise LorspError(f"inconsistent shapes: layer {layer.name} takes {layer.fan_in} inputs, "
                                 f"but the layer before it gives {width}")
            width = layer.size

    @property
    def sizes(self) -> list[int]:
        """Neurons per layer."""
        return [layer.size for layer in self.layers]

    def summary(self) -> list[dict]:
        """One plain dict per layer (for manifests and reports)."""
        return [{"name": l.name, "nir_nodes": list(l.sources), "inputs": l.fan_in, "neurons": l.size,
                 "synapses_nonzero": int(np.count_nonzero(l.weight)),
                 "beta": sorted({float(b) for b in l.beta}), "threshold": sorted({float(t) for t in l.threshold}),
                 "alpha": sorted({float(a) for a in l.alpha})} for l in self.layers]


def neuron_groups(*per_neuron: np.ndarray) -> list[np.ndarray]:
    """Indices of neurons that share every given per-neuron value, in order of first appearance.

    Loihi (and Lava's ``LIF``) holds one ``du``, ``dv`` and ``vth`` per neuron process, so a
    layer whose neurons differ in them runs as one process per group.
    """
    keys = np.stack([np.asarray(a, dtype=np.float64) for a in per_neuron], axis=1)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(first)
    return [np.flatnonzero(inverse == g) for g in order]
