"""The order in which :func:`hw_sim.graph.runner.run_graph` runs a graph node by node over all time steps.

A graph's nodes split into strongly connected components over all its edges (same-step and recurrent).
A component without a cycle is one node, which can take all ``T`` steps of its inputs at once; a
component with one (a recurrent loop: a neuron, its recurrent weights, anything between) must be
stepped, one step of all its nodes after the other, while what feeds it from outside is already known
for every step. :func:`component_order` gives the components in an order in which every component's
outside inputs come first.
"""
from __future__ import annotations

from dataclasses import dataclass

from typing import Sequence

from deploy.nir_graph import GraphNode


@dataclass(frozen=True)
class Component:
    """Node names in the graph's evaluation order; ``stepped``: it holds a cycle, so it runs step by step."""

    names: tuple[str, ...]
    stepped: bool


def component_order(nodes: Sequence[GraphNode]) -> list[Component]:
    """The strongly connected components of the graph of ``nodes`` (in evaluation order), each after every
    component that feeds it; ties go to the component whose first node comes first."""
    index = {node.name: i for i, node in enumerate(nodes)}
    by_name = {node.name: node for node in nodes}
    sources = {node.name: (*node.inputs, *node.recurrent) for node in nodes}
    targets: dict[str, list[str]] = {name: [] for name in index}
    for name, feeds in sources.items():
        for a in feeds:
            targets[a].append(name)
    reach = {name: _reachable(name, targets) for name in index}
    owner: dict[str, int] = {}
    groups: list[list[str]] = []
    for node in nodes:
        if node.name in owner:
            continue
        members = [m.name for m in nodes if m.name in reach[node.name] and node.name in reach[m.name]]
        for m in members:
            owner[m] = len(groups)
        groups.append(members)
    cyclic = [any(a in owner and owner[a] == g for name in members for a in by_name[name].recurrent)
              or len(members) > 1 for g, members in enumerate(groups)]
    needs = [{owner[a] for name in members for a in sources[name]} - {g} for g, members in enumerate(groups)]
    order: list[Component] = []
    done: set[int] = set()
    while len(done) < len(groups):
        ready = min((g for g in range(len(groups)) if g not in done and needs[g] <= done),
                    key=lambda g: index[groups[g][0]])
        done.add(ready)
        order.append(Component(tuple(groups[ready]), cyclic[ready]))
    return order


def _reachable(start: str, targets: dict[str, list[str]]) -> set[str]:
    """Every node a path of edges leads to from ``start``, ``start`` itself included."""
    seen, todo = {start}, [start]
    while todo:
        for b in targets[todo.pop()]:
            if b not in seen:
                seen.add(b)
                todo.append(b)
    return seen
