r"""A compiled NIR graph as Lava processes (:class:`~hw_sim.backends.lava_net.LavaNet`), or one line why not.

**Neurons.** Every compartment node becomes one Lava ``LIFReset`` with per-neuron parameters
(Lava's float ``LIF``: ``u = (1 - du) u + a_in``; ``v = (1 - dv) v + u + bias``; spike where
``v > vth``, then ``v = 0``), from the interpreter's own constants (:mod:`hw_sim.graph.neurons`):

===========  ====================  =================  ==========  =================================
node         ``du``                ``dv``             ``vth``     input gain ``h`` / ``bias``
===========  ====================  =================  ==========  =================================
``LIF``      1 (no current)        ``1 - beta``       ``v_th``    ``g`` / ``l + g c``
``LI``       1                     ``1 - beta``       infinite    ``g`` / ``l + g c``
``IF``       1                     0                  ``v_th``    ``r`` / ``r c``
``I``        1                     0                  infinite    ``r`` / ``r c``
``CubaLIF``  ``1 - alpha``         ``1 - beta``       ``v_th``    ``g g_syn`` / ``l`` (``u = g i``)
``CubaLI``   ``1 - alpha``         ``1 - beta``       infinite    ``g g_syn`` / ``l``
Threshold    1                     1 (no memory)      ``theta``   1 / ``c``
===========  ====================  =================  ==========  =================================

where ``c`` is the constant input the biases of the synapse nodes before it give. Lava's bias enters
``v``, so a ``CubaLI``/``CubaLIF`` takes its ``c`` into the current instead from an always-on neuron
(:data:`ALWAYS_ON`: ``dv = 1``, bias 1, ``vth`` 0.5, a spike every step) through a block of weights
``g g_syn c``.

**Synapse blocks.** The synapse nodes between a source (the graph's input or a compartment node)
and a compartment node (``Affine``, ``Linear``, ``Scale``, ``Conv1d``/``Conv2d``, ``SumPool2d``/
``AvgPool2d``, ``Flatten``, ``Delay`` and the pass-through ``Input``/``Output`` of nested graphs) are
multiplied out: the interpreter's own operations, biases set to 0, applied to every unit vector of the
source, give the block's matrix (float32 products, kept as float64), the target's gain ``h`` folded into
its rows; a merge is several blocks into one ``a_in``. A block carries the source's output of ``delta``
steps before: 1 where its first edge is a recurrent one (the interpreter's previous-step edge), plus the
steps of its ``Delay`` nodes. :mod:`hw_sim.backends.lava_net` says how Lava's one step per block is
lined up with that.

Refused, naming the node: a ``v_reset`` other than 0 (Lava resets to 0), a bias through a ``Delay``, a
``Delay`` whose elements differ, a read-out whose voltage feeds another compartment (Lava's ``LIF`` sends
spikes), and a graph whose blocks cannot be lined up (a same-step edge on a cycle: a ``Threshold`` in a
recurrent loop).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch
from scipy import sparse

from hw_sim.backends.lava_net import LavaBlock, LavaNet, LavaNeurons
from hw_sim.graph.neurons import Neuron
from hw_sim.graph.runner import CompiledGraph, CompiledNode
from hw_sim.graph.synapses import build_synapse
from lorsp.plumbing.errors import LorspError

READOUTS = ("I", "LI", "CubaLI")
CUBA = ("CubaLI", "CubaLIF")
PASSING = ("Input", "Output", "Affine", "Linear", "Scale", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d",
           "Flatten", "Delay")
"""Nodes a synapse block may pass through: linear maps of one step's values (``Delay``: of an earlier step)."""
CHUNK = 512
ALWAYS_ON = "(always-on)"
"""The name of the neuron that spikes every step to feed constant currents (no NIR node has parentheses here)."""
"""Unit vectors pushed through a block at once."""
Op = Callable[[torch.Tensor], torch.Tensor]
EdgeWeight = Callable[[CompiledNode, int], "float | None"]
"""A factor on the ``i``-th input edge of a compartment node (same-step inputs, then recurrent ones); None: 1."""


