r"""lorsp's fixed-point graph as neuron groups and multiplied-out connections: what SANA-FE is given.

:func:`loihi_groups` reads the integer twin of a graph (:func:`hw_sim.graph.fixed_graph.compile_fixed`)
and returns, without importing SANA-FE:

* one :class:`Group` per spiking compartment node (``LIF``, ``IF``), in Loihi's integers in units of
  2^6, as SANA-FE's ``leaky_integrate_fire`` soma takes them: ``threshold = vth``, ``bias`` the
  bias mantissa (``bias_mant << 6`` is lorsp's bias), ``leak_decay = (4096 - dv) / 4096``; a
  ``CubaLIF`` (a current that decays: SANA-FE decays it in float, Loihi truncates) is refused;
* one :class:`Connection` per weighted node (``Affine``, ``Linear``, ``Conv1d``, ``Conv2d``,
  ``Scale``): the pools and ``Flatten``\ s between its source compartment (or the graph's input)
  and it, and its integer weights, multiplied out into a list ``(source, target, weight)`` of the
  nonzero weights, by running those very nodes on one-hot inputs (so padding, stride, dilation,
  groups and pooled sums are the interpreter's own); a connection fed through a recurrent edge
  (the source's previous step in lorsp) is marked ``recurrent``;
* every group's depth: the connections from the input to it. SANA-FE delivers a spike one step after
  it fires, on every connection; lorsp delivers feed-forward spikes in the same step and recurrent
  ones a step later. So a group at depth ``d`` runs, on SANA-FE, lorsp's step ``t`` at step
  ``t + d`` exactly when every feed-forward connection goes from depth ``d - 1`` to ``d`` and every
  recurrent one stays within one depth; a graph whose paths disagree (a skip connection) is
  refused in one line, since no shift makes it equal.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from deploy.fixed_point import DECAY_UNITY, STATE_SHIFT
from hw_sim.graph.fixed_graph import POOLS, WEIGHTED
from hw_sim.graph.runner import CompiledGraph, CompiledNode
from lorsp.plumbing.errors import LorspError

INPUT = "input"
"""The name of SANA-FE's input group (the graph's ``Input`` node's spikes)."""
PASS = ("Flatten", "Input", "Output")
NEURONS = ("LIF", "IF", "CubaLIF")
"""Compartments SANA-FE's LIF soma can be (a CubaLIF only where its current does not decay)."""
PROBE_ROWS = 256
"""One-hot source rows run through a connection's nodes at once."""


@dataclass
class Group:
    """A spiking compartment node as SANA-FE LIF neurons, Loihi's integers in units of 2^6."""

    name: str
    shape: tuple[int, ...]
    threshold: np.ndarray
    bias: np.ndarray
    leak_decay: np.ndarray
    depth: int = 0

    @property
    def size(self) -> int:
        return int(math.prod(self.shape))


@dataclass
class Connection:
    """A weighted node multiplied out: ``source[i] -> target[j]`` with integer weight ``w``, nonzero only."""

    node: str
    source: str
    target: str
    pre: np.ndarray
    post: np.ndarray
    weight: np.ndarray
    recurrent: bool
    via: list[str] = field(default_factory=list)

    def fan_out(self, source_size: int) -> np.ndarray:
        """Synapses per source neuron: the synapse events one spike of it causes."""
        return np.bincount(self.pre, minlength=source_size).astype(np.float64)


@dataclass
class LoihiGraph:
    """What SANA-FE runs: the input's size, the groups (graph order) and the connections."""

    input_size: int
    groups: list[Group]
    connections: list[Connection]

    @property
    def depth(self) -> int:
        return max(g.depth for g in self.groups)

    def size_of(self, name: str) -> int:
        return self.input_size if name == INPUT else next(g.size for g in self.groups if g.name == name)


def loihi_groups(fixed: CompiledGraph) -> LoihiGraph:
    """The groups, connections and depths of ``fixed`` (module docstring); a one-line LorspError for a misfit."""
    nodes = {c.name: c for c in fixed.nodes}
    for c in fixed.nodes:
        if c.node.kind not in (*PASS, *WEIGHTED, *POOLS, *NEURONS):
            raise LorspError(f"node {c.name!r} is a {c.node.kind}; the SANA-FE cross-check takes LIF and IF "
                             f"neurons, weighted nodes, pools and Flatten")
    groups = [_group(c) for c in fixed.nodes if c.node.kind in NEURONS]
    if not groups:
        raise LorspError("the graph has no spiking node for SANA-FE to run")
    targets = _targets(fixed, nodes)
    connections = [_connection(fixed, nodes, c, targets[c.name]) for c in fixed.nodes if c.node.kind in WEIGHTED]
    _set_depths(groups, connections)
    return LoihiGraph(int(math.prod(fixed.graph.input_shape)), groups, connections)


