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
2. synapses live with the neurons they feed. Between a source (a compartment node or the
   graph's ``Input``) and a compartment node, the synapse nodes on the way (``Flatten``,
   ``Delay`` and merges between them) are one synapse block, multiplied out as a chip with no
   neuron between them must hold it; its synapses are counted as the paths of nonzero weights
   from source to target (exact for one synapse node, and for chains in which no two paths
   join the same pair, e.g. a pooling with stride = kernel followed by any node; an upper bound
   otherwise). A synapse node that reaches no compartment node is the host's;
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

import torch

from hw_sim.graph.runner import CompiledGraph
from hw_sim.graph.synapses import Synapse
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


def block_synapses(compiled: CompiledGraph) -> dict[str, dict[str, int]]:
    """Rule 2: synapses of the block each source (a compartment node or the ``Input``) feeds each compartment
    node through, ``{target: {source: synapses}}``: the paths through the synapse nodes between them."""
    sources = [c for c in compiled.nodes if c.is_compartment or c.name == compiled.graph.input_name]
    blocks: dict[str, dict[str, int]] = {c.name: {} for c in compiled.nodes if c.is_compartment}
    with torch.no_grad():
        for src in sources:
            values = {src.name: torch.ones((1, *src.out_shape))}
            for c in compiled.nodes:
                if c.name == src.name:
                    continue
                arriving = [values[a] for a in (*c.node.inputs, *c.node.recurrent) if a in values]
                if not arriving:
                    continue
                total = torch.stack(arriving).sum(0)
                if c.is_compartment:
                    blocks[c.name][src.name] = int(round(float(total.double().sum())))
                elif isinstance(c.op, Synapse) and c.op.connect is not None:
                    values[c.name] = c.op.connect(total)
                elif isinstance(c.op, Synapse) and c.op.delay_steps is None:
                    values[c.name] = c.op(total)   # Input, Output, Flatten: connectivity passes through
                else:
                    values[c.name] = total         # Delay: the same connections, later
    return {t: {s: n for s, n in b.items() if n} for t, b in blocks.items()}


def host_synapse_nodes(compiled: CompiledGraph) -> list[str]:
    """Synapse nodes that reach no compartment node (they feed an ``Output`` only): the host's."""
    succ: dict[str, list[str]] = {c.name: [] for c in compiled.nodes}
    for c in compiled.nodes:
        for a in (*c.node.inputs, *c.node.recurrent):
            succ[a].append(c.name)
    host = []
    for c in compiled.nodes:
        if c.fan_out is None:
            continue
        seen, todo = set(), list(succ[c.name])
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo += [] if compiled[n].is_compartment else succ[n]
        if not any(compiled[n].is_compartment for n in seen):
            host.append(c.name)
    return host


def chip_fit(compiled: CompiledGraph, chip: Chip) -> dict:
    """The fit of ``compiled`` on ``chip`` by the module's rule: a plain dict for the report."""
    blocks = block_synapses(compiled)
    rows = []
    for c in compiled.nodes:
        if not c.is_compartment:
            continue
        neurons = math.prod(c.out_shape)
        synapses = sum(blocks[c.name].values())
        memory = synapses * WEIGHT_BITS / 8
        by_neurons = math.ceil(neurons / chip.neurons_per_core)
        by_memory = math.ceil(memory / chip.memory_per_core_bytes)
        rows.append({"node": c.name, "kind": c.node.kind, "neurons": neurons, "synapses": synapses,
                     "synaptic_memory_bytes": int(memory), "cores": max(1, by_neurons, by_memory),
                     "limited_by": "memory" if by_memory > by_neurons else "neurons",
                     "synapses_from": blocks[c.name]})
    cores = sum(r["cores"] for r in rows)
    return {"chip": chip.name, "title": chip.title, "source": chip.source, "note": chip.note,
            "limits": {"cores": chip.cores, "neurons_per_core": chip.neurons_per_core,
                       "memory_per_core_bytes": chip.memory_per_core_bytes, "weight_bits": WEIGHT_BITS},
            "nodes": rows, "cores_needed": cores, "fits": cores <= chip.cores,
            "neurons": sum(r["neurons"] for r in rows), "synapses": sum(r["synapses"] for r in rows),
            "off_chip_synapse_nodes": host_synapse_nodes(compiled),
            "does_not_fit": [] if cores <= chip.cores else [f"{cores} cores needed, {chip.cores} on the chip"]}
