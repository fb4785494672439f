"""The parameters of the Lava processes that run a network, per layer and mode.

Defined once for every backend that runs Lava's neuron and synapse models: the Lava
backend builds its processes from them, the fast backend steps the same equations on the
same numbers. The table of values is in :mod:`hw_sim.backends.lava`; the integers of
``fixed`` mode come from :mod:`deploy.fixed_point`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw_sim.backends.base import check_mode
from deploy.fixed_point import BIAS_EXP, quantise
from deploy.network import SpikingNetwork, neuron_groups


@dataclass(frozen=True)
class NeuronGroup:
    """Neurons of one layer that one Lava ``LIFReset`` process holds."""

    index: np.ndarray
    du: float | int
    dv: float | int
    vth: float | int


@dataclass(frozen=True)
class LavaLayer:
    """One layer's Lava parameters in one mode."""

    weight: np.ndarray
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    groups: tuple[NeuronGroup, ...]


def lava_layers(network: SpikingNetwork, mode: str) -> list[LavaLayer]:
    """The parameters every Lava process gets, per layer (the table of :mod:`hw_sim.backends.lava`)."""
    out = []
    if check_mode(mode) == "float":
        for layer in network.layers:
            du = 1.0 - layer.alpha.astype(np.float64)
            dv = 1.0 - layer.beta.astype(np.float64)
            vth = layer.threshold.astype(np.float64)
            groups = tuple(NeuronGroup(i, float(du[i[0]]), float(dv[i[0]]), float(vth[i[0]]))
                           for i in neuron_groups(du, dv, vth))
            out.append(LavaLayer(layer.weight.astype(np.float64), layer.bias.astype(np.float64),
                                 np.zeros(layer.size), groups))
        return out
    for fx in quantise(network):  # every fixed-point parameter a Python int: a float vth under fixed_pt hangs
        groups = tuple(NeuronGroup(i, int(fx.du[i[0]]), int(fx.dv[i[0]]), int(fx.vth[i[0]]))
                       for i in neuron_groups(fx.du, fx.dv, fx.vth))
        out.append(LavaLayer(fx.weight, fx.bias_mant, np.full(fx.weight.shape[0], BIAS_EXP, dtype=np.int32), groups))
    return out