def _loihi_integers(c: CompiledNode) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(u_factor, v_factor, bias << 6, vth << 6)`` per neuron of compartment node ``c``'s fixed-point op."""
    op = c.op
    if any(w is not None for w in op.direct) or op.current_bias is not None:
        raise LorspError(f"node {c.name!r} takes input without a weighted node (a one-to-one synapse) or a "
                         f"current bias; the SANA-FE cross-check connects weighted nodes only")
    n = op.size
    factor = lambda t, identity: np.full(n, identity, np.int64) if t is None else \
        np.rint(t.numpy() * DECAY_UNITY).astype(np.int64)  # noqa: E731
    integers = lambda t: np.zeros(n, np.int64) if t is None else np.rint(t.numpy()).astype(np.int64)  # noqa: E731
    return factor(op.u_factor, 0), factor(op.v_factor, DECAY_UNITY), integers(op.bias), integers(op.vth)


def _group(c: CompiledNode) -> Group:
    u_factor, v_factor, scaled, vth = _loihi_integers(c)
    if np.any(u_factor != 0):
        raise LorspError(f"{c.node.kind} node {c.name!r} has a decaying current; SANA-FE decays it in float and "
                         f"Loihi truncates it, so it is not the same model")
    if np.any(scaled % (1 << STATE_SHIFT)):
        raise LorspError(f"node {c.name!r}: a bias below 2^6 (negative bias exponent) has no SANA-FE form")
    return Group(c.name, tuple(c.out_shape), threshold=vth >> STATE_SHIFT, bias=scaled >> STATE_SHIFT,
                 leak_decay=v_factor.astype(np.float64) / DECAY_UNITY)


def _targets(fixed: CompiledGraph, nodes: dict[str, CompiledNode]) -> dict[str, str]:
    """The compartment each weighted node feeds (through pass-through nodes); compile_fixed checked it is one."""
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for c in fixed.nodes:
        for a in (*c.node.inputs, *c.node.recurrent):
            succ[a].append(c.name)
    found = {}
    for c in fixed.nodes:
        if c.node.kind not in WEIGHTED:
            continue
        todo, hits = list(succ[c.name]), set()
        while todo:
            n = todo.pop()
            if nodes[n].node.kind in NEURONS:
                hits.add(n)
            else:
                todo += succ[n]
        found[c.name] = hits.pop()
    return found


def _connection(fixed: CompiledGraph, nodes: dict[str, CompiledNode], w: CompiledNode, target: str) -> Connection:
    """Weighted node ``w``'s path back to its one source, run on one-hot rows of the source."""
    path, recurrent, current = [w], False, w
    while True:
        sources = [*current.node.inputs, *current.node.recurrent]
        recurrent = recurrent or bool(current.node.recurrent)
        if len(sources) != 1:
            raise LorspError(f"{w.node.kind} node {w.name!r} sums {len(sources)} sources before its weights; "
                             f"SANA-FE takes one source group per connection")
        source = nodes[sources[0]]
        if source.node.kind in NEURONS or source.name == fixed.graph.input_name:
            break
        if source.node.kind not in (*PASS, *POOLS):
            raise LorspError(f"{w.node.kind} node {w.name!r} is fed by {source.node.kind} node {source.name!r}; "
                             f"SANA-FE connects spiking groups only")
        path.insert(0, source)
        current = source
    name = INPUT if source.name == fixed.graph.input_name else source.name
    shape = fixed.graph.input_shape if name == INPUT else source.out_shape
    pre, post, weight = _multiplied_out(path, tuple(shape))
    return Connection(w.name, name, target, pre, post, weight, recurrent, [c.name for c in path])


def _multiplied_out(path: list[CompiledNode], shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The nonzero entries of the linear map ``path`` as ``(pre, post, weight)``, row by row of one-hot inputs."""
    n = int(math.prod(shape))
    pres, posts, weights = [], [], []
    with torch.no_grad():
        for lo in range(0, n, PROBE_ROWS):
            rows = min(n, lo + PROBE_ROWS) - lo
            x = torch.zeros((rows, n))
            x[torch.arange(rows), torch.arange(lo, lo + rows)] = 1.0
            y = x.reshape(rows, *shape)
            for c in path:
                y = c.op.apply(y)
            y = y.reshape(rows, -1)
            r, col = torch.nonzero(y, as_tuple=True)
            values = y[r, col].double().numpy()
            if np.any(values != np.round(values)):
                raise LorspError(f"node {path[-1].name!r}: a multiplied-out weight is not an integer")
            pres.append(r.numpy() + lo)
            posts.append(col.numpy())
            weights.append(values.astype(np.int64))
    return np.concatenate(pres), np.concatenate(posts), np.concatenate(weights)


def _set_depths(groups: list[Group], connections: list[Connection]) -> None:
    """Each group's depth (feed-forward connections from the input); refuse paths SANA-FE delays differently."""
    depth = {INPUT: 0}
    for g in groups:  # graph order is a topological order of the same-step edges
        found = {depth[c.source] + 1 for c in connections if c.target == g.name and not c.recurrent}
        if len(found) != 1:
            why = "no feed-forward input" if not found else f"feed-forward paths of lengths {sorted(found)}"
            raise LorspError(f"node {g.name!r} has {why}; SANA-FE's one step per connection cannot be shifted "
                             f"onto lorsp's steps")
        depth[g.name] = g.depth = found.pop()
    for c in connections:
        if c.recurrent and depth[c.source] != depth[c.target]:
            raise LorspError(f"recurrent connection {c.node!r} goes from depth {depth[c.source]} to "
                             f"{depth[c.target]}; only a recurrence within one depth keeps lorsp's one-step delay")
