r"""The graph interpreter: a :class:`~deploy.nir_graph.FlatGraph` stepped over time on a batch, float32.

:func:`compile_graph` builds every node's operation (:mod:`hw_sim.graph.synapses`,
:mod:`hw_sim.graph.neurons`) and its shapes, by running one zero sample through the graph
(so a shape that does not fit is refused before any work, naming the node). :func:`run_graph`
then runs input ``(T, N, *input_shape)``: at every step ``t`` each node, in the graph's order,
takes the sum of its same-step inputs (edge order) and, for a neuron, then the previous step's
outputs of its recurrent sources; every sample starts from rest. It counts, per node and
per sample, what :mod:`hw_sim.graph.counts` prices, and keeps the outputs of the ``Output``
nodes (and of any node named in ``record``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from deploy.nir_graph import FlatGraph, GraphNode
from hw_sim.graph.neurons import Neuron, build_neuron
from hw_sim.graph.synapses import Synapse, build_synapse
from lorsp.plumbing.errors import LorspError

CHUNK_SAMPLES = 256
"""Samples stepped together: bounds the memory of a large graph and paces the time limit."""
COMPARTMENTS = ("Threshold",)
"""Stateless nodes that a chip runs as neurons (compartments) too: a spike from a comparison."""


@dataclass
class CompiledNode:
    """One node ready to run: its operation, its input and output shapes, whether it feeds back."""

    node: GraphNode
    op: Synapse | Neuron
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

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


def compile_graph(graph: FlatGraph, dt: float, source: str = "NIR graph", cuba_input: str = "euler") -> CompiledGraph:
    """Every node's operation and shapes, checked on one zero sample; a one-line LorspError names a misfit."""
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
                op = build_neuron(node.name, node.node, in_shape, dt, cuba_input) if node.is_neuron \
                    else build_synapse(node.name, node.node, dt)
                out_shape = _probe(op, in_shape)
            except LorspError as exc:
                raise LorspError(f"{source}: {exc}") from None
            except (RuntimeError, ValueError, TypeError, IndexError) as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                raise LorspError(f"{source}: node {node.name!r} ({node.kind}) does not fit its input of shape "
                                 f"{in_shape}: {first}") from None
            shapes[node.name] = out_shape
            compiled.append(CompiledNode(node, op, in_shape, out_shape))
    for c in compiled:
        for a in c.node.recurrent:
            if shapes[a] != c.in_shape:
                raise LorspError(f"{source}: recurrent edge {a!r} -> {c.name!r} carries shape {shapes[a]}, but "
                                 f"{c.name!r} takes {c.in_shape}")
    return CompiledGraph(graph, compiled, dt, cuba_input)


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
        op.reset(1, in_shape)
        y = op(x)
        if op.pairs is not None:
            op.pairs(x)
    return tuple(y.shape[1:])


def run_graph(compiled: CompiledGraph, x: np.ndarray, *, record: Iterable[str] = (), timeout: float = 600.0,
              progress: Callable[[int], None] | None = None) -> GraphRun:
    """Run input ``x`` ``(T, N, *input_shape)`` through ``compiled``; counts and outputs (see the module docstring)."""
    start = time.perf_counter()
    x = np.asarray(x, dtype=np.float32)
    T, N = x.shape[:2]
    keep = set(compiled.graph.output_names) | set(record)
    stats = {c.name: NodeStats(np.zeros(N), np.zeros(N), np.zeros(N)) for c in compiled.nodes}
    outputs = {c.name: np.zeros((T, N, *c.out_shape), np.float32) for c in compiled.nodes if c.name in keep}
    with torch.no_grad():
        for lo in range(0, N, CHUNK_SAMPLES):
            hi = min(N, lo + CHUNK_SAMPLES)
            _run_chunk(compiled, torch.from_numpy(x[:, lo:hi]), stats, outputs, lo)
            if time.perf_counter() - start > timeout:
                raise LorspError(f"the graph run exceeded --timeout {timeout:g} s and was stopped (raise --timeout "
                                 f"for more samples or steps)")
            if progress is not None:
                progress(hi)
    return GraphRun(stats, outputs, T, N, time.perf_counter() - start)


def _run_chunk(compiled: CompiledGraph, x: torch.Tensor, stats: dict[str, NodeStats],
               outputs: dict[str, np.ndarray], lo: int) -> None:
    T, n = x.shape[:2]
    states: dict[str, dict] = {}
    for c in compiled.nodes:
        if isinstance(c.op, Neuron):
            states[c.name] = c.op.initial_state(n)
        else:
            c.op.reset(n, c.in_shape)
    fed_back = {a for c in compiled.nodes for a in c.node.recurrent}
    previous = {a: torch.zeros((n, *compiled[a].out_shape)) for a in fed_back}
    sl = slice(lo, lo + n)
    for t in range(T):
        values: dict[str, torch.Tensor] = {}
        for c in compiled.nodes:
            inputs: Sequence[torch.Tensor] = [x[t]] if c.name == compiled.graph.input_name else \
                [values[a] for a in c.node.inputs]
            recurrent = [previous[a] for a in c.node.recurrent]
            s = stats[c.name]
            if isinstance(c.op, Neuron):
                everything = [*inputs, *recurrent]
                y = c.op.step(everything, states[c.name])
                drive = torch.stack([v != 0 for v in everything]).any(0) if everything else None
                if drive is not None:
                    s.active_updates[sl] += drive.reshape(n, -1).sum(1).numpy()
            else:
                everything = [*inputs, *recurrent]
                total = everything[0]
                for v in everything[1:]:
                    total = total + v
                y = c.op(total)
                if c.op.pairs is not None:
                    s.pairs[sl] += c.op.pairs(total).numpy()
                    if s.binary_input and not bool(((total == 0) | (total == 1)).all()):
                        s.binary_input = False
                if c.is_compartment:
                    s.active_updates[sl] += (total != 0).reshape(n, -1).sum(1).numpy()
            if c.emits_spikes:
                s.spikes[sl] += y.reshape(n, -1).sum(1).numpy()
            values[c.name] = y
            if c.name in outputs:
                outputs[c.name][t, sl] = y.numpy()
        for a in fed_back:
            previous[a] = values[a]
