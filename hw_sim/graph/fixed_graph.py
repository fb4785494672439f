r"""Loihi's integers for a general graph: every compartment a bit-accurate Lava LIF, every synapse 8 bits.

For graphs the chain path (:mod:`hw_sim.graph.fixed`) cannot take (branches, merges, recurrence,
convolutions too large for a dense matrix), :func:`compile_fixed` turns the float graph into its
fixed-point twin, which :func:`hw_sim.graph.runner.run_graph` runs like any other:

* every compartment node (``LIF``, ``CubaLIF``, ``IF``; the read-outs ``LI``, ``I``, ``CubaLI``;
  ``Threshold``; ``v_reset = 0``) gets its own scale ``s``
  (:func:`deploy.fixed_point.scale_limit` and :func:`~deploy.fixed_point.scale_between`, the chain
  path's rules, from the largest weight, the largest row sum of ``|w|``, the most inputs of one
  neuron, the largest bias and threshold of all the blocks that feed it; a read-out has no
  threshold and takes 1), and steps as :class:`hw_sim.graph.fixed_neurons.FixedNeuron` (Lava's
  ``PyLifResetModelBitAcc``: ``du = 4095 - round(4096 alpha)``, ``dv = round(4096 (1 - beta))``,
  ``vth = round(s theta / h)``, bias mantissa ``round(s b)`` with exponent 6, 24-bit ``u`` and ``v``;
  ``alpha``, ``beta`` and ``theta`` per neuron). A read-out is the same compartment with no spike, its
  output ``h v`` dequantised; a ``Threshold`` compares ``2^6 a + b`` with ``vth`` and keeps no state;
* every weighted node (``Affine``, ``Linear``, ``Conv1d``, ``Conv2d``, ``Scale``) feeds exactly
  one compartment (through ``Flatten``s and ``Delay``s) and holds ``integer_weights(g W / k^2, s)``:
  the compartment's input gain ``g`` (``r dt / tau`` times ``g_syn``; where it differs between
  neurons, the largest, each neuron's share ``h`` of it dividing that neuron's threshold:
  :func:`_gains`) and the ``1/k^2`` of any ``AvgPool2d`` in front of it folded in. Its bias, times
  ``g``, becomes the compartment's bias; in front of a
  ``CubaLIF``/``CubaLI``, which adds it to the current, it is an 8-bit weight from a compartment that
  spikes every step (the bias neuron), added to the dendrite input;
* a leaky node's constant drive, the ``(dt / tau) v_leak`` its float step adds to the voltage every step
  (``l``), is Loihi's per-compartment bias current, which does just that: it adds ``l / h`` to the
  compartment's bias before quantisation (:func:`_quantise`): no rounding where ``s l / h`` is a whole
  number, and with ``beta = 1/2``, ``T <= 8`` and every value on the grid 2^-5 at a power-of-two scale of at
  least 2^6 the spikes are the float run's bit for bit (LoRSP's pixel gates, export/nir_pixel.py); elsewhere it
  rounds like every other bias;
* dense weighted nodes in a row are one block (:func:`hw_sim.graph.fixed_compose.compose_dense`);
* an input that reaches a compartment without a weighted node (spikes of a compartment or of the
  graph's input, pooled or not) goes through one-to-one synapses of weight ``integer_weights(g / k^2, s)``;
* pools in front of a weighted node or compartment (stride = kernel, no padding: no window
  overlaps) run as ``SumPool2d``: integer counts of spikes, so ``W / k^2`` on them is the chip's
  multiplied-out block exactly;
* a ``Delay`` passes its integers (spikes, or a block's sums) on, ``round(tau / dt)`` steps later.

Float32 computes every integer sum exactly: ``s`` keeps every neuron's ``sum |w|`` within the
16-bit dendrite. Anything else (a read-out that feeds another node, a biased block behind a
``Delay``, two weighted nodes in a row that are not dense vectors, a gain that is 0 or changes
sign between the neurons of a node, overlapping pools, graded input) is refused in one line, and the report
says why. The chain path is Lava-verified; this one equals it wherever both run
(``tests/test_hwsim_nir_fixed.py``), and Lava's bit-accurate processes give its spikes bit for bit
(:mod:`hw_sim.graph.lava_fixed_plan`, ``tests/test_hwsim_lava_fixed_graph.py``).
"""
from __future__ import annotations