def lava_net(compiled: CompiledGraph, graded_input: bool) -> LavaNet:
    """The :class:`LavaNet` of ``compiled`` (module docstring); a one-line LorspError naming what Lava cannot run."""
    comps = [c for c in compiled.nodes if c.is_compartment]
    for c in compiled.nodes:
        if not c.is_compartment and c.node.kind not in PASSING:
            raise LorspError(f"--backend lava: node {c.name!r} is a {c.node.kind}, which no Lava synapse block holds")
    ops = {c.name: _linear_op(c, compiled.dt) for c in compiled.nodes if c.node.kind in PASSING}
    bias = _constant_inputs(compiled)
    params = {c.name: _neuron_params(c, bias.get(c.name)) for c in comps}
    size = lambda c: int(np.prod(c.out_shape))  # noqa: E731
    raw: list[tuple[str, str, int, sparse.csr_matrix]] = []
    input_node = compiled[compiled.graph.input_name]
    for src in [input_node, *comps]:
        for (target, delta), matrix in blocks_from(compiled, src, size(src), ops).items():
            if src.node.kind in READOUTS:
                raise LorspError(f"--backend lava: node {src.name!r} ({src.node.kind}) is a membrane read-out that "
                                 f"feeds {target!r}; Lava's LIF sends spikes, not its voltage")
            gain = params[target]["h"]
            raw.append((src.name, target, delta, sparse.csr_matrix(sparse.diags(gain) @ matrix)))
    drives = {name: p.pop("drive") for name, p in params.items() if "drive" in p}
    for target, drive in drives.items():
        raw.append((ALWAYS_ON, target, 0, sparse.csr_matrix(drive.reshape(-1, 1))))
    neurons = [LavaNeurons(c.name, c.node.kind, **{k: v for k, v in params[c.name].items() if k != "h"},
                           first=0, readout=c.node.kind in READOUTS) for c in comps]
    if drives:
        neurons.append(LavaNeurons(ALWAYS_ON, "LIF", du=np.ones(1), dv=np.ones(1), vth=np.full(1, 0.5),
                                   bias=np.ones(1), first=0, recorded=False))
    return line_up(input_node.name, size(input_node), neurons, raw, graded_input)


def line_up(input_name: str, input_size: int, neurons: list[LavaNeurons],
            raw: list[tuple[str, str, int, sparse.csr_matrix]], graded_input: bool = False, mode: str = "float",
            weight_exps: list[int] | None = None) -> LavaNet:
    """The :class:`LavaNet` of ``neurons`` (their ``first`` is set here) and the blocks ``raw`` (source, target, steps
    back, matrix; ``weight_exps`` per block for a fixed net): every node's first step (:func:`first_steps`), every
    block's wait and reset (:mod:`hw_sim.backends.lava_net`)."""
    first = first_steps([input_name, *(n.name for n in neurons)], raw)
    exps = weight_exps or [0] * len(raw)
    blocks = tuple(LavaBlock(s, t, m, delay=first[t] - first[s] - 1 + d, clear=d >= 1,
                             graded=graded_input and s == input_name, weight_exp=e)
                   for (s, t, d, m), e in zip(raw, exps))
    placed = tuple(dataclasses.replace(n, first=first[n.name]) for n in neurons)
    return LavaNet(input_name, input_size, first[input_name], placed, blocks, mode=mode)


def _linear_op(c: CompiledNode, dt: float) -> Op:
    """The node's operation with its bias set to 0 (a ``Delay`` is the identity: its steps are counted apart)."""
    node = c.node.node
    if c.node.kind == "Delay":
        return lambda x: x
    if c.node.kind in ("Affine", "Conv1d", "Conv2d") and getattr(node, "bias", None) is not None:
        node = dataclasses.replace(node, bias=np.zeros_like(np.asarray(node.bias)))
        return build_synapse(c.name, node, dt).apply
    return c.op.apply


def _delay_steps(c: CompiledNode) -> int:
    steps = np.unique(c.op.delay_steps)
    if steps.size != 1:
        raise LorspError(f"--backend lava: Delay node {c.name!r} delays its elements by different steps "
                         f"{steps[:4].tolist()}; one Lava block takes one delay")
    return int(steps[0])


