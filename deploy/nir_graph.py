r"""Any NIR 1.0.x graph as a flat list of nodes in the order one time step evaluates them.

:func:`flat_graph` takes a :class:`nir.NIRGraph` as :func:`nir.read` gives it and returns a
:class:`FlatGraph`:

* **nested graphs** are opened: node ``n`` of sub-graph ``g`` becomes ``g.n``; an edge into
  ``g`` goes to ``g``'s ``Input`` node(s), an edge out of ``g`` leaves from its ``Output``
  node(s); inner ``Input``/``Output`` nodes pass their input on unchanged;
* **merges**: a node with several incoming edges receives their sum, those from outside its
  own cycle first (snnTorch's ``RLeaky``: ``beta * mem + input + recurrent(spk)``);
* **cycles** (recurrent sub-graphs): in every strongly connected component, the edges that
  leave a neuron node (:data:`NEURON_TYPES`) for a node of the same component carry that
  neuron's output of the *previous* step (zero on the first). Every other edge carries
  the value of the same step. What remains must be acyclic: a cycle with no neuron on it
  has no state to break it and is refused in one line naming its nodes.

Within a step nodes are evaluated in a topological order of the same-step edges (ties
broken by the order the graph lists its nodes). Which node types exist and what they
compute is the simulator's business (``hw_sim.graph``); here a node type outside
:data:`SUPPORTED_TYPES` is refused by name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nir
import numpy as np

from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.tensor_checks import check_array

NEURON_TYPES = ("I", "LI", "IF", "LIF", "CubaLI", "CubaLIF")
"""Nodes with a membrane state: the only ones a cycle may pass through (they hold last step's output)."""
SYNAPSE_TYPES = ("Affine", "Linear", "Scale", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d")
"""Nodes that weight their input: where synaptic operations happen."""
STATELESS_TYPES = ("Input", "Output", "Flatten", "Threshold", "Delay")
SUPPORTED_TYPES = (*STATELESS_TYPES[:2], *SYNAPSE_TYPES, *STATELESS_TYPES[2:], *NEURON_TYPES)
MAX_PARAMETERS = 1 << 24
"""The most values one node's parameter may hold (16M: a 4096 x 4096 synapse block), and one sample's input."""
NON_NUMERIC_FIELDS = ("input_type", "output_type", "metadata")


@dataclass(frozen=True)
class GraphNode:
    """One node of the flattened graph and where its input comes from."""

    name: str
    kind: str
    """The NIR class name (``"LIF"``, ``"Conv2d"``, ...)."""
    node: Any
    """The :mod:`nir` node itself, its parameters as the file holds them."""
    inputs: tuple[str, ...]
    """Nodes whose output of this step is summed into this node's input, in edge order."""
    recurrent: tuple[str, ...] = ()
    """Neuron nodes whose output of the previous step is added after :attr:`inputs`, in edge order
    (where an edge leaves a neuron for its own cycle, e.g. snnTorch's ``RLeaky`` ``lif -> w_rec``)."""

    @property
    def is_neuron(self) -> bool:
        return self.kind in NEURON_TYPES


@dataclass(frozen=True)
class FlatGraph:
    """Every node in evaluation order; one ``Input``; its ``Output`` nodes; the graph's metadata."""

    nodes: tuple[GraphNode, ...]
    input_name: str
    input_shape: tuple[int, ...]
    output_names: tuple[str, ...]
    metadata: dict

    def node(self, name: str) -> GraphNode:
        return next(n for n in self.nodes if n.name == name)

    @property
    def neurons(self) -> list[GraphNode]:
        return [n for n in self.nodes if n.is_neuron]


def flat_graph(graph: nir.NIRGraph, source: str = "NIR graph") -> FlatGraph:
    """:class:`FlatGraph` of ``graph`` (see the module docstring); a one-line LorspError for what cannot run."""
    if not isinstance(graph, nir.NIRGraph):
        raise LorspError(f"{source}: not a NIR graph but a {type(graph).__name__}")
    nodes, edges = _flatten(graph, "", source)
    tops = [n for n in graph.nodes if isinstance(graph.nodes[n], nir.Input)]
    outs = tuple(n for n in graph.nodes if isinstance(graph.nodes[n], nir.Output))
    if len(tops) != 1 or not outs:
        raise LorspError(f"{source}: need exactly one Input node and at least one Output node at the top "
                         f"level, found {len(tops)} and {len(outs)}")
    comp = _components(nodes, edges)
    delayed = {(a, b) for a, b in edges if comp[a] == comp[b] and type(nodes[a]).__name__ in NEURON_TYPES}
    order = _order(nodes, [e for e in edges if e not in delayed], source)
    preds = {n: sorted((a for a, b in edges if b == n and (a, b) not in delayed), key=lambda a: comp[a] == comp[n])
             for n in nodes}
    recs = {n: [a for a, b in edges if b == n and (a, b) in delayed] for n in nodes}
    flat = []
    for name in order:
        kind = type(nodes[name]).__name__
        if name != tops[0] and not preds[name] and not recs[name]:
            raise LorspError(f"{source}: node {name!r} ({kind}) has no incoming edge")
        if kind == "Input" and name == tops[0] and (preds[name] or recs[name]):
            raise LorspError(f"{source}: the Input node {name!r} has an incoming edge")
        flat.append(GraphNode(name, kind, nodes[name], tuple(preds[name]), tuple(recs[name])))
    return FlatGraph(tuple(flat), tops[0], input_shape(graph.nodes[tops[0]], source), outs,
                     dict(graph.metadata or {}))


def input_shape(node: nir.Input, source: str) -> tuple[int, ...]:
    """The Input node's shape: positive whole numbers, at most :data:`MAX_PARAMETERS` values in all."""
    given = node.input_type.get("input") if isinstance(node.input_type, dict) else None
    dims = check_array(given if given is not None else [], "the Input node's shape", source).reshape(-1)
    if dims.size == 0 or dims.dtype.kind not in "iu" or np.any(dims < 1) or \
            float(np.prod(dims.astype(np.float64))) > MAX_PARAMETERS:
        raise LorspError(f"{source}: the Input node's shape {dims.tolist()[:8]} is not a list of positive integers "
                         f"with at most {MAX_PARAMETERS} values in all")
    return tuple(int(d) for d in dims)


def check_values(name: str, node: Any, source: str) -> None:
    """Every parameter of ``node`` is an array of finite real numbers (a convolution's padding may be a word),
    none of more than :data:`MAX_PARAMETERS` values; a one-line LorspError names the node and field."""
    for key, value in vars(node).items():
        if value is None or key in NON_NUMERIC_FIELDS or (key == "padding" and isinstance(value, str)):
            continue
        array = check_array(value, f"{type(node).__name__} node {name!r} field {key!r}", source)
        if array.size > MAX_PARAMETERS:
            raise LorspError(f"{source}: node {name!r} field {key!r} holds {array.size} values; at most "
                             f"{MAX_PARAMETERS} fit a chip layer here")


def _flatten(graph: nir.NIRGraph, prefix: str, source: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Nodes and edges with every nested graph opened (names ``outer.inner``)."""
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    entries: dict[str, list[str]] = {}
    exits: dict[str, list[str]] = {}
    for name, node in graph.nodes.items():
        full = prefix + str(name)
        kind = type(node).__name__
        if isinstance(node, nir.NIRGraph):
            inner, inner_edges = _flatten(node, full + ".", source)
            nodes.update(inner)
            edges += inner_edges
            entries[full] = [full + "." + n for n, v in node.nodes.items() if isinstance(v, nir.Input)]
            exits[full] = [full + "." + n for n, v in node.nodes.items() if isinstance(v, nir.Output)]
            if not entries[full] or not exits[full]:
                raise LorspError(f"{source}: nested graph {full!r} needs an Input and an Output node")
        elif kind not in SUPPORTED_TYPES:
            raise LorspError(f"{source}: NIR node {full!r} is a {kind}, which hw_sim cannot run; "
                             f"supported: {', '.join(SUPPORTED_TYPES)} and nested graphs")
        else:
            check_values(full, node, source)
            nodes[full] = node
    for a, b in graph.edges:
        a, b = prefix + str(a), prefix + str(b)
        for name in (a, b):
            if name not in nodes and name not in entries:
                raise LorspError(f"{source}: edge {a!r} -> {b!r} names a node that does not exist")
        edges += [(x, y) for x in exits.get(a, [a]) for y in entries.get(b, [b])]
    return nodes, list(dict.fromkeys(edges))


def _components(nodes: dict[str, Any], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Strongly connected component of every node (Tarjan's algorithm, iterative)."""
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        succ[a].append(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    comp: dict[str, int] = {}
    stack: list[str] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(succ[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    work.append((w, iter(succ[w])))
                elif w not in comp:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                while True:
                    w = stack.pop()
                    comp[w] = index[v]
                    if w == v:
                        break
    return comp


def _order(nodes: dict[str, Any], edges: list[tuple[str, str]], source: str) -> list[str]:
    """A topological order of the same-step edges (Kahn; ties in node order), or a refusal naming a cycle."""
    indeg = {n: 0 for n in nodes}
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        succ[a].append(b)
        indeg[b] += 1
    rank = {n: i for i, n in enumerate(nodes)}
    ready = sorted((n for n in nodes if indeg[n] == 0), key=rank.get)
    order: list[str] = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for m in succ[n]:
            indeg[m] -= 1
            if indeg[m] == 0:
                ready.append(m)
                ready.sort(key=rank.get)
    if len(order) < len(nodes):
        left = {n: nodes[n] for n in nodes if n not in order}
        comp = _components(left, [(a, b) for a, b in edges if a in left and b in left])
        sizes = [c for c in comp.values()]
        stuck = [n for n in left if sizes.count(comp[n]) > 1 or (n, n) in edges]
        raise LorspError(f"{source}: a cycle through {', '.join(stuck[:6])} has no neuron node "
                         f"({', '.join(NEURON_TYPES)}) to hold its state; hw_sim cannot order it in time")
    return order
