r"""Energy per image from counted operations, with per-operation tables that name their source.

Counting (per image, from the simulated spikes; :func:`count_operations`):

* ``synop``: synaptic events by NeuroBench's rule, :func:`lorsp.snn_stats.synops_per_sample`
  (pairs of a spike and a nonzero weight of the weights the chip holds; bias excluded);
* ``neuron_update_active`` / ``neuron_update_inactive``: every neuron is updated every step;
  an update is *active* when the neuron received at least one synaptic event that step or
  has a nonzero bias (its state changes), *inactive* otherwise;
* ``spike``: neuron spikes; ``spike_packet``: spikes sent to another layer on the chip
  (every layer but the last);
* ``mac``: the same network run densely on a conventional processor, every step:
  ``in x out`` MACs per layer plus one MAC per neuron update (``beta v + I``).

.. math::

    E_{\text{image}} = \sum_{\text{op}} n_{\text{op}}\; e_{\text{op}}

The tables leave out data movement: spikes sent from the host to the chip and back,
routing hops between cores (they depend on the placement of neurons on cores), memory
traffic of the dense alternative, and static power. :func:`left_out` lists those lines
with their counts where there is one; they are reported apart, never added to a total.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lorsp.plumbing.registry import Registry
from lorsp.snn_stats import synops_per_sample

OPERATIONS = ("synop", "neuron_update_active", "neuron_update_inactive", "spike", "spike_packet", "mac")


@dataclass(frozen=True)
class EnergyTable:
    """Energy per operation in pJ, and where the figures come from."""

    name: str
    title: str
    source: str
    pj: dict[str, float]
    note: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.pj) - set(OPERATIONS)
        if unknown:
            raise ValueError(f"energy table {self.name}: unknown operations {sorted(unknown)}")


TABLES: Registry[EnergyTable] = Registry("energy table", sort_names=False)  # reports keep this order


def list_tables() -> list[str]:
    """The names of every energy table, in registration order (the order reports show them)."""
    return TABLES.names()


def get_table(name: str) -> EnergyTable:
    """The table ``name``; a one-line LorspError listing the tables otherwise."""
    return TABLES.get(name)


def register_table(table: EnergyTable) -> EnergyTable:
    """Add a per-operation table under its own name."""
    return TABLES.add(table.name, table)


register_table(EnergyTable(
    name="loihi-davies2018", title="Loihi (Davies et al. 2018)",
    source="M. Davies et al., 'Loihi: A Neuromorphic Manycore Processor with On-Chip Learning', "
           "IEEE Micro 38(1), 2018, Table 2 (pre-silicon figures)",
    pj={"synop": 23.6, "neuron_update_active": 81.0, "neuron_update_inactive": 52.0, "spike_packet": 1.7},
    note="synaptic spike operation 23.6 pJ (the table's minimum); spike packet = 'within-tile spike energy'; "
         "synaptic update 120 pJ is learning only and not used"))
register_table(EnergyTable(
    name="loihi-sanafe", title="Loihi, calibrated (SANA-FE)",
    source="SANA-FE arch/loihi.yaml, github.com/SLAM-Lab/SANA-FE (Boyle et al., IEEE TCAD 2025; "
           "calibrated against Loihi measurements)",
    pj={"synop": 35.5, "neuron_update_active": 72.8, "neuron_update_inactive": 51.2, "spike": 69.3,
        "spike_packet": 111.0},
    note="soma: energy_access_neuron 51.2 pJ every neuron every step (inactive), + energy_update_neuron 21.6 = "
         "72.8 pJ when updated (active), energy_spike_out 69.3 pJ per spike; loihi_dense_synapse "
         "energy_process_spike 35.5 pJ per synop; axon out energy_message_out 111.0 pJ per packet "
         "(76.8 pJ before SANA-FE commit 95a76c0, January 2024)"))

HOROWITZ_SOURCE = "M. Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC 2014, 45 nm"
HOROWITZ_PJ: dict[str, dict[str, float]] = {
    "fp32": {"mult": 3.7, "add": 0.9},
    "fp16": {"mult": 1.1, "add": 0.4},
    "int8": {"mult": 0.2, "add": 0.03},
}
"""pJ per arithmetic operation at 45 nm by number format (Horowitz 2014): one multiply, one add."""
_HOROWITZ_LABELS = {"fp32": "fp32", "fp16": "fp16", "int8": "8-bit"}


def _horowitz_dense(precision: str) -> EnergyTable:
    ops = HOROWITZ_PJ[precision]
    return EnergyTable(
        name=f"horowitz-{precision}-dense", title=f"Dense {precision} on a conventional processor (Horowitz 2014)",
        source=HOROWITZ_SOURCE, pj={"mac": round(ops["mult"] + ops["add"], 6)},
        note=f"{_HOROWITZ_LABELS[precision]} mult {ops['mult']:g} pJ + add {ops['add']:g} pJ; arithmetic only")


DENSE_TABLES = {precision: register_table(_horowitz_dense(precision)).name for precision in HOROWITZ_PJ}
"""The dense-processor table of each precision: ``{"fp32": "horowitz-fp32-dense", ...}``."""


@dataclass(frozen=True)
class OperationCounts:
    """Operations per image, per layer where it applies."""

    input_spikes: float
    synops: list[float]
    spikes: list[float]
    neuron_updates: list[float]
    active_neuron_updates: list[float]
    dense_macs: list[float]

    def totals(self) -> dict[str, float]:
        """Counts of every operation in :data:`OPERATIONS`, per image."""
        updates, active = sum(self.neuron_updates), sum(self.active_neuron_updates)
        return {"synop": sum(self.synops), "neuron_update_active": active,
                "neuron_update_inactive": updates - active, "spike": sum(self.spikes),
                "spike_packet": sum(self.spikes[:-1]), "mac": sum(self.dense_macs) + updates}


def count_operations(weights: list[np.ndarray], biases: list[np.ndarray], spikes_in: np.ndarray,
                     layer_spikes: list[np.ndarray]) -> OperationCounts:
    """Per-image counts for layers ``weights[k]`` (out x in) driven by ``spikes_in`` ``(T, N, D)``."""
    inputs = [spikes_in, *layer_spikes[:-1]]
    n = spikes_in.shape[1]
    synops, active, updates, macs = [], [], [], []
    for w, b, x, s in zip(weights, biases, inputs, layer_spikes):
        xt = torch.from_numpy(np.asarray(x, dtype=np.float32))
        synops.append(float(synops_per_sample(xt, torch.from_numpy(np.asarray(w))).mean()))
        reached = torch.einsum("tnd,od->tno", (xt != 0).float(), torch.from_numpy((np.asarray(w) != 0)).float()) > 0
        reached |= torch.from_numpy(np.asarray(b) != 0)
        active.append(float(reached.sum()) / n)
        updates.append(float(s.shape[0] * s.shape[2]))
        macs.append(float(s.shape[0] * w.shape[0] * w.shape[1]))
    return OperationCounts(input_spikes=float(np.asarray(spikes_in).sum()) / n, synops=synops,
                           spikes=[float(np.asarray(s).sum()) / n for s in layer_spikes],
                           neuron_updates=updates, active_neuron_updates=active, dense_macs=macs)


def energy_per_image(counts: OperationCounts, table: EnergyTable) -> dict:
    """The table applied to the counts: one line per operation it prices, and the total."""
    totals = counts.totals()
    lines = [{"operation": op, "count": totals[op], "pj_each": pj, "pj": totals[op] * pj}
             for op, pj in table.pj.items()]
    total = sum(line["pj"] for line in lines)
    return {"table": table.name, "title": table.title, "source": table.source, "note": table.note,
            "lines": lines, "total_pj": total, "total_nj": total / 1e3}


def left_out(counts: OperationCounts) -> list[dict]:
    """Data movement no table prices: shown apart, with a count where there is one."""
    return left_out_io(counts.input_spikes, counts.spikes[-1], "gate spikes")


def left_out_io(input_spikes: float, output_spikes: float, outputs: str) -> list[dict]:
    """:func:`left_out` from the spikes sent to the chip and the ``outputs`` it sends back, per sample."""
    return [
        {"line": "host -> chip input spikes", "count": input_spikes,
         "why": "I/O between the host and the chip is not in the per-operation tables"},
        {"line": f"chip -> host {outputs}", "count": output_spikes,
         "why": "I/O between the host and the chip is not in the per-operation tables"},
        {"line": "mesh hops between cores", "count": None,
         "why": "depends on where neurons are placed; Davies 2018 gives 3.0-4.0 pJ per hop"},
        {"line": "memory traffic of the dense alternative", "count": None,
         "why": "Horowitz's MAC figures are arithmetic only; SRAM/DRAM reads cost more than the MACs"},
        {"line": "static (leakage) power", "count": None, "why": "not in Davies 2018 nor in the MAC tables"},
    ]

