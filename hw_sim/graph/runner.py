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
counting nothing and node by node (``by_node``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch

from deploy.nir_graph import FlatGraph, GraphNode
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
              progress: Callable[[int], None] | None = None, count: bool = True, chunk: int = CHUNK_SAMPLES,
              what: str = "the graph run", output_dtype: type = np.float32, by_node: bool = False) -> GraphRun:
    """Run input ``x`` ``(T, N, *input_shape)`` through ``compiled``; counts and outputs (see the module docstring).

    ``count=False`` leaves the counts (:class:`NodeStats`) at zero and skips their work (the fast backend,
    which counts from the spikes). ``chunk``: samples stepped together. ``what`` names the run in the
    ``--timeout`` message. ``output_dtype``: the dtype of the kept outputs (``np.uint8`` for spikes).

    ``by_node=True`` (with ``count=False``, for a graph without feedback or ``Delay``) runs the same steps in
    another order: node by node, each synapse node once on all ``T`` steps of a chunk (``(T n, *shape)``, one
    matrix product where step by step takes ``T``), each neuron node ``T`` steps. Every sample's steps are the
    same operations on the same values; the results are equal where a synapse node's numbers do not depend
    on how many rows one call takes (exact sums: the fast backend's Lava ``Dense``; not promised for
    float32 products, so a NIR graph runs step by step).
    """
    if by_node and (count or any(c.node.recurrent or c.node.kind == "Delay" for c in compiled.nodes)):
        raise ValueError("by_node runs graphs without feedback or Delay, and counts nothing")
    start = time.perf_counter()
    x = np.asarray(x, dtype=np.float32)
    T, N = x.shape[:2]
    keep = set(compiled.graph.output_names) | set(record)
    stats = {c.name: NodeStats(np.zeros(N), np.zeros(N), np.zeros(N)) for c in compiled.nodes} if count else {}
    outputs = {c.name: np.zeros((T, N, *c.out_shape), output_dtype) for c in compiled.nodes if c.name in keep}
    deadline = start + timeout
    late = lambda where: LorspError(f"{what} exceeded --timeout {timeout:g} s and was stopped at {where} "  # noqa: E731
                                    f"(raise --timeout for more samples or steps)")
    with torch.no_grad():
        for lo in range(0, N, chunk):
            hi = min(N, lo + chunk)
            if by_node:
                _run_chunk_by_node(compiled, torch.from_numpy(x[:, lo:hi]), outputs, lo, deadline, late)
            else:
                _run_chunk(compiled, torch.from_numpy(x[:, lo:hi]), stats, outputs, lo, deadline, late, count)
            if progress is not None:
                progress(hi)
    return GraphRun(stats, outputs, T, N, time.perf_counter() - start)


def _run_chunk(compiled: CompiledGraph, x: torch.Tensor, stats: dict[str, NodeStats],
               outputs: dict[str, np.ndarray], lo: int, deadline: float, late: Callable[[str], LorspError],
               count: bool) -> None:
    T, n = x.shape[:2]
    states: dict[str, dict] = {}
    for c in compiled.nodes:
        if isinstance(c.op, Neuron):
            states[c.name] = c.op.initial_state(n)
        else:
            c.op.reset(n, c.in_shape, T)
    fed_back = {a for c in compiled.nodes for a in c.node.recurrent}
    previous = {a: torch.zeros((n, *compiled[a].out_shape)) for a in fed_back}
    zeros = lambda: torch.zeros(n, dtype=torch.float64)  # noqa: E731
    names = [c.name for c in compiled.nodes] if count else []
    spikes, pairs, active = ({name: zeros() for name in names} for _ in range(3))
    graded = {name: False for name in names}
    binary_x = count and bool(((x == 0) | (x == 1)).all())
    sl = slice(lo, lo + n)
    plan = [(c, c.name, c.op, isinstance(c.op, Neuron), c.name == compiled.graph.input_name, c.node.inputs,
             c.node.recurrent, outputs.get(c.name)) for c in compiled.nodes]
    for t in range(T):
        if time.perf_counter() > deadline:
            raise late(f"step {t} of {T}")
        values: dict[str, torch.Tensor] = {}
        for c, name, op, is_neuron, is_input, sources, recurrent, out in plan:
            everything: list[torch.Tensor] = [x[t]] if is_input else [values[a] for a in sources]
            if recurrent:
                everything += [previous[a] for a in recurrent]
            if is_neuron:
                y = op.step(everything, states[name])
                if count and len(everything) == 1:
                    active[name] += torch.count_nonzero(everything[0].reshape(n, -1), dim=1)
                elif count:
                    drive = everything[0] != 0
                    for v in everything[1:]:
                        drive |= v != 0
                    active[name] += drive.reshape(n, -1).sum(1)
            else:
                total = everything[0]
                for v in everything[1:]:
                    total = total + v
                y = op(total)
                if count and c.fan_out is not None:
                    mask = total if c.spike_input or (binary_x and sources == (compiled.graph.input_name,)) \
                        else (total != 0)
                    pairs[name] += mask.reshape(n, -1).to(c.fan_out.dtype) @ c.fan_out.reshape(-1)
                    if not graded[name] and mask is not total:
                        graded[name] = not bool(((total == 1) | (total == 0)).all())
                if count and c.is_compartment:
                    active[name] += torch.count_nonzero(total.reshape(n, -1), dim=1)
            if count and c.emits_spikes:
                spikes[name] += y.reshape(n, -1).sum(1)
            values[name] = y
            if out is not None:
                out[t, sl] = y.numpy()
        for a in fed_back:
            previous[a] = values[a]
    if not count:
        return
    for c in compiled.nodes:
        s = stats[c.name]
        s.spikes[sl], s.pairs[sl], s.active_updates[sl] = spikes[c.name].numpy(), pairs[c.name].numpy(), \
            active[c.name].numpy()
        s.binary_input = s.binary_input and not graded[c.name]


def _run_chunk_by_node(compiled: CompiledGraph, x: torch.Tensor, outputs: dict[str, np.ndarray], lo: int,
                       deadline: float, late: Callable[[str], LorspError]) -> None:
    """:func:`_run_chunk`'s steps node by node (:func:`run_graph`'s ``by_node``), counting nothing."""
    T, n = x.shape[:2]
    sl = slice(lo, lo + n)
    values: dict[str, torch.Tensor] = {}
    for c in compiled.nodes:
        if time.perf_counter() > deadline:
            raise late(f"node {c.name!r} of samples {lo}-{lo + n - 1}")
        total = x if c.name == compiled.graph.input_name else values[c.node.inputs[0]]
        for a in c.node.inputs[1:]:
            total = total + values[a]
        if c.name == compiled.graph.input_name:
            y = total  # an Input passes its input on
        elif isinstance(c.op, Neuron):
            y = c.op.steps(total, c.op.initial_state(n))
        else:
            c.op.reset(n, c.in_shape, T)
            y = c.op(total.reshape(T * n, *c.in_shape)).reshape(T, n, *c.out_shape)
        values[c.name] = y
        if c.name in outputs:
            outputs[c.name][:, sl] = y.numpy()
