"""The chip part of a pixel bundle on the NIR graph path: the gates' graph run in float or in Loihi's integers.

:func:`run_pixel_gates` runs a pixel bundle's gates (:class:`deploy.pixel_bundle.PixelGateNetwork`) on
input spikes ``(T, N, 3 L^2)`` with the graph interpreter of ``lorsp-hwsim MODEL.nir``
(:mod:`hw_sim.graph.runner`): ``float`` the graph as read, ``fixed`` its integer twin
(:func:`hw_sim.graph.fixed_graph.compile_fixed`), after checking that the twin's integers are the
bundle's netx file's (:func:`hw_sim.pixel_twin.twin_integers` against the bundle's
:func:`deploy.pixel_fixed.pixel_gate_integers`). It returns the gate spikes ``(T, N, L^2)`` and the
chip's operations per image as :class:`hw_sim.energy.OperationCounts` (one layer, ``gates``), which the
energy tables price as they price a chain's: synaptic operations and active updates as the graph runner
counts them (a gate's update is active at a step where an input spike reaches it or its bias, the drive, is
nonzero, in float and in fixed point alike: the rule of :func:`hw_sim.energy.count_operations`). The dense
alternative multiplies every synapse the graph holds (pairs with a
nonzero weight inside the image, as ``lorsp-hwsim MODEL.nir`` counts them) once per step.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from deploy.nir_graph import flat_graph
from deploy.pixel_bundle import PixelGateNetwork
from hw_sim.backends import MODES
from hw_sim.energy import OperationCounts
from hw_sim.graph.counts import connections
from hw_sim.graph.fixed_graph import compile_fixed
from hw_sim.graph.runner import CompiledGraph, compile_graph, run_graph
from hw_sim.pixel_twin import twin_integers
from lorsp.plumbing.errors import LorspError


@dataclass(frozen=True)
class PixelRun:
    """The gates' spikes ``(T, N, L^2)`` uint8 in one mode, the operations per image, the wall time."""

    mode: str
    gate_spikes: np.ndarray
    counts: OperationCounts
    seconds: float


def compiled_gates(network: PixelGateNetwork, mode: str) -> CompiledGraph:
    """The graph the runner steps in ``mode``: the float graph, or its integer twin with the bundle's integers."""
    if mode not in MODES:
        raise LorspError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
    compiled = compile_graph(flat_graph(network.graph), network.dt, "the bundle's NIR graph")
    if mode == "float":
        return compiled
    fixed = compile_fixed(compiled)
    twin, ours = twin_integers(network.params, fixed), network.integers
    for name in ("weight", "bias_mant", "vth", "du", "dv", "scale"):
        if not np.array_equal(np.asarray(getattr(twin, name)), np.asarray(getattr(ours, name))):
            raise LorspError(f"the bundle's netx {name} differs from the fixed-point path's integers of its NIR graph")
    return fixed


def run_pixel_gates(network: PixelGateNetwork, spikes_in: np.ndarray, *, mode: str, timeout: float = 600.0,
                    progress: Callable[[int], None] | None = None,
                    compiled: CompiledGraph | None = None) -> PixelRun:
    """The gates of ``network`` on ``spikes_in`` ``(T, N, 3 L^2)`` in ``mode`` (module docstring)."""
    steps, n = spikes_in.shape[:2]
    x = graph_input(network, spikes_in)
    compiled = compiled_gates(network, mode) if compiled is None else compiled
    start = time.perf_counter()
    run = run_graph(compiled, x, timeout=timeout, progress=progress)
    seconds = time.perf_counter() - start
    gates = run.outputs["output"].reshape(steps, n, network.gates)
    counts = OperationCounts(
        input_spikes=float(np.count_nonzero(x)) / n, synops=[float(run.stats["conv"].pairs.mean())],
        spikes=[float(gates.sum()) / n], neuron_updates=[float(steps * network.gates)],
        active_neuron_updates=[float(run.stats["gates"].active_updates.mean())],
        dense_macs=[float(steps * connections(compiled)["conv"])])
    return PixelRun(mode, gates.astype(np.uint8), counts, seconds)


def graph_input(network: PixelGateNetwork, spikes_in: np.ndarray) -> np.ndarray:
    """``spikes_in`` ``(T, N, 3 L^2)`` in the graph's input shape ``(T, N, 3, L, L)``, float32."""
    steps, n = spikes_in.shape[:2]
    return np.asarray(spikes_in, dtype=np.float32).reshape(steps, n, *network.input_shape)
