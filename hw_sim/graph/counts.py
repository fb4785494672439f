r"""Operation counts of a graph run, per node and per sample, and their energy by the named tables.

Per sample, from :class:`~hw_sim.graph.runner.GraphRun`:

* ``synop`` (synaptic operations): pairs of a nonzero input and a nonzero weight at every
  synapse node (``Affine``, ``Linear``, ``Scale``, ``Conv1d/2d``, ``SumPool2d``, ``AvgPool2d``),
  NeuroBench's rule, bias excluded; ACs where every input the node saw was 0 or 1, MACs
  otherwise (both priced as ``synop``, the kind is in the report);
* ``neuron_update``: every neuron of every compartment node (NIR neurons and ``Threshold``)
  every step; *active* where it received a nonzero input that step or has a constant drive (a nonzero
  ``v_leak``, which Loihi runs as the compartment's bias), as :mod:`hw_sim.energy` counts the chain;
* ``spike``: spikes of the spiking nodes (``IF``, ``LIF``, ``CubaLIF``, ``Threshold``);
  ``spike_packet``: those of nodes that feed another node than an ``Output`` (sent on the chip);
* ``mac``: the same graph run densely, every step: one MAC per synapse (connection) of every
  synapse node plus one per neuron update, as :mod:`hw_sim.energy` counts it for the chain.

Energy per sample is :func:`hw_sim.energy.energy_per_image` of the totals with each table.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw_sim import energy
from hw_sim.graph.runner import CompiledGraph, GraphRun


@dataclass(frozen=True)
class GraphCounts:
    """Totals per sample (mean over samples) of every operation of :data:`hw_sim.energy.OPERATIONS`."""

    per_op: dict[str, float]
    input_spikes: float
    output_spikes: float

    def totals(self) -> dict[str, float]:
        return dict(self.per_op)


def connections(compiled: CompiledGraph) -> dict[str, int]:
    """Synapses (input-output pairs with a nonzero weight) of every synapse node, as a chip holds them expanded."""
    return {c.name: int(round(float(c.fan_out.sum()))) for c in compiled.nodes if c.fan_out is not None}


def node_rows(compiled: CompiledGraph, run: GraphRun) -> list[dict]:
    """One plain dict per node: kind, shapes, and per-sample spikes, synops, neuron updates (mean, min, max)."""
    synapses = connections(compiled)
    rows = []
    for c in compiled.nodes:
        s = run.stats[c.name]
        neurons = int(np.prod(c.out_shape)) if c.is_compartment else 0
        row = {"name": c.name, "kind": c.node.kind, "in_shape": list(c.in_shape), "out_shape": list(c.out_shape),
               "inputs": list(c.node.inputs), "recurrent_inputs": list(c.node.recurrent),
               "neurons": neurons, "synapses": synapses.get(c.name, 0)}
        if c.emits_spikes:
            row["spikes_per_sample"] = _summary(s.spikes)
            row["firing_rate"] = float(s.spikes.mean() / (run.steps * neurons)) if neurons else 0.0
        if c.name in synapses:
            row["synops_per_sample"] = _summary(s.pairs)
            row["synop_kind"] = "AC" if s.binary_input else "MAC"
            row["dense_macs_per_sample"] = float(run.steps * synapses[c.name])
        if neurons:
            row["neuron_updates_per_sample"] = float(run.steps * neurons)
            row["active_neuron_updates_per_sample"] = _summary(s.active_updates)
        rows.append(row)
    return rows


def _summary(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(values.mean()), "min": float(values.min()), "max": float(values.max())}


def graph_counts(compiled: CompiledGraph, run: GraphRun, input_spikes: float) -> GraphCounts:
    """The totals :func:`hw_sim.energy.energy_per_image` prices, per sample."""
    rows = {r["name"]: r for r in node_rows(compiled, run)}
    outputs = set(compiled.graph.output_names)
    feeds_chip = {a for c in compiled.nodes if c.name not in outputs for a in (*c.node.inputs, *c.node.recurrent)}
    mean = lambda r, k: r[k]["mean"] if k in r else 0.0  # noqa: E731
    updates = sum(r.get("neuron_updates_per_sample", 0.0) for r in rows.values())
    active = sum(mean(r, "active_neuron_updates_per_sample") for r in rows.values())
    spikes = sum(mean(r, "spikes_per_sample") for r in rows.values())
    packets = sum(mean(r, "spikes_per_sample") for n, r in rows.items() if n in feeds_chip)
    out_spikes = sum(mean(rows[a], "spikes_per_sample") for o in outputs for a in compiled.graph.node(o).inputs)
    per_op = {"synop": sum(mean(r, "synops_per_sample") for r in rows.values()),
              "neuron_update_active": active, "neuron_update_inactive": updates - active,
              "spike": spikes, "spike_packet": packets,
              "mac": sum(r.get("dense_macs_per_sample", 0.0) for r in rows.values()) + updates}
    return GraphCounts(per_op, input_spikes, out_spikes)


def energy_lines(counts: GraphCounts) -> list[dict]:
    """:func:`hw_sim.energy.energy_per_image` with every registered table, in the registry's order."""
    return [energy.energy_per_image(counts, energy.get_table(n)) for n in energy.list_tables()]
