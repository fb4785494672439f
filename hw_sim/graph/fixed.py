"""Fixed point for a general graph, where lorsp's fixed-point path expresses it: spike agreement per node.

lorsp's bit-accurate Loihi arithmetic (:mod:`deploy.fixed_point`, run by the fast backend,
spike-identical to Lava's ``fixed_pt`` models) takes a :class:`~deploy.network.SpikingNetwork`:
a chain ``Input -> (Affine | Linear | Conv2d | AvgPool2d | Flatten)* -> LIF | CubaLIF -> ...``
with zero ``v_reset`` and ``v_leak`` and binary input (:func:`deploy.nir_reader.network_from_nir`).
Where the graph is one, :func:`fixed_run` runs it in fixed point on the same input and compares
every neuron node's spikes with the float graph interpreter's, step by step. Anything else
(branches, recurrence, other node types, graded input) gets the importer's reason, in one line. A
nested graph's own ``Input``/``Output`` nodes pass their input on and are left out of the chain.
"""
from __future__ import annotations

import nir
import numpy as np

from deploy.fixed_point import exactness, quantise
from deploy.nir_reader import network_from_nir
from hw_sim.backends import get_backend
from hw_sim.backends.base import is_binary
from hw_sim.graph.runner import CompiledGraph, GraphRun, run_graph
from lorsp.plumbing.errors import LorspError

HOW = ("lorsp's fixed-point conversion (deploy.fixed_point: 8-bit weights, 24-bit u and v, 12-bit decays, "
       "per-layer scale) run by the fast backend's bit-accurate Loihi arithmetic (spike-identical to Lava's "
       "fixed_pt models), against the float graph interpreter on the same input")


def fixed_run(compiled: CompiledGraph, x: np.ndarray, float_run: GraphRun, *, timeout: float,
              required: bool = False) -> dict:
    """The report's ``runs.fixed`` block: per-node agreement, or ``ran: False`` and the reason."""
    try:
        network = chain_network(compiled, x)
    except LorspError as exc:
        if required:
            raise LorspError(f"--mode fixed: {exc}") from None
        return {"ran": False, "reason": str(exc)}
    T, N = x.shape[:2]
    spikes_in = x.reshape(T, N, -1).astype(np.uint8)
    result = get_backend("fast")(network, spikes_in, mode="fixed", timeout=timeout)
    names = [layer.name for layer in network.layers]
    reference = run_graph(compiled, x, record=names, timeout=timeout)
    rows = []
    for name, fixed_spikes in zip(names, result.layer_spikes):
        ref = reference.outputs[name].reshape(T, N, -1).astype(np.uint8)
        same = fixed_spikes == ref
        rows.append({"node": name, "agreement": float(same.mean()), "exact": bool(same.all()),
                     "spikes_per_sample": float(fixed_spikes.sum() / N)})
    exact = exactness(network, quantise(network), T)
    for row, layer in zip(rows, exact["layers"]):
        row["fixed_point_exact"] = layer.get("exact")
    return {"ran": True, "how": HOW, "per_node": rows,
            "overall": float(np.mean([r["agreement"] for r in rows])), "fixed_point_exact": exact,
            "performance": {"seconds": result.seconds, "samples_per_s": result.images_per_s, "steps": result.steps}}


def chain_network(compiled: CompiledGraph, x: np.ndarray):
    """The graph as the fixed-point path's chain network; a one-line LorspError why not."""
    if compiled.cuba_input != "euler" and any(c.node.kind == "CubaLIF" for c in compiled.nodes):
        raise LorspError("the fixed-point path reads CubaLIF currents with the euler synaptic input only")
    if not is_binary(x):
        raise LorspError("the input is not binary spikes, and the fixed-point path takes spikes only")
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
