r"""The graph interpreter: a :class:`~deploy.nir_graph.FlatGraph` stepped over time on a batch, float32.

:func:`compile_graph` builds every node's operation (:mod:`hw_sim.graph.synapses`,
:mod:`hw_sim.graph.neurons`) and its shapes, by running one zero sample through the graph
(so a shape that does not fit is refused before any work, naming the node). :func:`run_graph`
then runs input ``(T, N, *input_shape)``: at every step ``t`` each node, in the graph's order,
takes the sum of its same-step inputs (edge order) and, for a neuron, then the previous step's
outputs of its recurrent sources; every sample starts from rest. It counts, per node and
per sample, what :mod:`hw_sim.graph.counts` prices, and keeps the outputs of the ``Output``
nodes (and of any node named in ``record``). The fast backend of a lorsp bundle
(:mod:`hw_sim.backends.fast`) compiles its chain of Lava processes into this form and runs it here too,
counting nothing.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch

from deploy.nir_graph import FlatGraph, GraphNode
from hw_sim.graph.components import Component, component_order
from hw_sim.graph.neurons import Neuron, build_neuron
from hw_sim.graph.synapses import Synapse, build_synapse, fan_out
from lorsp.plumbing.errors import LorspError

CHUNK_SAMPLES = 256
"""Samples stepped together: bounds the memory of a large graph and paces the time limit."""
EXACT_FLOAT32 = 2.0 ** 24
"""Below this many synapses a node's per-step pair count is a float32 sum of integers, hence exact."""
COMPARTMENTS = ("Threshold",)
"""Stateless nodes that a chip runs as neurons (compartments) too: a spike from a comparison."""


@dataclass
class CompiledNode:
    """One node ready to run: its operation, its input and output shapes, whether it feeds back."""

    node: GraphNode
    op: Synapse | Neuron
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    fan_out: torch.Tensor | None = None
    """Synaptic pairs per nonzero input element (synapse nodes; :func:`hw_sim.graph.synapses.fan_out`)."""
    spike_input: bool = False
    """Its input is one node's spikes (0/1 by construction), so the input is its own nonzero mask."""

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def is_compartment(self) -> bool:
        """A neuron of the chip: a NIR neuron node or a ``Threshold``."""
        return self.node.is_neuron or self.node.kind in COMPARTMENTS

    @property
    def emits_spikes(self) -> bool:
        return (isinstance(self.op, Neuron) and self.op.spiking) or self.node.kind in COMPARTMENTS


@dataclass
class CompiledGraph:
    graph: FlatGraph
    nodes: list[CompiledNode]
    dt: float
    cuba_input: str = "euler"
    """How synaptic currents take their input (:data:`hw_sim.graph.neurons.CUBA_INPUTS`)."""
    if_input: str = "jump"
    """How IF/I voltages take their input (:data:`hw_sim.graph.neurons.IF_INPUTS`)."""

    def __getitem__(self, name: str) -> CompiledNode:
        return next(c for c in self.nodes if c.name == name)


@dataclass
class NodeStats:
    """Per-sample totals over the run of one node (``(N,)`` float64 arrays)."""

    spikes: np.ndarray
    pairs: np.ndarray
    active_updates: np.ndarray
    binary_input: bool = True


@dataclass
class GraphRun:
    """What :func:`run_graph` gives back."""

    stats: dict[str, NodeStats]
    outputs: dict[str, np.ndarray]
    """``(T, N, *shape)`` float32 output of every ``Output`` node and every recorded node."""
    steps: int
    samples: int
    seconds: float
    extra: dict = field(default_factory=dict)