import dataclasses
import math

import nir
import numpy as np
import torch

from deploy.fixed_point import BIAS_EXP, DECAY_UNITY, STATE_SHIFT, decays, integer_bias, integer_weights, \
    scale_between, scale_limit
from hw_sim.graph.fixed_compose import compose_dense
from hw_sim.graph.fixed_neurons import CURRENT_OFFSET, UV_LIMIT, FixedNeuron, scaled_bias
from hw_sim.graph.neurons import Neuron
from hw_sim.graph.runner import CompiledGraph, CompiledNode
from hw_sim.graph.synapses import Synapse, build_synapse, ints
from lorsp.plumbing.errors import LorspError

PASS = ("Flatten", "Input", "Output", "Delay")
WEIGHTED = ("Affine", "Linear", "Conv1d", "Conv2d", "Scale")
POOLS = ("SumPool2d", "AvgPool2d")
SPIKING = ("LIF", "CubaLIF", "IF")
READOUTS = ("LI", "I", "CubaLI")
CURRENT = ("CubaLIF", "CubaLI")
COMPARTMENTS = (*SPIKING, *READOUTS, "Threshold")
GAIN_RTOL = 1e-6


def compile_fixed(compiled: CompiledGraph) -> CompiledGraph:
    """The fixed-point twin of ``compiled`` (module docstring); a one-line LorspError for what it cannot hold."""
    for c in compiled.nodes:
        _check_supported(c)
    compiled = compose_dense(compiled)
    nodes = {c.name: c for c in compiled.nodes}
    succ: dict[str, list[str]] = {name: [] for name in nodes}
    for c in compiled.nodes:
        for a in (*c.node.inputs, *c.node.recurrent):
            succ[a].append(c.name)
    for c in compiled.nodes:
        if c.node.kind in READOUTS and any(nodes[s].node.kind != "Output" or succ[s] for s in succ[c.name]):
            raise LorspError(f"{c.node.kind} node {c.name!r} feeds another node; a chip reads a membrane through "
                             f"probes and sends only spikes")
    factors = _pool_factors(compiled)
    owner = {c.name: _owner(c.name, nodes, succ) for c in compiled.nodes if c.node.kind in WEIGHTED}
    ops: dict[str, Synapse | Neuron] = {}
    for c in compiled.nodes:
        if c.node.kind in POOLS:
            ops[c.name] = build_synapse(c.name, _sum_pool(c), compiled.dt)
        elif c.node.kind in COMPARTMENTS:
            blocks = [(nodes[w], delayed) for w, (target, delayed) in owner.items() if target == c.name]
            direct = _direct_inputs(c, nodes, {b.name for b, _ in blocks}, factors)
            neuron, weights = _quantise(c, blocks, direct, factors)
            ops[c.name] = neuron
            for name, node in weights.items():
                ops[name] = build_synapse(name, node, compiled.dt)
    fixed = [dataclasses.replace(c, op=ops.get(c.name, c.op)) for c in compiled.nodes]
    return dataclasses.replace(compiled, nodes=fixed)


def _check_supported(c: CompiledNode) -> None:
    """A one-line LorspError unless node ``c`` is of a kind and form this path holds."""
    kind = c.node.kind
    if kind not in (*PASS, *WEIGHTED, *POOLS, *COMPARTMENTS):
        raise LorspError(f"node {c.name!r} is a {kind}, which the fixed-point path does not hold yet")
    if kind in COMPARTMENTS:
        value = getattr(c.node.node, "v_reset", None)
        if value is not None and np.any(np.asarray(value) != 0):
            raise LorspError(f"{kind} node {c.name!r} has a nonzero v_reset; Loihi's LIF resets to 0")
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
        if c.name == compiled.graph.input_name or c.node.kind in COMPARTMENTS:
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


