"""Chip fit of the fixed-point general path: what its integer twin puts on the chip.

:func:`hw_sim.graph.chip_fit.chip_fit` counts the float graph. The general path
(:mod:`hw_sim.graph.fixed_graph`) places other parts, and :func:`fixed_chip_fit` counts them by
the same placement rule (docs/hwsim-nir.md, Chip fit) on the twin itself:

* synapses are its integer weights that are not 0 (a float weight that 8 bits round to 0 is not
  stored), dense nodes in a row as the one composed block it holds (its nonzero entries, not the
  paths through both nodes);
* a neuron fed without a weighted node takes one-to-one synapses (one per source spike that reaches
  it, through its pools), none where that weight rounds to 0;
* a bias in front of a ``CubaLIF``/``CubaLI`` is one more neuron of that node, always on (the bias
  neuron), and one synapse per neuron whose integer bias weight is not 0 (source ``bias neuron``).
"""
from __future__ import annotations

import dataclasses

import torch

from hw_sim.graph.chip_fit import Chip, Placement, fit, placements
from hw_sim.graph.fixed_neurons import FixedNeuron
from hw_sim.graph.runner import CompiledGraph, CompiledNode

BIAS_NEURON = "bias neuron"
FIXED_COUNTS = ("the fixed-point general path's placement: nonzero 8-bit integer weights, dense nodes in a row as "
                "one composed block, one-to-one synapses for a neuron fed without a weighted node, and a bias "
                "neuron (one neuron, one synapse per nonzero integer bias weight) for each CubaLIF/CubaLI node "
                "with a bias (hw_sim.graph.fixed_fit)")


def fixed_chip_fit(fixed: CompiledGraph, chip: Chip) -> dict:
    """The fit on ``chip`` of ``fixed``, the general path's integer twin
    (:func:`hw_sim.graph.fixed_graph.compile_fixed`)."""
    placed = [_with_bias_neuron(p, fixed[p.node].op) for p in placements(fixed, _placed_input)]
    return fit(placed, chip, [], FIXED_COUNTS)  # the general path refuses a weighted node that feeds no neuron


def _placed_input(c: CompiledNode, i: int) -> bool:
    """Whether input ``i`` of compartment ``c`` has synapses: not where its one-to-one weight rounded to 0."""
    direct = c.op.direct if isinstance(c.op, FixedNeuron) else ()
    return not (i < len(direct) and direct[i] == 0)


def _with_bias_neuron(p: Placement, op: object) -> Placement:
    """``p`` with the bias neuron and its synapses, where the compartment takes a bias through one."""
    if not isinstance(op, FixedNeuron) or op.current_bias is None:
        return p
    synapses = int(torch.count_nonzero(op.current_bias))
    return dataclasses.replace(p, neurons=p.neurons + 1, bias_neurons=1,
                               synapses_from={**p.synapses_from, BIAS_NEURON: synapses})