def compile_graph(graph: FlatGraph, dt: float, source: str = "NIR graph", cuba_input: str = "euler",
                  if_input: str = "jump") -> CompiledGraph:
    """Every node's operation and shapes, checked on one zero sample; a one-line LorspError names a misfit.

    ``cuba_input`` and ``if_input``: the readings of :func:`hw_sim.graph.neurons.build_neuron`.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    compiled: list[CompiledNode] = []
    with torch.no_grad():
        for node in graph.nodes:
            if node.name == graph.input_name:
                in_shape = graph.input_shape
            else:
                found = {shapes[a] for a in node.inputs}
                if len(found) > 1:
                    raise LorspError(f"{source}: node {node.name!r} sums inputs of different shapes "
                                     f"{sorted(found)}: {', '.join(node.inputs)}")
                in_shape = found.pop() if found else _neuron_shape(graph.node(node.recurrent[0]), source)
            try:
                op = build_neuron(node.name, node.node, in_shape, dt, cuba_input, if_input) if node.is_neuron \
                    else build_synapse(node.name, node.node, dt)
                out_shape = _probe(op, in_shape)
            except LorspError as exc:
                raise LorspError(f"{source}: {exc}") from None
            except (RuntimeError, ValueError, TypeError, IndexError) as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                raise LorspError(f"{source}: node {node.name!r} ({node.kind}) does not fit its input of shape "
                                 f"{in_shape}: {first}") from None
            shapes[node.name] = out_shape
            fan = fan_out(op, in_shape) if isinstance(op, Synapse) and op.connect is not None else None
            if fan is not None and float(fan.sum()) < EXACT_FLOAT32:  # float32 dot products of counts are exact
                fan = fan.to(torch.float32)
            compiled.append(CompiledNode(node, op, in_shape, out_shape, fan))
    _mark_spike_inputs(compiled, graph.input_name)
    for c in compiled:
        for a in c.node.recurrent:
            if shapes[a] != c.in_shape:
                raise LorspError(f"{source}: recurrent edge {a!r} -> {c.name!r} carries shape {shapes[a]}, but "
                                 f"{c.name!r} takes {c.in_shape}")
    return CompiledGraph(graph, compiled, dt, cuba_input, if_input)


PASS_ON = ("Flatten", "Delay", "Output")
"""Nodes whose output is 0/1 when their one input is."""


def _mark_spike_inputs(compiled: list[CompiledNode], input_name: str) -> None:
    """Set :attr:`CompiledNode.spike_input` where a node's only input is spikes (the graph's input excluded:
    whether it is binary is known only at run time)."""
    spiking: dict[str, bool] = {}
    for c in compiled:
        sources = (*c.node.inputs, *c.node.recurrent)
        c.spike_input = len(sources) == 1 and spiking.get(sources[0], sources[0] in {d.name for d in compiled
                                                                                       if d.emits_spikes})
        spiking[c.name] = c.emits_spikes or (c.node.kind in PASS_ON and c.spike_input)


def _neuron_shape(node: GraphNode, source: str) -> tuple[int, ...]:
    """The shape of a neuron node's parameters: what a node fed only by its previous output takes."""
    shapes = [np.shape(getattr(node.node, k)) for k in ("v_threshold", "tau", "tau_mem", "r") if hasattr(node.node, k)]
    shape = max(shapes, key=len, default=())
    if not shape:
        raise LorspError(f"{source}: node {node.name!r} has scalar parameters, so the shape of what it feeds "
                         f"back cannot be known before the run")
    return tuple(int(d) for d in shape)


