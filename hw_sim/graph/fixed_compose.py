"""Dense weighted nodes in a row, no neuron between them, as the one synapse block a chip holds.

A chip has no place for the value between two weighted nodes: only compartments sum and
send. Where ``Affine``/``Linear``/``Scale`` nodes on vectors follow one another (each feeding only
the next), :func:`compose_dense` multiplies them out, ``W = W_2 W_1`` and ``b = W_2 b_1 + b_2``
in float64, into one ``Affine`` (or ``Linear``) node under the second node's name; the fixed-point
path then quantises that block to 8 bits once, as the chain path and chip fit do for
``AvgPool2d -> Flatten -> Affine``. The float run keeps computing ``W_2 (W_1 x + b_1) + b_2``,
equal in exact arithmetic. Other weighted pairs (a convolution, several inputs, a branch) are
left alone, and :mod:`hw_sim.graph.fixed_graph` refuses them in one line.
"""
from __future__ import annotations

import dataclasses

import nir
import numpy as np

from hw_sim.graph.runner import CompiledGraph, CompiledNode
from hw_sim.graph.synapses import build_synapse

DENSE = ("Affine", "Linear", "Scale")


def compose_dense(compiled: CompiledGraph) -> CompiledGraph:
    """``compiled`` with every run of dense weighted nodes on vectors composed into one node (module docstring)."""
    nodes = list(compiled.nodes)
    while True:
        pair = _next_pair(nodes)
        if pair is None:
            return dataclasses.replace(compiled, nodes=nodes)
        first, second = pair
        nodes[nodes.index(second)] = _composed(first, second, compiled.dt)
        nodes.remove(first)


def _next_pair(nodes: list[CompiledNode]) -> tuple[CompiledNode, CompiledNode] | None:
    """A dense node and the dense node that is its only consumer and takes only it, or None."""
    by_name = {c.name: c for c in nodes}
    consumers: dict[str, list[str]] = {c.name: [] for c in nodes}
    for c in nodes:
        for a in (*c.node.inputs, *c.node.recurrent):
            consumers[a].append(c.name)
    for c in nodes:
        if c.node.kind not in DENSE or c.node.recurrent or len(c.node.inputs) != 1:
            continue
        first = by_name[c.node.inputs[0]]
        if first.node.kind in DENSE and consumers[first.name] == [c.name] and _vectors(first) and _vectors(c):
            return first, c
    return None


def _vectors(c: CompiledNode) -> bool:
    return len(c.in_shape) == 1 and len(c.out_shape) == 1


def _matrix(c: CompiledNode) -> tuple[np.ndarray, np.ndarray]:
    """Weight matrix and bias of a dense node, float64 (a ``Scale`` as its diagonal)."""
    node = c.node.node
    if c.node.kind == "Scale":
        scale = np.broadcast_to(np.asarray(node.scale, dtype=np.float64), c.in_shape)
        return np.diag(scale), np.zeros(c.out_shape[0])
    bias = np.asarray(node.bias, dtype=np.float64) if c.node.kind == "Affine" else np.zeros(c.out_shape[0])
    return np.asarray(node.weight, dtype=np.float64), np.broadcast_to(bias, c.out_shape).astype(np.float64)


def _composed(first: CompiledNode, second: CompiledNode, dt: float) -> CompiledNode:
    """``second`` taking ``first``'s inputs, its weights and bias multiplied out."""
    w1, b1 = _matrix(first)
    w2, b2 = _matrix(second)
    weight, bias = (w2 @ w1).astype(np.float32), (w2 @ b1 + b2).astype(np.float32)
    kind, node = ("Affine", nir.Affine(weight=weight, bias=bias)) if np.any(bias) else \
        ("Linear", nir.Linear(weight=weight))
    graph_node = dataclasses.replace(second.node, kind=kind, node=node, inputs=first.node.inputs,
                                     recurrent=first.node.recurrent)
    return CompiledNode(graph_node, build_synapse(second.name, node, dt), first.in_shape, second.out_shape,
                        spike_input=first.spike_input)