def _owner(name: str, nodes: dict[str, CompiledNode], succ: dict[str, list[str]]) -> tuple[str, bool]:
    """The one compartment a weighted node feeds (through ``Flatten``s and ``Delay``s), and whether a
    ``Delay`` lies between them."""
    found, delayed, todo = set(), False, list(succ[name])
    while todo:
        n = todo.pop()
        kind = nodes[n].node.kind
        if kind in COMPARTMENTS:
            found.add(n)
        elif kind in ("Flatten", "Input", "Delay") or (kind == "Output" and succ[n]):
            delayed = delayed or kind == "Delay"
            todo += succ[n]
        else:
            raise LorspError(f"{nodes[name].node.kind} node {name!r} feeds {kind} node {n!r} without a neuron "
                             f"between them; the fixed-point path holds one weighted node per block (it composes "
                             f"only dense Affine/Linear/Scale nodes on vectors, each feeding only the next)")
    if len(found) != 1:
        raise LorspError(f"{nodes[name].node.kind} node {name!r} feeds {len(found)} neuron nodes; the fixed-point "
                         f"path holds one neuron node per weighted node")
    return found.pop(), delayed


def _direct_inputs(c: CompiledNode, nodes: dict[str, CompiledNode], blocks: set[str],
                   factors: dict[str, tuple[float, int]]) -> list[tuple[float, int] | None]:
    """Per input of compartment ``c`` (same-step, then recurrent): None where it comes from ``c``'s weighted
    nodes, else the pool factor and window of the spikes that reach ``c`` without a weighted node."""
    out: list[tuple[float, int] | None] = []
    for a in (*c.node.inputs, *c.node.recurrent):
        weighted, unweighted, todo = False, False, [a]
        while todo:
            n = todo.pop()
            sources = (*nodes[n].node.inputs, *nodes[n].node.recurrent)
            if n in blocks:
                weighted = True
            elif nodes[n].node.kind in PASS and sources:
                todo += sources
            else:
                unweighted = True
        if weighted and unweighted:
            raise LorspError(f"{c.node.kind} node {c.name!r} takes, through {a!r}, a sum of weighted and "
                             f"unweighted inputs; the fixed-point path cannot give them one scale")
        out.append(factors[a] if unweighted else None)
    return out


def _gains(c: CompiledNode) -> tuple[float, np.ndarray | None]:
    """Compartment ``c``'s input gain (``g g_syn`` per neuron) as one value ``G`` folded into the weights and a
    factor per neuron ``h = g g_syn / G`` (None: 1 for every neuron) that divides its threshold.

    With ``v_reset = 0`` a neuron's voltage over ``h`` follows the same equations with gain ``G``, threshold
    ``theta / h`` and leak constant ``l / h`` (a read-out's voltage is ``h`` times it), so the spikes are the same
    in exact arithmetic. ``G`` is the gain of largest magnitude: every neuron's weights keep all 8 bits, and ``h <= 1``
    raises thresholds, which the chip holds in 17 bits. A gain within :data:`GAIN_RTOL` of the same value
    everywhere folds whole, as before; one that is 0 or changes sign between neurons is refused."""
    if c.node.kind == "Threshold":
        return 1.0, None
    n = math.prod(c.out_shape)
    total = np.ones(n)
    for value in (c.op.gain, c.op.syn_gain):
        if value is not None:
            total = total * np.broadcast_to(value.double().reshape(-1).numpy(), (n,))
    if np.allclose(total, total[0], rtol=GAIN_RTOL, atol=0.0):
        return float(total[0]), None
    ref = float(total[np.argmax(np.abs(total))])
    share = total / ref
    if not np.all(share > 0):
        raise LorspError(f"{c.node.kind} node {c.name!r}: its input gain is 0 or changes sign between neurons; "
                         f"the fixed-point path divides each neuron's threshold by its share of the gain")
    return ref, share


