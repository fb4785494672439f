"""Chip fit of fixed point: what each fixed-point path puts on the chip.

:func:`hw_sim.graph.chip_fit.chip_fit` counts the float graph. Both fixed-point paths place other
parts, and are counted here by the same placement rule (docs/hwsim-nir.md, Chip fit): their
:class:`~hw_sim.graph.chip_fit.Placement` s go through :func:`hw_sim.graph.chip_fit.fit`.

The general path (:mod:`hw_sim.graph.fixed_graph`), :func:`fixed_chip_fit`, on the twin itself:

* synapses are its integer weights that are not 0 (a float weight that 8 bits round to 0 is not
  stored), dense nodes in a row as the one composed block it holds (its nonzero entries, not the
  paths through both nodes);
* a neuron fed without a weighted node takes one-to-one synapses (one per source spike that reaches
  it, through its pools), none where that weight rounds to 0;
* a bias in front of a ``CubaLIF``/``CubaLI`` is one more neuron of that node, always on (the bias
  neuron), and one synapse per neuron whose integer bias weight is not 0 (source ``bias neuron``).

The chain path (:mod:`deploy.fixed_point` on :mod:`deploy.nir_reader`'s network), :func:`chain_chip_fit`: one
block per layer, the dense matrix the reader multiplies out of the synapse nodes between two neuron nodes
(a ``Conv2d`` as its Toeplitz matrix, ``AvgPool2d -> Flatten -> Affine`` as one product; an identity where a
neuron node feeds the next directly), counted as its integer weights that are not 0 (the entries of the
product, not the paths through it), with the layer's neurons; a bias is each compartment's bias mantissa
(no neuron, no synapse).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from deploy.fixed_point import FixedPointLayer
from deploy.network import SpikingNetwork
from hw_sim.graph.chip_fit import Chip, Placement, fit, placements
from hw_sim.graph.fixed_neurons import FixedNeuron
from hw_sim.graph.runner import CompiledGraph, CompiledNode

BIAS_NEURON = "bias neuron"
FIXED_COUNTS = ("the fixed-point general path's placement: nonzero 8-bit integer weights, dense nodes in a row as "
                "one composed block, one-to-one synapses for a neuron fed without a weighted node, and a bias "
                "neuron (one neuron, one synapse per nonzero integer bias weight) for each CubaLIF/CubaLI node "
                "with a bias (hw_sim.graph.fixed_fit)")
CHAIN_COUNTS = ("the fixed-point chain path's placement: one block per layer, the dense matrix it multiplies out "
                "of the synapse nodes between two neuron nodes (its entries, not the paths through them), counted "
                "as its nonzero 8-bit integer weights; a bias is each compartment's bias mantissa, no neuron "
                "(hw_sim.graph.fixed_fit)")


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


def chain_chip_fit(compiled: CompiledGraph, network: SpikingNetwork, fixed: list[FixedPointLayer],
                   chip: Chip) -> dict:
    """The fit on ``chip`` of the chain path's layers: ``network`` (:func:`hw_sim.graph.fixed.chain_network` of
    the float graph ``compiled``) as :func:`deploy.fixed_point.quantise` holds it, ``fixed``."""
    return fit(chain_placements(compiled, network, fixed), chip, [], CHAIN_COUNTS)  # a chain ends in neurons


def chain_placements(compiled: CompiledGraph, network: SpikingNetwork, fixed: list[FixedPointLayer]
                     ) -> list[Placement]:
    """Each layer of the chain at its neuron node: its neurons and the nonzero integer weights of its block, from
    the layer before (the graph's ``Input`` for the first).

    These are the weights the fast backend's bit-accurate ``Dense`` uses: Lava's weight rule
    (:func:`hw_sim.backends.lava_dense.dense_weights`) leaves :func:`deploy.fixed_point.quantise`'s integers as
    they are (even within +-254 where signs mix, within 0..255 or -255..0 otherwise)."""
    sources = [compiled.graph.input_name] + [layer.name for layer in network.layers[:-1]]
    placed = []
    for layer, fx, source in zip(network.layers, fixed, sources):
        synapses = int(np.count_nonzero(fx.weight))
        placed.append(Placement(layer.name, compiled[layer.name].node.kind, layer.size,
                                {source: synapses} if synapses else {}))
    return placed
