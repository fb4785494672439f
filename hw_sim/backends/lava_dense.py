r"""Lava's ``Dense`` in both modes as a synapse node of the graph runner (:mod:`hw_sim.graph.runner`).

One node of a bundle's chain (:mod:`hw_sim.backends.fast`) is the layer's synaptic input ``a``, each step,
from the spikes of the layer before, as lava-nc 0.10.0 computes it (``docs/fastsim.md``):

* ``float`` (``PyDenseModelFloat``, float64): :math:`a_i = \sum_{j:\,s_j = 1} W_{ij}`. Lava sums the
  weights of the spiking inputs with numpy's (pairwise) ``sum``. Where every partial sum of a row of
  ``W`` is exact in float64 (:func:`exact_sum_rows`, checked once per layer; true for float32 weights of
  ordinary range), every order gives Lava's number and one matrix product is exact. The neuron groups
  with other rows are summed per sample in Lava's own order, ``Dense`` by ``Dense``;
* ``fixed`` (``PyDenseModelBitAcc``): the integer weights of Lava's weight rule per ``Dense`` block
  (:func:`dense_weights`), summed exactly in float64 (below ``2^53``) and sent through Lava's int32
  channel: wrapped modulo ``2^32`` where a row's ``sum |w|`` can leave int32.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from hw_sim.backends.processes import LavaLayer
from hw_sim.graph.fixed_neurons import INT32, wrap_int32
from hw_sim.graph.synapses import Synapse

WEIGHT_BITS = 8                  # lava Dense: clip_weights(num_bits=8), num_weight_bits 8, weight_exp 0


def dense_weights(block: np.ndarray) -> np.ndarray:
    """The weights one bit-accurate Lava ``Dense`` uses for ``block`` (int64).

    ``PyDenseModelBitAcc.run_spk`` applies ``clip_weights(num_bits=8)`` and
    ``truncate_weights(num_weight_bits=8)`` (``lava/utils/weightutils.py``) with the sign mode
    of its own block (``determine_sign_mode``: all ``>= 0`` excitatory, all ``<= 0``
    inhibitory, else mixed):

    * excitatory: ``clip(w, 0, 255)``; inhibitory: ``clip(w, -255, 0)``;
    * mixed: ``clip(w, -256, 255)`` with the lowest bit dropped, ``(w >> 1) << 1`` (rounds
      towards minus infinity: 255 -> 254, -255 -> -256).

    ``weight_exp`` is 0 (no process sets it), so the accumulated sum is shifted by nothing.
    """
    w = np.asarray(block).astype(np.int64)
    top = 2 ** WEIGHT_BITS
    if w.size == 0 or w.min() >= 0:
        return np.clip(w, 0, top - 1)
    if w.max() <= 0:
        return np.clip(w, -(top - 1), 0)
    return (np.clip(w, -top, top - 1) >> 1) << 1


def effective_weights(layer: LavaLayer, sources: Sequence[np.ndarray]) -> np.ndarray:
    """:func:`dense_weights` of every (target group, source group) block: one Lava ``Dense`` each."""
    w = np.zeros(layer.weight.shape, np.int64)
    for group in layer.groups:
        for src in sources:
            w[np.ix_(group.index, src)] = dense_weights(layer.weight[np.ix_(group.index, src)])
    return w


def exact_sum_rows(weight: np.ndarray) -> np.ndarray:
    r"""Rows of ``weight`` whose every partial sum is a float64 exactly (so any order gives one result).

    A row's values are integer multiples of ``2^q`` (``q``: the lowest set bit among them), and
    so is every partial sum, whose magnitude is at most ``sum |w|``. Every multiple of ``2^q``
    below ``2^{q+53}`` is a float64; ``2^{q+52}`` against the rounded ``sum |w|`` keeps a margin.
    """
    w = np.asarray(weight, dtype=np.float64)
    mantissa, exponent = np.frexp(w)
    digits = np.abs(np.ldexp(mantissa, 53)).astype(np.int64)  # w = +-digits 2^(exponent - 53), exactly
    lowest_bit = np.log2(np.where(digits != 0, digits & -digits, 1)).astype(np.int64)
    lowest = np.where(digits != 0, exponent - 53 + lowest_bit, 2 ** 20)
    q = lowest.min(axis=1, initial=2 ** 20)
    return np.abs(w).sum(axis=1) < np.ldexp(1.0, np.clip(q + 52, -1074, 1023))


Blocks = tuple[tuple[np.ndarray, tuple[tuple[np.ndarray, np.ndarray], ...]], ...]
"""Target groups summed in Lava's order: (target index, ((source index, block of weights), ...))."""


@dataclass
class DenseSynapse(Synapse):
    """A layer's Lava ``Dense`` blocks as one synapse node; ``lava_order``: its groups summed in Lava's order."""

    lava_order: Blocks = ()


def float_dense(layer: LavaLayer, sources: Sequence[np.ndarray]) -> DenseSynapse:
    """``PyDenseModelFloat`` of every block of ``layer`` (float64; module docstring)."""
    weight = np.ascontiguousarray(layer.weight, dtype=np.float64)
    exact = exact_sum_rows(weight)
    blocks: Blocks = tuple((g.index, tuple((src, np.ascontiguousarray(weight[np.ix_(g.index, src)]))
                                           for src in sources))
                           for g in layer.groups if not exact[g.index].all())
    w = torch.from_numpy(weight)

    def apply(x: torch.Tensor) -> torch.Tensor:
        a = F.linear(x.to(torch.float64), w)
        if blocks:
            spikes, out = x.numpy() != 0, a.numpy()
            for index, per_source in blocks:  # weights[:, s_in].sum(axis=1), Dense by Dense
                for i in range(spikes.shape[0]):
                    acc = np.zeros(len(index))  # PyInPortVectorDense.recv: zeros + each connected Dense
                    for src, block in per_source:
                        acc = acc + block[:, spikes[i, src]].sum(axis=1)
                    out[i, index] = acc
        return a

    return DenseSynapse("Dense", apply, lava_order=blocks)


def fixed_dense(weight: np.ndarray) -> DenseSynapse:
    """``PyDenseModelBitAcc`` with the integer ``weight`` it uses (:func:`effective_weights`), through the
    int32 channel (module docstring)."""
    w = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float64))
    wraps = bool(np.abs(w.numpy()).sum(axis=1, initial=0.0).max(initial=0.0) >= INT32)

    def apply(x: torch.Tensor) -> torch.Tensor:
        a = F.linear(x.to(torch.float64), w)
        return wrap_int32(a) if wraps else a

    return DenseSynapse("Dense", apply)


def lava_dense(layer: LavaLayer, sources: Sequence[np.ndarray], mode: str) -> DenseSynapse:
    """The synapse node of ``layer`` in ``mode``; its ``Dense`` blocks follow the neuron groups ``sources`` of
    the layer before."""
    return float_dense(layer, sources) if mode == "float" else fixed_dense(effective_weights(layer, sources))