def _quantise(c: CompiledNode, blocks: list[tuple[CompiledNode, bool]], direct: list[tuple[float, int] | None],
              factors: dict[str, tuple[float, int]]) -> tuple[FixedNeuron, dict[str, object]]:
    """Compartment ``c``'s integer neuron and the integer NIR nodes of its weighted blocks."""
    kind, shape, n = c.node.kind, c.out_shape, math.prod(c.out_shape)
    op = c.op
    gain, share = _gains(c)
    bias, rows, fans = np.zeros(n), np.zeros(n), np.zeros(n)
    weights: list[np.ndarray] = []
    for b, delayed in blocks:
        factor, window = factors[b.name]
        w = np.asarray(_weight_of(b), dtype=np.float64) * gain * factor
        weights.append(w)
        with torch.no_grad():
            own = b.op.apply(torch.zeros((1, *b.in_shape), dtype=torch.float32)).double().reshape(-1).numpy()
        if delayed and np.any(own != 0):
            raise LorspError(f"{b.node.kind} node {b.name!r} has a bias and a Delay behind it; the float run adds "
                             f"no bias during the delay's first steps, the chip's neuron adds it from the start")
        bias += own * gain
        reached, links = _reach(b, np.abs(w), window)
        rows += reached
        fans += links
    one_to_one = [None if d is None else gain * d[0] for d in direct]
    for d, w in zip(direct, one_to_one):
        if d is not None:
            weights.append(np.array([w]))
            rows += abs(w) * d[1]
            fans += d[1]
    current_bias = None
    if kind in CURRENT and np.any(bias != 0):  # the current takes the bias: a bias neuron's synapses
        current_bias, bias = bias, np.zeros(n)
        weights.append(current_bias)
        rows += np.abs(current_bias)
        fans += 1
    leak = getattr(op, "leak", None)
    if leak is not None:  # the constant (dt/tau) v_leak of every step: the compartment's own bias, as v over h
        constant = np.broadcast_to(leak.double().numpy(), shape).reshape(-1)
        bias = bias + (constant if share is None else constant / share)
    theta = _threshold(c)
    held = theta if theta is None or share is None else theta / share  # the threshold of voltage / share
    theta_scale = held if held is not None and held.max() > 0 else np.ones(1)
    flat = np.concatenate([w.reshape(-1) for w in weights]) if weights else np.zeros(1)
    mixed = bool(flat.min() < 0 < flat.max())
    largest = scale_limit(c.name, float(np.abs(flat).max()), float(rows.max()), int(fans.max()),
                          float(np.abs(bias).max()), float(theta_scale.max()), mixed)
    scale = scale_between(largest, weights, bias, theta_scale, mixed)
    alpha = np.zeros(n) if getattr(op, "alpha", None) is None else op.alpha.double().reshape(-1).numpy()
    beta = np.ones(n) if getattr(op, "beta", None) is None else op.beta.double().reshape(-1).numpy()
    du, dv = decays(alpha, beta)
    vth = np.full(n, float(UV_LIMIT)) if held is None else \
        np.left_shift(np.round(scale * held).astype(np.int64), STATE_SHIFT).astype(np.float64)
    neuron = FixedNeuron.build(
        kind, shape, scale=scale, u_factor=DECAY_UNITY - (du + CURRENT_OFFSET), v_factor=DECAY_UNITY - dv,
        bias=scaled_bias(integer_bias(bias, scale), np.full(n, BIAS_EXP)), vth=vth,
        current_bias=None if current_bias is None else integer_weights(current_bias, scale, mixed),
        direct=[None if w is None else float(integer_weights(np.array([w]), scale, mixed)[0]) for w in one_to_one],
        readout=kind in READOUTS, stateless=kind == "Threshold",
        readout_share=share if kind in READOUTS else None)
    neuron.threshold = None if theta is None else torch.as_tensor(theta.reshape(shape), dtype=torch.float32)
    return neuron, {b.name: _integer_node(b, integer_weights(w, scale, mixed)) for (b, _), w in zip(blocks, weights)}


def _threshold(c: CompiledNode) -> np.ndarray | None:
    """The thresholds of compartment ``c`` per flattened neuron (float64), None for a read-out."""
    if c.node.kind == "Threshold":
        return np.broadcast_to(np.asarray(c.node.node.threshold, dtype=np.float64), c.out_shape).reshape(-1).copy()
    if c.node.kind in READOUTS:
        return None
    return c.op.threshold.double().reshape(-1).numpy()


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
    if b.node.kind in ("Affine", "Conv1d", "Conv2d"):
        return dataclasses.replace(node, weight=w, bias=np.zeros(w.shape[0], np.float32))
    return dataclasses.replace(node, weight=w)


def _sum_pool(c: CompiledNode) -> nir.SumPool2d:
    """An ``AvgPool2d`` or ``SumPool2d`` node as a ``SumPool2d``: integer counts of spikes."""
    node = c.node.node
    return nir.SumPool2d(kernel_size=node.kernel_size, stride=node.stride, padding=node.padding)
