r"""Lava's ``LIFReset`` in both modes as a neuron node of the graph runner (:mod:`hw_sim.graph.runner`).

One node of a bundle's chain (:mod:`hw_sim.backends.fast`) is a layer's neurons, every group of them
(one Lava process each) with its own ``du, dv, vth``, stepped on the synaptic input ``a`` of its
:mod:`~hw_sim.backends.lava_dense` node as lava-nc 0.10.0 steps it (``docs/fastsim.md``):

* ``float`` (``PyLifResetModelFloat``, float64, in Lava's order): :class:`FloatLif`

  .. math::

      u = u\,(1 - d_u) + a, \qquad v = v\,(1 - d_v) + u + b, \qquad
      s = [\, v > v_{th} \,], \qquad v \leftarrow 0 \text{ where } s

* ``fixed`` (``PyLifResetModelBitAcc``): :class:`hw_sim.graph.fixed_neurons.FixedNeuron`, the
  general fixed-point path's compartment, with ``u_factor = 4096 - d_u - 1``, ``v_factor = 4096 - d_v``,
  the bias ``b_m 2^{b_e}`` and ``vth 2^6``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from deploy.fixed_point import DECAY_UNITY, STATE_SHIFT
from hw_sim.backends.processes import LavaLayer
from hw_sim.graph.fixed_neurons import CURRENT_OFFSET, FixedNeuron, scaled_bias
from hw_sim.graph.neurons import Neuron

KIND = "CubaLIF"
"""The NIR node a Lava LIF is (a current ``u`` and a voltage ``v``; reset to 0)."""


@dataclass
class FloatLif(Neuron):
    """``PyLifResetModelFloat`` per neuron, float64 in numpy (its state ``u, v`` numpy arrays, as Lava's; numpy's
    small-array operations cost a fraction of PyTorch's, which matters for small batches): ``keep_u = 1 - du``,
    ``keep_v = 1 - dv``, ``bias = bias_mant`` (float mode ignores ``bias_exp``), ``vth``."""

    keep_u: np.ndarray | None = None
    keep_v: np.ndarray | None = None
    bias: np.ndarray | None = None
    vth: np.ndarray | None = None

    def initial_state(self, n: int) -> dict[str, np.ndarray]:
        """``u = v = 0`` (Lava's pipelined reset at the first step of every sample)."""
        return {"u": np.zeros((n, self.vth.size)), "v": np.zeros((n, self.vth.size))}

    def step(self, inputs: Sequence[torch.Tensor], state: dict[str, np.ndarray]) -> torch.Tensor:
        """One step in place on ``state``, Lava's operations in Lava's order; the spikes (bool)."""
        a = inputs[0].numpy()
        for more in inputs[1:]:
            a = a + more.numpy()
        spikes = np.empty(a.shape, dtype=bool)
        self._step(a, state["u"], state["v"], spikes)
        return torch.from_numpy(spikes)

    def steps(self, x: torch.Tensor, state: dict) -> torch.Tensor:
        """:meth:`step` on each step of ``x`` ``(T, n, size)``, in numpy throughout; the spikes ``(T, n, size)``."""
        a = x.numpy()
        spikes = np.empty(a.shape, dtype=bool)
        for t in range(a.shape[0]):
            self._step(a[t], state["u"], state["v"], spikes[t])
        return torch.from_numpy(spikes)

    def _step(self, a: np.ndarray, u: np.ndarray, v: np.ndarray, spikes: np.ndarray) -> None:
        u *= self.keep_u        # u = u (1 - du) + a_in
        u += a
        v *= self.keep_v        # v = v (1 - dv) + u + bias_mant, in this order
        v += u
        v += self.bias
        np.greater(v, self.vth, out=spikes)
        np.putmask(v, spikes, 0.0)


def per_neuron(layer: LavaLayer, name: str) -> np.ndarray:
    """A per-process scalar (``du``, ``dv``, ``vth``) spread over the neurons of the layer."""
    values = np.empty(layer.weight.shape[0], dtype=np.asarray([getattr(g, name) for g in layer.groups]).dtype)
    for g in layer.groups:
        values[g.index] = getattr(g, name)
    return values


def lava_lif(layer: LavaLayer, mode: str) -> Neuron:
    """The neuron node of ``layer`` in ``mode`` (module docstring)."""
    shape = (int(layer.weight.shape[0]),)
    if mode == "float":
        return FloatLif(KIND, shape, keep_u=1 - per_neuron(layer, "du"), keep_v=1 - per_neuron(layer, "dv"),
                        bias=np.asarray(layer.bias_mant, dtype=np.float64), vth=per_neuron(layer, "vth"))
    return FixedNeuron.build(KIND, shape, scale=1.0,
                             u_factor=DECAY_UNITY - (per_neuron(layer, "du").astype(np.int64) + CURRENT_OFFSET),
                             v_factor=DECAY_UNITY - per_neuron(layer, "dv").astype(np.int64),
                             bias=scaled_bias(layer.bias_mant, layer.bias_exp),
                             vth=np.left_shift(per_neuron(layer, "vth").astype(np.int64), STATE_SHIFT))
