"""``lorsp-hwsim MODEL.nir --backend lava``: Lava itself runs the graphs lorsp's chain path expresses.

The graph interpreter still makes the report (counts, energy, chip fit). Lava (lava-nc 0.10.0,
:mod:`hw_sim.backends.lava`) then runs the same input as the chain network
(:func:`hw_sim.graph.fixed.chain_network`) in each mode, and the report gives, per neuron node,
the agreement of Lava's spikes with the graph interpreter's (float: PyTorch float32 against Lava's
float64) and with the fast backend's bit-accurate arithmetic (fixed). A graph that is no such
chain is refused in one line before any work.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from hw_sim.backends import get_backend
from hw_sim.graph.fixed import chain_network, compare
from hw_sim.graph.runner import CompiledGraph, run_graph

AGAINST = {"float": "the graph interpreter (PyTorch float32)",
           "fixed": "the fast backend's bit-accurate Loihi arithmetic (the chain path)"}


def lava_runs(compiled: CompiledGraph, x: np.ndarray, modes: Sequence[str], timeout: float) -> dict:
    """The report's ``lava`` block: per mode, Lava's spike agreement per neuron node and its wall time."""
    network = chain_network(compiled, x)
    T, N = x.shape[:2]
    spikes_in = x.reshape(T, N, -1).astype(np.uint8)
    names = [layer.name for layer in network.layers]
    out = {}
    for mode in modes:
        lava = get_backend("lava")(network, spikes_in, mode=mode, timeout=timeout)
        if mode == "float":
            run = run_graph(compiled, x, record=names, timeout=timeout)
            reference = [run.outputs[n] for n in names]
        else:
            reference = get_backend("fast")(network, spikes_in, mode="fixed", timeout=timeout).layer_spikes
        out[mode] = {"against": AGAINST[mode], "per_node": compare(names, lava.layer_spikes, reference),
                     "seconds": lava.seconds, "samples_per_s": lava.images_per_s}
    return out
