r"""Does a graph fit a Loihi chip? Neurons, synapses and synaptic memory per node, cores by one rule.

Chips (:data:`CHIPS`, published limits; each names its source):

* ``loihi``: 128 neuromorphic cores, 1,024 compartments (neurons) per core, 128 KB of
  synaptic memory per core (M. Davies et al., "Loihi: A Neuromorphic Manycore Processor with
  On-Chip Learning", IEEE Micro 38(1), 2018);
* ``loihi2``: 128 cores, up to 8,192 neurons per core, 192 KB of memory per core shared by
  synapses and neuron state (Intel Labs, "Taking Neuromorphic Computing to the Next Level
  with Loihi 2", technology brief, 2021).

Placement rule (an estimate, not a compiler's placement):

1. every compartment node (a NIR neuron node or a ``Threshold``) gets cores of its own (no
   core holds neurons of two nodes, as Lava places one process per core group);
2. the synapses of a synapse node live with the neurons they feed: a synapse node is charged
   to the first compartment nodes downstream of it (through ``Flatten``/``Delay``/other
   synapse nodes); one that reaches only an ``Output`` is the host's (not on the chip);
   consecutive synapse nodes are counted node by node, not multiplied out as a chip must;
3. a synapse costs ``weight_bits / 8`` bytes (8-bit weights, Lava's ``Dense``), one per
   connection with a nonzero weight, expanded: no weight sharing for convolutions, no index
   bits, no compression;
4. a node needs ``max(ceil(neurons / neurons_per_core), ceil(synapse_bytes / memory_per_core))``
   cores, at least one; the graph fits when the sum is at most the chip's cores.

For Loihi 2 the memory is shared with neuron state, which rule 3 does not charge: its figure
is optimistic there. Rule 3 is pessimistic for convolutions (Loihi 2 shares their weights).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from hw_sim.graph.runner import CompiledGraph
from lorsp.plumbing.registry import Registry

WEIGHT_BITS = 8


@dataclass(frozen=True)
class Chip:
    name: str
    title: str
    cores: int
    neurons_per_core: int
    memory_per_core_bytes: int
    source: str
    note: str = ""


CHIPS: Registry[Chip] = Registry("chip", sort_names=False)
CHIPS.add("loihi", Chip(
    "loihi", "Loihi", cores=128, neurons_per_core=1024, memory_per_core_bytes=128 * 1024,
    source="M. Davies et al., 'Loihi: A Neuromorphic Manycore Processor with On-Chip Learning', "
           "IEEE Micro 38(1), 2018 (128 neuromorphic cores; 1,024 compartments and 128 KB synaptic memory per core)",
    note="16 MB of synaptic memory on the chip in all (128 x 128 KB)"))
CHIPS.add("loihi2", Chip(
    "loihi2", "Loihi 2", cores=128, neurons_per_core=8192, memory_per_core_bytes=192 * 1024,
    source="Intel Labs, 'Taking Neuromorphic Computing to the Next Level with Loihi 2', technology brief, 2021 "
           "(128 neuromorphic cores; up to 8,192 neurons and 192 KB of memory per core)",
    note="the 192 KB are shared by synapses, neuron state and routing; only synapses are charged here"))


def list_chips() -> list[str]:
    return CHIPS.names()


def synapse_owners(compiled: CompiledGraph) -> dict[str, list[str]]:
    """Rule 2: for every synapse node, the compartment nodes its synapses are charged to (empty: the host's)."""
    succ: dict[str, list[str]] = {c.name: [] for c in compiled.nodes}
    for c in compiled.nodes:
        for a in (*c.node.inputs, *c.node.recurrent):
            succ[a].append(c.name)
    owners = {}
    for c in compiled.nodes:
        if c.fan_out is None:
            continue
        found, seen, todo = [], set(), list(succ[c.name])
        while todo:
            n = todo.pop(0)
            if n in seen:
                continue
            seen.add(n)
            if compiled[n].is_compartment:
                found.append(n)
            else:
                todo += succ[n]
        owners[c.name] = found
    return owners


def chip_fit(compiled: CompiledGraph, synapses: dict[str, int], chip: Chip) -> dict:
    """The fit of ``compiled`` on ``chip`` by the module's rule: a plain dict for the report."""
    owners = synapse_owners(compiled)
    charged: dict[str, float] = {c.name: 0.0 for c in compiled.nodes if c.is_compartment}
    host = []
    for name, targets in owners.items():
        if not targets:
            host.append(name)
        for t in targets:
            charged[t] += synapses.get(name, 0) / len(targets)
    rows = []
    for c in compiled.nodes:
        if not c.is_compartment:
            continue
        neurons = math.prod(c.out_shape)
        memory = charged[c.name] * WEIGHT_BITS / 8
        by_neurons = math.ceil(neurons / chip.neurons_per_core)
        by_memory = math.ceil(memory / chip.memory_per_core_bytes)
        rows.append({"node": c.name, "kind": c.node.kind, "neurons": neurons, "synapses": int(round(charged[c.name])),
                     "synaptic_memory_bytes": int(round(memory)), "cores": max(1, by_neurons, by_memory),
                     "limited_by": "memory" if by_memory > by_neurons else "neurons",
                     "synapse_nodes": sorted(n for n, t in owners.items() if c.name in t)})
    cores = sum(r["cores"] for r in rows)
    return {"chip": chip.name, "title": chip.title, "source": chip.source, "note": chip.note,
            "limits": {"cores": chip.cores, "neurons_per_core": chip.neurons_per_core,
                       "memory_per_core_bytes": chip.memory_per_core_bytes, "weight_bits": WEIGHT_BITS},
            "nodes": rows, "cores_needed": cores, "fits": cores <= chip.cores,
            "neurons": sum(r["neurons"] for r in rows), "synapses": sum(r["synapses"] for r in rows),
            "off_chip_synapse_nodes": host,
            "does_not_fit": [] if cores <= chip.cores else
            [f"{cores} cores needed, {chip.cores} on the chip"]}
