r"""Loihi's integers for a general graph: every spiking node a bit-accurate Lava LIF, every synapse 8 bits.

For graphs the chain path (:mod:`hw_sim.graph.fixed`) cannot take (branches, merges, recurrence,
convolutions too large for a dense matrix), :func:`compile_fixed` turns the float graph into its
fixed-point twin, which :func:`hw_sim.graph.runner.run_graph` runs like any other:

* every compartment (``LIF``, ``CubaLIF``, ``IF``; ``v_reset = v_leak = 0``) gets its own scale
  ``s`` (:func:`deploy.fixed_point.scale_limit` and :func:`~deploy.fixed_point.scale_between`,
  the chain path's rules, from the largest weight, the largest row sum of ``|w|``, the most
  inputs of one neuron, the largest bias and threshold of all the blocks that feed it), and
  steps as ``FixedCompartments.step`` of the fast backend (Lava's ``PyLifResetModelBitAcc``:
  ``du = 4095 - round(4096 alpha)``, ``dv = round(4096 (1 - beta))``, ``vth = round(s theta)``,
  bias mantissa ``round(s b)`` with exponent 6, 24-bit ``u`` and ``v``);
* every weighted node (``Affine``, ``Linear``, ``Conv1d``, ``Conv2d``, ``Scale``) feeds exactly
  one compartment (through ``Flatten``s) and holds ``integer_weights(g W / k^2, s)``: the
  compartment's input gain ``g`` (one value per node) and the ``1/k^2`` of any ``AvgPool2d`` in
  front of it folded in; its bias, times ``g``, becomes the compartment's bias;
* pools in front of a weighted node (stride = kernel, no padding: no window overlaps) run as
  ``SumPool2d``: integer counts of spikes, so ``W / k^2`` on them is the chip's multiplied-out
  block exactly.

Float32 computes every integer sum exactly: ``s`` keeps every neuron's ``sum |w|`` within the
16-bit dendrite. Anything else (``Delay``, ``Threshold``, read-outs ``LI``/``I``/``CubaLI``, a
bias before a ``CubaLIF``, a neuron fed without a weighted node, a gain that differs between the
neurons of a node, overlapping pools, graded input) is refused in one line, and the report says
why. The chain path is Lava-verified; this one equals it wherever both run
(``tests/test_hwsim_nir_fixed.py``) and is not run against Lava itself.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import nir
import numpy as np
import torch

from deploy.fixed_point import BIAS_EXP, DECAY_UNITY, STATE_SHIFT, decays, integer_bias, integer_weights, \
    scale_between, scale_limit
from hw_sim.backends.fast import CURRENT_OFFSET, FixedCompartments, scaled_bias
from hw_sim.graph.neurons import Neuron
from hw_sim.graph.runner import CompiledGraph, CompiledNode
from hw_sim.graph.synapses import Synapse, build_synapse, ints
from lorsp.plumbing.errors import LorspError

PASS = ("Flatten", "Input", "Output")
WEIGHTED = ("Affine", "Linear", "Conv1d", "Conv2d", "Scale")
POOLS = ("SumPool2d", "AvgPool2d")
SPIKING = ("LIF", "CubaLIF", "IF")
GAIN_RTOL = 1e-6


@dataclasses.dataclass
class FixedNeuron(Neuron):
    """A compartment node in Loihi's integers: the fast backend's bit-accurate step on flattened neurons."""

    compartments: FixedCompartments | None = None
    scale: float = 1.0

    def initial_state(self, n: int) -> dict:
        """``u = v = 0`` as int32, ``(n, neurons)``."""
        size = self.compartments.size
        return {"u": np.zeros((n, size), np.int32), "v": np.zeros((n, size), np.int32)}

    def step(self, inputs: Sequence[torch.Tensor], state: dict) -> torch.Tensor:
        """One bit-accurate step on the summed integer input; the spikes (0/1 float32)."""
        total = inputs[0]
        for x in inputs[1:]:
            total = total + x
        n = total.shape[0]
        a = total.reshape(n, -1).numpy().astype(np.int64).astype(np.int32)
        spikes = self.compartments.step(state["u"], state["v"], a)
        return torch.from_numpy(spikes.reshape(n, *self.shape).astype(np.float32))


def compile_fixed(compiled: CompiledGraph) -> CompiledGraph:
    """The fixed-point twin of ``compiled`` (module docstring); a one-line LorspError for what it cannot hold."""
    nodes = {c.name: c for c in compiled.nodes}
    succ: dict[str, list[str]] = {name: [] for name in nodes}
    for c in compiled.nodes:
        for a in (*c.node.inputs, *c.node.recurrent):
            succ[a].append(c.name)
    for c in compiled.nodes:
        _check_supported(c)
    factors = _pool_factors(compiled)
    owner = {c.name: _owner(c.name, nodes, succ) for c in compiled.nodes if c.node.kind in WEIGHTED}
    ops: dict[str, Synapse | Neuron] = {}
    for c in compiled.nodes:
        if c.node.kind in POOLS:
            ops[c.name] = build_synapse(c.name, _sum_pool(c), compiled.dt)
        elif c.node.kind in SPIKING:
            blocks = [nodes[w] for w, target in owner.items() if target == c.name]
            _check_fed(c, nodes, {b.name for b in blocks})
            neuron, weights = _quantise(c, blocks, factors)
            ops[c.name] = neuron
            for name, node in weights.items():
                ops[name] = build_synapse(name, node, compiled.dt)
    fixed = [dataclasses.replace(c, op=ops.get(c.name, c.op)) for c in compiled.nodes]
    return CompiledGraph(compiled.graph, fixed, compiled.dt, compiled.cuba_input)


def _check_supported(c: CompiledNode) -> None:
    """A one-line LorspError unless node ``c`` is of a kind and form this path holds."""
    kind = c.node.kind
    if kind not in (*PASS, *WEIGHTED, *POOLS, *SPIKING):
        raise LorspError(f"node {c.name!r} is a {kind}, which the fixed-point path does not hold yet")
    if kind in SPIKING:
        for key in ("v_reset", "v_leak"):
            value = getattr(c.node.node, key, None)
            if value is not None and np.any(np.asarray(value) != 0):
                raise LorspError(f"{kind} node {c.name!r} has a nonzero {key}; Loihi's LIF resets to 0 and "
                                 f"leaks towards 0")
    if kind in POOLS:
        k, s, p = (ints(getattr(c.node.node, f), 2) for f in ("kernel_size", "stride", "padding"))
        if k != s or any(p):
            raise LorspError(f"{kind} node {c.name!r}: its windows overlap or are padded; the fixed-point path "
                             f"folds only pools with stride = kernel and no padding")


def _pool_factors(compiled: CompiledGraph) -> dict[str, tuple[float, int]]:
    """For every node: the product of ``1/k^2`` of the ``AvgPool2d`` nodes in front of it, and how many
    source values each of its input values sums (the product of every pool's ``k^2``); 1 at every compartment."""
    factors: dict[str, tuple[float, int]] = {}
    for c in compiled.nodes:
        if c.name == compiled.graph.input_name or c.node.kind in SPIKING:
            factors[c.name] = (1.0, 1)
            continue
        found = {factors.get(a, (1.0, 1)) for a in (*c.node.inputs, *c.node.recurrent)}
        if len(found) > 1:
            raise LorspError(f"node {c.name!r} sums inputs pooled differently; the fixed-point path cannot "
                             f"hold them in one block")
        factor, window = found.pop() if found else (1.0, 1)
        if c.node.kind in POOLS:
            k = math.prod(ints(c.node.node.kernel_size, 2))
            factor, window = (factor / k if c.node.kind == "AvgPool2d" else factor), window * k
        factors[c.name] = (factor, window)
    return factors


def _owner(name: str, nodes: dict[str, CompiledNode], succ: dict[str, list[str]]) -> str:
    """The one compartment a weighted node feeds (through ``Flatten``s)."""
    found, todo = set(), list(succ[name])
    while todo:
        n = todo.pop()
        kind = nodes[n].node.kind
        if kind in SPIKING:
            found.add(n)
        elif kind in ("Flatten", "Input") or (kind == "Output" and succ[n]):
            todo += succ[n]
        else:
            raise LorspError(f"{nodes[name].node.kind} node {name!r} feeds {kind} node {n!r} without a neuron "
                             f"between them; the fixed-point path holds one weighted node per block")
    if len(found) != 1:
        raise LorspError(f"{nodes[name].node.kind} node {name!r} feeds {len(found)} neuron nodes; the fixed-point "
                         f"path holds one neuron node per weighted node")
    return found.pop()


def _check_fed(c: CompiledNode, nodes: dict[str, CompiledNode], blocks: set[str]) -> None:
    """Every input of compartment ``c`` comes from one of its weighted nodes (through ``Flatten``s)."""
    todo = [*c.node.inputs, *c.node.recurrent]
    while todo:
        n = todo.pop()
        if n in blocks:
            continue
        if nodes[n].node.kind in ("Flatten", "Input", "Output") and (nodes[n].node.inputs or nodes[n].node.recurrent):
            todo += [*nodes[n].node.inputs, *nodes[n].node.recurrent]
            continue
        raise LorspError(f"{c.node.kind} node {c.name!r} takes input from {n!r} without a weighted node "
                         f"between them; the chip needs a synapse block there")


def _uniform(value: torch.Tensor | None, what: str, name: str) -> float:
    if value is None:
        return 1.0
    v = value.double().reshape(-1)
    if not torch.allclose(v, v[0].expand_as(v), rtol=GAIN_RTOL, atol=0.0):
        raise LorspError(f"node {name!r}: its {what} differs between neurons; the fixed-point path folds one "
                         f"value per node into the weights")
    return float(v[0])


def _quantise(c: CompiledNode, blocks: list[CompiledNode],
              factors: dict[str, tuple[float, int]]) -> tuple[FixedNeuron, dict[str, object]]:
    """Compartment ``c``'s integer neuron and the integer NIR nodes of its weighted blocks."""
    op: Neuron = c.op
    gain = _uniform(op.gain, "input gain", c.name) * _uniform(op.syn_gain, "synaptic input gain", c.name)
    shape, n = c.out_shape, math.prod(c.out_shape)
    bias = np.zeros(n)
    weights, rows, fans = [], np.zeros(n), np.zeros(n)
    for b in blocks:
        factor, window = factors[b.name]
        w = np.asarray(_weight_of(b), dtype=np.float64) * gain * factor
        weights.append(w)
        with torch.no_grad():
            own = b.op.apply(torch.zeros((1, *b.in_shape), dtype=torch.float32))
        bias += own.double().reshape(-1).numpy() * gain
        reached, links = _reach(b, np.abs(w), window)
        rows += reached
        fans += links
    if op.kind == "CubaLIF" and np.any(bias != 0):
        raise LorspError(f"CubaLIF node {c.name!r} follows a bias; snnTorch adds it to the current, Loihi to "
                         f"the voltage, so it cannot be held exactly")
    theta = op.threshold.double().reshape(-1).numpy()
    flat = np.concatenate([w.reshape(-1) for w in weights]) if weights else np.zeros(1)
    mixed = bool(flat.min() < 0 < flat.max())
    largest = scale_limit(c.name, float(np.abs(flat).max()), float(rows.max()), int(fans.max()),
                          float(np.abs(bias).max()), float(theta.max()), mixed)
    scale = scale_between(largest, weights, bias, theta, mixed)
    alpha = np.zeros(n) if op.alpha is None else op.alpha.double().reshape(-1).numpy()
    beta = np.ones(n) if op.beta is None else op.beta.double().reshape(-1).numpy()
    du, dv = decays(alpha, beta)
    compartments = FixedCompartments(
        weight=np.zeros((n, 0)), u_factor=DECAY_UNITY - (du.astype(np.int64) + CURRENT_OFFSET),
        v_factor=DECAY_UNITY - dv.astype(np.int64), bias=scaled_bias(integer_bias(bias, scale), np.full(n, BIAS_EXP)),
        vth=np.left_shift(np.round(scale * theta).astype(np.int64), STATE_SHIFT))
    neuron = FixedNeuron(op.kind, shape, threshold=op.threshold, compartments=compartments, scale=scale)
    return neuron, {b.name: _integer_node(b, integer_weights(w, scale, mixed)) for b, w in zip(blocks, weights)}


def _weight_of(b: CompiledNode) -> np.ndarray:
    """The float weights of weighted node ``b`` (a ``Scale``'s factors)."""
    node = b.node.node
    return node.scale if b.node.kind == "Scale" else node.weight


def _reach(b: CompiledNode, abs_weight: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Per neuron fed by ``b``: the sum of ``|w|`` over every source spike that can reach it, and how many
    sources reach it (each input value of ``b`` sums ``window`` sources through its pools)."""
    full = torch.full((1, *b.in_shape), float(window))
    with torch.no_grad():
        counted = build_synapse(b.name, _integer_node(b, abs_weight), 1.0).apply(full)
        links = b.op.connect(full)
    return counted.double().reshape(-1).numpy(), links.double().reshape(-1).numpy()


def _integer_node(b: CompiledNode, weight: np.ndarray) -> nir.NIRNode:
    """NIR node ``b`` with ``weight`` and no bias (the bias lives in the neuron)."""
    node = b.node.node
    w = np.asarray(weight, dtype=np.float32)
    if b.node.kind == "Scale":
        return dataclasses.replace(node, scale=w)
    if b.node.kind == "Affine":
        return dataclasses.replace(node, weight=w, bias=np.zeros(w.shape[0], np.float32))
    if b.node.kind in ("Conv1d", "Conv2d"):
        return dataclasses.replace(node, weight=w, bias=np.zeros(w.shape[0], np.float32))
    return dataclasses.replace(node, weight=w)


def _sum_pool(c: CompiledNode) -> nir.SumPool2d:
    """An ``AvgPool2d`` or ``SumPool2d`` node as a ``SumPool2d``: integer counts of spikes."""
    node = c.node.node
    return nir.SumPool2d(kernel_size=node.kernel_size, stride=node.stride, padding=node.padding)
