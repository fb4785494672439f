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

:func:`chip_fit` counts the float graph (:data:`FLOAT_COUNTS`); each fixed-point path places other
parts (integer weights that round to 0 are not stored, composed dense blocks; the general path's bias
neurons) and :mod:`hw_sim.graph.fixed_fit` counts those by the same rule, through :class:`Placement` and
:func:`fit` (the general path through :func:`placements` on its integer twin).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from hw_sim.graph.runner import CompiledGraph, CompiledNode
from hw_sim.graph.synapses import Synapse
from lorsp.plumbing.registry import Registry

WEIGHT_BITS = 8
FLOAT_COUNTS = ("the float graph: every NIR weight that is nonzero in float32, synapse nodes in a row counted as "
                "paths (an upper bound where two paths join the same pair of neurons); the fixed-point run's own "
                "placement is counted apart (runs.fixed.chip_fit)")


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


def block_synapses(compiled: CompiledGraph, placed: Callable[[CompiledNode, int], bool] | None = None
                   ) -> dict[str, dict[str, int]]:
    """Rule 2: synapses of the block each source (a compartment node or the ``Input``) feeds each compartment
    node through, ``{target: {source: synapses}}``: the paths through the synapse nodes between them.

    ``placed(c, i)``: whether the chip holds synapses for input ``i`` of compartment ``c`` (same-step inputs,
    then recurrent ones; all of them where None)."""
    sources = [c for c in compiled.nodes if c.is_compartment or c.name == compiled.graph.input_name]
    blocks: dict[str, dict[str, int]] = {c.name: {} for c in compiled.nodes if c.is_compartment}
    with torch.no_grad():
        for src in sources:
            values = {src.name: torch.ones((1, *src.out_shape))}
            for c in compiled.nodes:
                if c.name == src.name:
                    continue
                arriving = [values[a] for i, a in enumerate((*c.node.inputs, *c.node.recurrent))
                            if a in values and (placed is None or not c.is_compartment or placed(c, i))]
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


@dataclass(frozen=True)
class Placement:
    """What one compartment node puts on the chip: its neurons (``bias_neurons`` of them always-on neurons
    that carry a bias as synapses) and its synapses per source."""

    node: str
    kind: str
    neurons: int
    synapses_from: dict[str, int] = field(default_factory=dict)
    bias_neurons: int = 0


def placements(compiled: CompiledGraph, placed: Callable[[CompiledNode, int], bool] | None = None
               ) -> list[Placement]:
    """Every compartment node of ``compiled`` with its neurons and its blocks' synapses (rules 1 and 2)."""
    blocks = block_synapses(compiled, placed)
    return [Placement(c.name, c.node.kind, math.prod(c.out_shape), blocks[c.name])
            for c in compiled.nodes if c.is_compartment]


def chip_fit(compiled: CompiledGraph, chip: Chip) -> dict:
    """The fit of the float graph ``compiled`` on ``chip`` by the module's rule: a plain dict for the report."""
    return fit(placements(compiled), chip, host_synapse_nodes(compiled), FLOAT_COUNTS)


def fit(placed: list[Placement], chip: Chip, host: list[str], counts: str) -> dict:
    """Rules 3 and 4 on ``placed``: bytes and cores per node and in all; ``host``: synapse nodes left to the
    host; ``counts``: which graph (float, or a fixed-point run's placement) the figures count."""
    rows = []
    for p in placed:
        synapses = sum(p.synapses_from.values())
        memory = synapses * WEIGHT_BITS / 8
        by_neurons = math.ceil(p.neurons / chip.neurons_per_core)
        by_memory = math.ceil(memory / chip.memory_per_core_bytes)
        rows.append({"node": p.node, "kind": p.kind, "neurons": p.neurons, "synapses": synapses,
                     "synaptic_memory_bytes": int(memory), "cores": max(1, by_neurons, by_memory),
                     "limited_by": "memory" if by_memory > by_neurons else "neurons",
                     "synapses_from": dict(p.synapses_from)}
                    | ({"bias_neurons": p.bias_neurons} if p.bias_neurons else {}))
    cores = sum(r["cores"] for r in rows)
    return {"chip": chip.name, "title": chip.title, "source": chip.source, "note": chip.note, "counts": counts,
            "limits": {"cores": chip.cores, "neurons_per_core": chip.neurons_per_core,
                       "memory_per_core_bytes": chip.memory_per_core_bytes, "weight_bits": WEIGHT_BITS},
            "nodes": rows, "cores_needed": cores, "fits": cores <= chip.cores,
            "neurons": sum(r["neurons"] for r in rows), "synapses": sum(r["synapses"] for r in rows),
            "bias_neurons": sum(p.bias_neurons for p in placed), "off_chip_synapse_nodes": list(host),
            "synaptic_memory_bytes": sum(r["synaptic_memory_bytes"] for r in rows),
            "does_not_fit": [] if cores <= chip.cores else [f"{cores} cores needed, {chip.cores} on the chip"]}