def _probe(op: Synapse | Neuron, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    x = torch.zeros((1, *in_shape))
    if isinstance(op, Neuron):
        y = op.step([x], op.initial_state(1))
    else:
        op.reset(1, in_shape, 1)
        y = op(x)
    return tuple(y.shape[1:])


def run_graph(compiled: CompiledGraph, x: np.ndarray, *, record: Iterable[str] = (), timeout: float = 600.0,
              progress: Callable[[int], None] | None = None, count: bool = True, chunk: int | None = None,
              what: str = "the graph run", output_dtype: type = np.float32, by_node: bool = True,
              block: int | None = None) -> GraphRun:
    """Run input ``x`` ``(T, N, *input_shape)`` through ``compiled``; counts and outputs (see the module docstring).

    ``count=False`` leaves the counts (:class:`NodeStats`) at zero and skips their work (the fast backend,
    which counts from the spikes). ``chunk``: samples run together (default :data:`CHUNK_SAMPLES`). ``what``
    names the run in the ``--timeout`` message. ``output_dtype``: the dtype of the kept outputs (``np.uint8``
    for spikes).

    ``by_node`` (the default) runs the same steps in another order (:mod:`hw_sim.graph.components`), in
    blocks of ``block`` steps (default :func:`block_steps`: a block's values fit the cache): every node
    outside a cycle once on all the steps of a block (a synapse node on ``(B n, *shape)``, one call where
    step by step takes ``B``), every recurrent loop step by step on its inputs from outside, known by then
    for every step of the block. ``by_node=False`` steps the whole graph, every node once a step. Every
    sample's steps are the same operations on the same values, and the counts are sums of the same
    integers, equal in both orders; the outputs are equal where a synapse node's float32 numbers do not
    depend on how many rows one call takes (exact sums; measured equal on the snnTorch graphs of
    ``examples/nir_snntorch.py speed``; the library may pick another kernel for another number of rows,
    as the exporting framework does for another batch size).
    """
    start = time.perf_counter()
    x = np.asarray(x, dtype=np.float32)
    T, N = x.shape[:2]
    keep = set(compiled.graph.output_names) | set(record)
    stats = {c.name: NodeStats(np.zeros(N), np.zeros(N), np.zeros(N)) for c in compiled.nodes} if count else {}
    outputs = {c.name: np.zeros((T, N, *c.out_shape), output_dtype) for c in compiled.nodes if c.name in keep}
    chunk = chunk or CHUNK_SAMPLES
    deadline = start + timeout
    late = lambda where: LorspError(f"{what} exceeded --timeout {timeout:g} s and was stopped at {where} "  # noqa: E731
                                    f"(raise --timeout for more samples or steps)")
    order = component_order([c.node for c in compiled.nodes]) if by_node else [Component(tuple(c.name for c in compiled.nodes), True)]
    with torch.no_grad():
        for lo in range(0, N, chunk):
            hi = min(N, lo + chunk)
            xs = torch.from_numpy(x[:, lo:hi])
            counter = _Counter(compiled, hi - lo, count)
            _run_chunk(compiled, order, xs, counter, outputs, lo, deadline, late,
                       block or (block_steps(compiled, hi - lo, T) if by_node else 1))
            counter.store(stats, slice(lo, hi))
            if progress is not None:
                progress(hi)
    return GraphRun(stats, outputs, T, N, time.perf_counter() - start)


BLOCK_VALUES = 2 ** 20
"""Float32 values (4 MiB) one node's output over a block of steps may hold (:func:`block_steps`)."""


def block_steps(compiled: CompiledGraph, samples: int, steps: int) -> int:
    """Steps run together node by node: as many as keep the largest node's ``(B, n, *shape)`` block within
    :data:`BLOCK_VALUES` values, so that a block's values stay in the processor's cache (at least 1)."""
    largest = max(int(np.prod(s)) for c in compiled.nodes for s in (c.in_shape, c.out_shape))
    return max(1, min(steps, BLOCK_VALUES // max(1, samples * largest)))


class _Counter:
    """One chunk's per-sample counts, from a node's inputs and outputs over ``R`` steps ``(R, n, *shape)``:
    sums of integers, equal whether they come a step or many steps at a time."""

    def __init__(self, compiled: CompiledGraph, n: int, on: bool):
        self.compiled, self.n, self.on = compiled, n, on
        names = [c.name for c in compiled.nodes] if on else []
        self.spikes, self.pairs, self.active = ({name: torch.zeros(n, dtype=torch.float64) for name in names}
                                                for _ in range(3))
        self.graded = {name: False for name in names}

    def _per_sample(self, rows: torch.Tensor, steps: int) -> torch.Tensor:
        return rows.reshape(steps, self.n).to(torch.float64).sum(0)

    def node(self, c: CompiledNode, inputs: list[torch.Tensor], total: torch.Tensor | None, y: torch.Tensor) -> None:
        """Count node ``c`` on ``R`` steps: its ``inputs`` (a neuron), their sum ``total`` (any other node), its
        output ``y``."""
        if not self.on:
            return
        name, steps, n = c.name, y.shape[0], self.n
        if total is None:
            drive = inputs[0].bool().view(torch.uint8)  # [x != 0] as bytes: or-ing bytes costs a tenth of bools
            for v in inputs[1:]:
                drive |= v.bool().view(torch.uint8)
            for constant in CONSTANT_DRIVES:  # v_leak (float) or the chip's bias (fixed) changes v every step
                value = getattr(c.op, constant, None)
                if value is not None:  # per neuron (the integer twin holds it flat) or broadcast
                    nonzero = (value != 0).view(torch.uint8)
                    if nonzero.numel() == drive[0, 0].numel():
                        nonzero = nonzero.reshape(drive.shape[2:])
                    drive = drive | nonzero
            self.active[name] += self._per_sample(_count(drive, steps * n), steps)
        else:
            if c.fan_out is not None:
                if c.spike_input:
                    mask = total
                else:  # [total != 0], compared into numbers (into bool costs several times as much)
                    mask = torch.ne(total, 0, out=torch.empty_like(total))
                    if not self.graded[name]:  # some input is neither 0 nor 1 (NaN included): not its own mask
                        self.graded[name] = bool(torch.ne(total, mask, out=torch.empty_like(total)).sum() > 0)
                mask = mask.reshape(steps * n, -1).to(c.fan_out.dtype)
                self.pairs[name] += self._per_sample(mask @ c.fan_out.reshape(-1), steps)
            if c.is_compartment:
                self.active[name] += self._per_sample(_count(total.bool(), steps * n), steps)
        if c.emits_spikes:
            self.spikes[name] += self._per_sample(y.reshape(steps * n, -1).sum(1), steps)

    def store(self, stats: dict[str, NodeStats], sl: slice) -> None:
        """Write the chunk's counts into ``stats`` at samples ``sl``."""
        if not self.on:
            return
        for c in self.compiled.nodes:
            s = stats[c.name]
            s.spikes[sl], s.pairs[sl], s.active_updates[sl] = (self.spikes[c.name].numpy(),
                                                               self.pairs[c.name].numpy(), self.active[c.name].numpy())
            s.binary_input = s.binary_input and not self.graded[c.name]


def _run_chunk(compiled: CompiledGraph, order: list[Component], x: torch.Tensor, counter: _Counter,
               outputs: dict[str, np.ndarray], lo: int, deadline: float, late: Callable[[str], LorspError],
               block: int) -> None:
    """Chunk ``x`` ``(T, n, *input_shape)`` in blocks of ``block`` steps: in each block, every component of
    ``order`` in turn, one outside a cycle on all the block's steps at once, one with a cycle step by step.
    Neuron states, recurrent outputs and ``Delay`` lines carry over from block to block."""
    T, n = x.shape[:2]
    sl = slice(lo, lo + n)
    states: dict[str, dict] = {}
    for c in compiled.nodes:
        if isinstance(c.op, Neuron):
            states[c.name] = c.op.initial_state(n)
        else:
            c.op.reset(n, c.in_shape, T)
    fed_back = {a for c in compiled.nodes for a in c.node.recurrent}
    previous = {a: torch.zeros((n, *compiled[a].out_shape)) for a in fed_back}
    """The last step's output of every node a recurrent edge leaves (zero before the first)."""
    for t0 in range(0, T, block):
        t1 = min(T, t0 + block)
        full: dict[str, torch.Tensor] = {}
        lagged: dict[str, torch.Tensor] = {}
        """The outputs of every node a recurrent edge leaves one step late: the step before the block, then
        all the block's but the last (the recurrent input of the block, for counting)."""
        for component in order:
            if time.perf_counter() > deadline:
                raise late(f"step {t0} of {T}, node {component.names[0]!r}")
            nodes = [compiled[name] for name in component.names]
            if component.stepped:
                _run_steps(compiled, nodes, x[t0:t1], full, states, previous, lagged)
            else:
                _run_whole(compiled, nodes[0], x[t0:t1], full, states)
            for c in nodes:
                if counter.on:
                    inputs = [x[t0:t1]] if c.name == compiled.graph.input_name else [full[a] for a in c.node.inputs]
                    inputs += [lagged[a] for a in c.node.recurrent]
                    counter.node(c, inputs, None if isinstance(c.op, Neuron) else _sum(inputs), full[c.name])
                if c.name in outputs:
                    outputs[c.name][t0:t1, sl] = full[c.name].numpy()


CONSTANT_DRIVES = ("leak", "bias", "current_bias")
"""A neuron op's per-neuron constants that drive it every step: the float step's ``(dt / tau) v_leak`` and the
integer twin's compartment bias and current bias; a neuron with one is an active update every step."""


def _count(nonzero: torch.Tensor, rows: int) -> torch.Tensor:
    """The true values in each of ``rows`` rows of ``nonzero``, bool or 0/1 bytes (summed as bytes: faster than
    ``count_nonzero``)."""
    return nonzero.view(torch.uint8).reshape(rows, -1).sum(1, dtype=torch.int32)


def _sum(inputs: list[torch.Tensor]) -> torch.Tensor:
    total = inputs[0]
    for v in inputs[1:]:
        total = total + v
    return total


def _run_whole(compiled: CompiledGraph, c: CompiledNode, x: torch.Tensor, full: dict[str, torch.Tensor],
               states: dict[str, dict]) -> None:
    """Node ``c`` (on no cycle) on all ``B`` steps of a block of its inputs at once (a neuron and a ``Delay``
    step through them)."""
    B, n = x.shape[:2]
    inputs = [x] if c.name == compiled.graph.input_name else [full[a] for a in c.node.inputs]
    if isinstance(c.op, Neuron):
        state = states[c.name]
        y = c.op.step([v[0] for v in inputs], state).unsqueeze(0) if B == 1 else \
            c.op.steps(inputs[0], state) if len(inputs) == 1 else \
            torch.stack([c.op.step([v[t] for v in inputs], state) for t in range(B)])
    elif c.op.delay_steps is not None:
        y = torch.stack([c.op(v) for v in _sum(inputs).unbind(0)])
    else:
        y = c.op(_sum(inputs).reshape(B * n, *c.in_shape)).reshape(B, n, *c.out_shape)
    full[c.name] = y


def _run_steps(compiled: CompiledGraph, nodes: list[CompiledNode], x: torch.Tensor, full: dict[str, torch.Tensor],
               states: dict[str, dict], previous: dict[str, torch.Tensor], lagged: dict[str, torch.Tensor]) -> None:
    """The nodes of one component step by step through a block ``x`` ``(B, n, ...)``: at each step each node,
    in the graph's order, takes the sum of its same-step inputs (edge order; from outside the component,
    that step of the block already run) and, a neuron, then the previous step's outputs of its recurrent
    sources (``previous``, updated here). Each node's steps go into one ``(B + 1, n, ...)`` tensor whose
    rows ``1..B`` are its ``full`` outputs and, for a node a recurrent edge leaves, whose row 0 is the step
    before the block, so that rows ``0..B-1`` are its ``lagged`` ones without another copy."""
    B = x.shape[0]
    inside = {c.name for c in nodes}
    fed_back = [a for a in previous if a in inside]
    last = {a: previous[a] for a in fed_back}
    rows: dict[str, torch.Tensor] = {}
    plan = [(c.name, c.op, isinstance(c.op, Neuron), c.name == compiled.graph.input_name,
             [(a, a in inside) for a in c.node.inputs], c.node.recurrent) for c in nodes]
    for t in range(B):
        values: dict[str, torch.Tensor] = {}
        for name, op, is_neuron, is_input, sources, recurrent in plan:
            everything = [x[t]] if is_input else [values[a] if here else full[a][t] for a, here in sources]
            if recurrent:
                everything += [last[a] for a in recurrent]
            y = op.step(everything, states[name]) if is_neuron else op(_sum(everything))
            values[name] = y
            if not t:
                rows[name] = y.new_empty((B + 1, *y.shape))
            rows[name][t + 1] = y
        for a in fed_back:
            last[a] = values[a]
    for name, out in rows.items():
        full[name] = out[1:]
    for a in fed_back:
        rows[a][0] = previous[a]
        lagged[a], previous[a] = rows[a][:-1], rows[a][-1]