def blocks_from(compiled: CompiledGraph, src: CompiledNode, n: int, ops: dict[str, Op],
                edge_weight: EdgeWeight | None = None) -> dict[tuple[str, int], sparse.csr_matrix]:
    """Per (compartment target, steps back): the matrix from ``src``'s output to the target's input, through the
    synapse nodes' operations ``ops`` (and ``edge_weight`` on a compartment's input edges)."""
    parts: dict[tuple[str, int], list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    shapes: dict[str, int] = {}
    with torch.no_grad():
        for lo in range(0, n, CHUNK):
            k = min(CHUNK, n - lo)
            unit = torch.zeros((k, n))
            unit[torch.arange(k), lo + torch.arange(k)] = 1.0
            for (target, delta), y in _propagate(compiled, src, unit.reshape(k, *src.out_shape), ops,
                                                     edge_weight).items():
                y = y.reshape(k, -1)
                shapes[target] = y.shape[1]
                col, row = torch.nonzero(y, as_tuple=True)
                parts.setdefault((target, delta), []).append(
                    (row.numpy(), (col + lo).numpy(), y[col, row].to(torch.float64).numpy()))
    out = {}
    for key, found in parts.items():
        rows, cols, vals = (np.concatenate(a) for a in zip(*found))
        if vals.size:
            out[key] = sparse.csr_matrix((vals, (rows, cols)), shape=(shapes[key[0]], n))
    return out


def _propagate(compiled: CompiledGraph, src: CompiledNode, value: torch.Tensor, ops: dict[str, Op],
               edge_weight: EdgeWeight | None = None) -> dict[tuple[str, int], torch.Tensor]:
    """``value`` (a batch of ``src``'s outputs) through the synapse nodes to every compartment it reaches."""
    vals: dict[str, dict[int, torch.Tensor]] = {src.name: {0: value}}
    reached: dict[tuple[str, int], torch.Tensor] = {}
    for c in compiled.nodes:
        if c.name == src.name and not c.is_compartment:  # the graph's input; a compartment may feed itself
            continue
        drive: dict[int, torch.Tensor] = {}
        edges = [(a, 0) for a in c.node.inputs] + [(a, 1) for a in c.node.recurrent]
        for i, (a, lag) in enumerate(edges):
            w = edge_weight(c, i) if edge_weight is not None and c.is_compartment else None
            for d, v in vals.get(a, {}).items():
                v = v if w is None else v * w
                drive[d + lag] = drive[d + lag] + v if d + lag in drive else v
        if not drive:
            continue
        if c.is_compartment:
            for d, v in drive.items():
                reached[(c.name, d)] = v
            continue
        shift = _delay_steps(c) if c.node.kind == "Delay" else 0
        vals[c.name] = {d + shift: ops[c.name](v) for d, v in drive.items()}
    return reached


def _constant_inputs(compiled: CompiledGraph) -> dict[str, np.ndarray]:
    """Per compartment node fed by biases: the constant input they give it (flattened, float64)."""
    zero: dict[str, torch.Tensor] = {}
    out = {}
    with torch.no_grad():
        for c in compiled.nodes:
            if c.name == compiled.graph.input_name:
                continue
            feeds = [zero[a] for a in c.node.inputs if a in zero]
            total = sum(feeds[1:], feeds[0]) if feeds else None
            if c.is_compartment:
                if total is not None and bool(total.any()):
                    out[c.name] = total.reshape(-1).to(torch.float64).numpy()
                continue
            if c.node.kind == "Delay":
                if total is not None and bool(total.any()):
                    raise LorspError(f"--backend lava: a bias passes Delay node {c.name!r}; Lava holds a bias in "
                                     f"the neuron, which cannot wait")
                continue
            y = c.op.apply(total if total is not None else torch.zeros((1, *c.in_shape)))
            if bool(y.any()):
                zero[c.name] = y
    return out


def _flat(t: torch.Tensor | None, shape: tuple[int, ...], default: float) -> np.ndarray:
    n = int(np.prod(shape))
    if t is None:
        return np.full(n, default)
    return torch.broadcast_to(t, shape).reshape(-1).to(torch.float64).numpy().copy()


def _neuron_params(c: CompiledNode, constant: np.ndarray | None) -> dict[str, np.ndarray]:
    """``du``, ``dv``, ``vth``, ``bias`` and the input gain ``h`` of one compartment node (module table)."""
    shape, n = c.in_shape, int(np.prod(c.in_shape))
    const = np.zeros(n) if constant is None else constant
    if not isinstance(c.op, Neuron):  # Threshold: v = u + c, no memory
        theta = _flat(torch.as_tensor(np.asarray(c.node.node.threshold, dtype=np.float32)), shape, 0.0)
        return {"du": np.ones(n), "dv": np.ones(n), "vth": theta, "bias": const, "h": np.ones(n)}
    op = c.op
    if op.reset is not None and bool(op.reset.any()):
        raise LorspError(f"--backend lava: node {c.name!r} ({c.node.kind}) resets to v_reset != 0; Lava's LIF "
                         f"resets to 0")
    gain, leak = _flat(op.gain, shape, 1.0), _flat(op.leak, shape, 0.0)
    du = 1.0 - _flat(op.alpha, shape, 0.0) if c.node.kind in CUBA else np.ones(n)
    dv = 1.0 - _flat(op.beta, shape, 1.0)
    vth = _flat(op.threshold, shape, 0.0) if op.spiking else np.full(n, np.inf)
    if c.node.kind in CUBA:
        h = gain * _flat(op.syn_gain, shape, 1.0)
        return {"du": du, "dv": dv, "vth": vth, "bias": leak, "h": h, **({"drive": h * const} if np.any(const) else {})}
    return {"du": du, "dv": dv, "vth": vth, "bias": leak + gain * const, "h": gain}


def first_steps(names: list[str], blocks: list[tuple[str, str, int, sparse.csr_matrix]]) -> dict[str, int]:
    """The Lava step on which each node takes a sample's step 0: a block carrying a past step joins its ends
    (equal first steps), a same-step block puts its target at least one step after its source."""
    parent = {n: n for n in names}

    def root(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for s, t, d, _ in blocks:
        if d >= 1:
            parent[root(s)] = root(t)
    first = {root(n): 1 for n in names}
    same_step = [(s, t) for s, t, d, _ in blocks if d == 0]
    for _ in range(len(names) + 1):
        changed = False
        for s, t in same_step:
            if root(s) == root(t):
                raise _unaligned(s, t)
            if first[root(t)] < first[root(s)] + 1:
                first[root(t)] = first[root(s)] + 1
                changed = True
        if not changed:
            return {n: first[root(n)] for n in names}
    raise _unaligned(*max(same_step, key=lambda e: first[root(e[1])]))


def _unaligned(source: str, target: str) -> LorspError:
    return LorspError(f"--backend lava: the same-step block from {source!r} to node {target!r} closes a cycle; "
                      f"Lava delays every synapse block by one step, so the cycle cannot keep the graph's timing")
