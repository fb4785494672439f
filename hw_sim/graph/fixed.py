"""Fixed point for a NIR graph: the chain path where it can, the general graph's integer twin elsewhere.

lorsp's bit-accurate Loihi arithmetic (:mod:`deploy.fixed_point`, run by the fast backend,
spike-identical to Lava's ``fixed_pt`` models) takes a :class:`~deploy.network.SpikingNetwork`:
a chain ``Input -> (Affine | Linear | Conv2d | AvgPool2d | Flatten)* -> LIF | CubaLIF -> ...``
with zero ``v_reset`` and ``v_leak`` and binary input (:func:`deploy.nir_reader.network_from_nir`).
Where the graph is one, :func:`fixed_run` runs it in fixed point on the same input and compares
every neuron node's spikes with the float graph interpreter's, step by step. Anything else
(branches, recurrence, other node types, graded input) runs as its integer twin
(:mod:`hw_sim.graph.fixed_graph`) where that can hold it; the report names the path that ran, or
both reasons. A nested graph's own ``Input``/``Output`` nodes pass their input on and are left out
of the chain.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import nir
import numpy as np

from deploy.fixed_point import exactness, quantise
from deploy.nir_reader import network_from_nir
from hw_sim.backends import get_backend
from hw_sim.backends.base import is_binary
from hw_sim.graph.chip_fit import CHIPS, list_chips
from hw_sim.graph.fixed_fit import chain_chip_fit, fixed_chip_fit
from hw_sim.graph.fixed_graph import compile_fixed
from hw_sim.graph.runner import CompiledGraph, run_graph
from lorsp.plumbing.errors import LorspError

HOW = ("lorsp's fixed-point conversion (deploy.fixed_point: 8-bit weights, 24-bit u and v, 12-bit decays, "
       "per-layer scale) run by the fast backend's bit-accurate Loihi arithmetic (spike-identical to Lava's "
       "fixed_pt models), against the float graph interpreter on the same input")
HOW_GRAPH = ("the general graph's integer twin (hw_sim.graph.fixed_graph: the chain path's rules per compartment "
             "node, the fast backend's bit-accurate neuron step; equal to the chain path where both run, and to "
             "Lava's bit-accurate processes with --backend lava), against the float graph interpreter on the same "
             "input; read-outs (LI, I, CubaLI) compare their voltages, dequantised")


@dataclass
class FixedRun:
    """The report's ``runs.fixed`` block and the fixed run's ``Output`` values (``(T, N, *shape)`` each)."""

    block: dict
    outputs: dict[str, np.ndarray] = field(default_factory=dict)


def fixed_run(compiled: CompiledGraph, x: np.ndarray, *, timeout: float, required: bool = False) -> FixedRun:
    """Per-node agreement and the outputs, or a block ``ran: False`` with the reason.

    The chain path (Lava-verified) runs where it can; else the general graph's integer twin
    (:mod:`hw_sim.graph.fixed_graph`); where neither can, both reasons.
    """
    try:
        return chain_run(compiled, chain_network(compiled, x), x, timeout)
    except LorspError as chain_reason:
        try:
            if not is_binary(x):
                raise LorspError("the input is not binary spikes, and Loihi takes spikes only") from None
            return graph_run(compiled, compile_fixed(compiled), x, timeout)
        except LorspError as graph_reason:
            reason = f"chain path: {chain_reason}; general path: {graph_reason}"
            if required:
                raise LorspError(f"--mode fixed: {reason}") from None
            return FixedRun({"ran": False, "reason": reason})


def agreement_rows(names: list[str], fixed_spikes: list[np.ndarray], compiled: CompiledGraph, x: np.ndarray,
                   timeout: float) -> list[dict]:
    """Spike agreement of every neuron node ``names[i]`` (fixed ``fixed_spikes[i]``, ``(T, N, n)``) with float."""
    reference = run_graph(compiled, x, record=names, timeout=timeout)
    return compare(names, fixed_spikes, [reference.outputs[n] for n in names])


def compare(names: list[str], spikes: list[np.ndarray], reference: list[np.ndarray]) -> list[dict]:
    """Per node: the share of equal spikes of ``spikes[i]`` and ``reference[i]`` (``(T, N, ...)`` each), whether
    all are, and the spikes per sample of ``spikes[i]``."""
    rows = []
    for name, ours, theirs in zip(names, spikes, reference):
        T, N = ours.shape[:2]
        same = ours.reshape(T, N, -1).astype(np.uint8) == theirs.reshape(T, N, -1).astype(np.uint8)
        rows.append({"node": name, "agreement": float(same.mean()), "exact": bool(same.all()),
                     "spikes_per_sample": float(ours.sum() / N)})
    return rows


def chain_run(compiled: CompiledGraph, network, x: np.ndarray, timeout: float) -> FixedRun:
    """The chain path's fixed run (the fast backend's bit-accurate Lava arithmetic) and its agreement; and its
    chip fit on every chip (:func:`hw_sim.graph.fixed_fit.chain_chip_fit`: the layers as it quantises them)."""
    T, N = x.shape[:2]
    result = get_backend("fast")(network, x.reshape(T, N, -1).astype(np.uint8), mode="fixed", timeout=timeout)
    rows = agreement_rows([layer.name for layer in network.layers], result.layer_spikes, compiled, x, timeout)
    layers = quantise(network)
    exact = exactness(network, layers, T)
    for row, layer in zip(rows, exact["layers"]):
        row["fixed_point_exact"] = layer.get("exact")
    out = compiled.graph.output_names[0]  # a chain has one Output, fed by its last layer
    block = {"ran": True, "path": "chain", "how": HOW, "per_node": rows,
             "overall": float(np.mean([r["agreement"] for r in rows])), "fixed_point_exact": exact,
             "performance": {"seconds": result.seconds, "samples_per_s": result.images_per_s, "steps": result.steps},
             "chip_fit": {name: chain_chip_fit(compiled, network, layers, CHIPS.get(name)) for name in list_chips()}}
    return FixedRun(block, {out: result.layer_spikes[-1].reshape(T, N, *compiled[out].out_shape).astype(np.float32)})


def graph_run(compiled: CompiledGraph, fixed: CompiledGraph, x: np.ndarray, timeout: float) -> FixedRun:
    """The general path's fixed run and its agreement, per compartment node, with the scale each node took:
    spikes for spiking nodes and ``Threshold``s, the dequantised voltage for read-outs (``LI``, ``I``, ``CubaLI``);
    and its chip fit on every chip (:mod:`hw_sim.graph.fixed_fit`: what the integer twin places)."""
    names = [c.name for c in fixed.nodes if c.is_compartment]
    run = run_graph(fixed, x, record=names, timeout=timeout)
    reference = run_graph(compiled, x, record=names, timeout=timeout)
    rows = []
    for name in names:
        ours, theirs = run.outputs[name], reference.outputs[name]
        rows.append(compare_voltages(name, ours, theirs) if fixed[name].op.readout else
                    compare([name], [ours.astype(np.uint8)], [theirs])[0])
        rows[-1]["scale"] = fixed[name].op.scale
    spiking = [r["agreement"] for r in rows if not r.get("readout")]
    block = {"ran": True, "path": "general", "how": HOW_GRAPH, "per_node": rows,
             "overall": float(np.mean(spiking or [r["agreement"] for r in rows])),
             "performance": {"seconds": run.seconds, "samples_per_s": run.samples / run.seconds if run.seconds > 0
                             else None, "steps": run.steps},
             "chip_fit": {name: fixed_chip_fit(fixed, CHIPS.get(name)) for name in list_chips()}}
    return FixedRun(block, {o: run.outputs[o] for o in compiled.graph.output_names})


def compare_voltages(name: str, ours: np.ndarray, theirs: np.ndarray) -> dict:
    """A read-out's row: the share of equal voltages (fixed dequantised against float), the largest
    difference and the largest float voltage; ``overall`` leaves read-outs out where a node spikes."""
    diff = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
    return {"node": name, "readout": True, "agreement": float((diff == 0).mean()), "exact": bool((diff == 0).all()),
            "max_abs_error": float(diff.max()), "max_abs_voltage": float(np.abs(theirs).max()),
            "spikes_per_sample": None}


def chain_network(compiled: CompiledGraph, x: np.ndarray):
    """The graph as the fixed-point path's chain network; a one-line LorspError why not."""
    if compiled.cuba_input != "euler" and any(c.node.kind == "CubaLIF" for c in compiled.nodes):
        raise LorspError("the fixed-point path reads CubaLIF currents with the euler synaptic input only")
    if not is_binary(x):
        raise LorspError("the input is not binary spikes, and Loihi takes spikes only")
    graph = compiled.graph
    ends = {graph.input_name, *graph.output_names}
    inner = {c.name for c in compiled.nodes if c.node.kind in ("Input", "Output") and c.name not in ends}
    sources = {c.name: (*c.node.inputs, *c.node.recurrent) for c in compiled.nodes}

    def origins(name: str) -> list[str]:
        """``name``, or, for a nested graph's own Input/Output node (a pass-through), what feeds it."""
        return [o for a in sources[name] for o in origins(a)] if name in inner else [name]

    nodes = {c.name: c.node.node for c in compiled.nodes if c.name not in inner}
    edges = [(o, name) for name in nodes for a in sources[name] for o in origins(a)]
    source = "the fixed-point path (chains of Affine/Linear/Conv2d/AvgPool2d/Flatten and LIF/CubaLIF only)"
    return network_from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), dt=compiled.dt,
                            source=source)
