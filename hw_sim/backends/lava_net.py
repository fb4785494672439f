r"""A general graph as Lava processes, described without importing Lava: neuron nodes and synapse blocks.

:mod:`hw_sim.graph.lava_plan` builds a :class:`LavaNet` from a compiled NIR graph;
:mod:`hw_sim.backends.lava_graph` makes it Lava processes and runs it. Every compartment node
of the graph (a NIR neuron node or a ``Threshold``) is one :class:`LavaNeurons` (one ``LIFReset``
process: float Lava takes ``du``, ``dv`` and ``vth`` per neuron); every synapse block between a
source (the graph's input or a compartment node) and a compartment node, the synapse nodes
between them multiplied out, is one :class:`LavaBlock` (one ``Dense`` or ``Sparse``, a
``DelayDense``/``DelaySparse`` where it must wait).

Mode. A float net (:mod:`hw_sim.graph.lava_plan`) holds Lava's float parameters and runs its
``floating_pt`` models; a fixed net (:mod:`hw_sim.graph.lava_fixed_plan`, ``mode="fixed"``) holds
Loihi's integers (12-bit ``du``/``dv``, 17-bit ``vth`` mantissa, 13-bit bias mantissa with its
exponent, 8-bit weights with a weight exponent per block) and runs the ``fixed_pt`` models
(``PyLifResetModelBitAcc``, ``PyDenseModelBitAcc``, ``PySparseModelBitAcc``).

Time. Lava's ``LIF`` takes its input and spikes in the same step; every ``Dense`` hands on in step
``s + 1`` what it got in step ``s``. A node takes step ``t`` of sample ``n`` on Lava step
``first + n T + t`` (:attr:`LavaNeurons.first`; the input source sends it on
``LavaNet.input_first + n T + t``). A block from ``S`` to ``B`` that, in the graph interpreter,
carries ``S``'s output of ``delta`` steps before (0: same step; 1: a recurrent edge; more through
``Delay`` nodes) waits ``first(B) - first(S) - 1 + delta`` extra steps (:attr:`LavaBlock.delay`).
Where ``delta >= 1``, ``first(B) = first(S)``, and a Lava ``Reset`` zeroes the block's buffer at
``S``'s last step of every sample, so no sample's spikes reach the next (:attr:`LavaBlock.clear`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse


@dataclass(frozen=True)
class LavaNeurons:
    """One compartment node as one Lava ``LIFReset``: ``u = (1 - du) u + a_in``; ``v = (1 - dv) v + u + bias``;
    spike where ``v > vth``, then ``v = 0``. Arrays are per neuron (the node's flattened shape)."""

    name: str
    kind: str
    du: np.ndarray
    dv: np.ndarray
    vth: np.ndarray
    bias: np.ndarray
    first: int
    """The Lava step on which the node takes step 0 of the first sample."""
    readout: bool = False
    """A membrane read-out (``LI``, ``I``, ``CubaLI``): ``vth`` is infinite and a ``Monitor`` probes ``v``."""
    recorded: bool = True
    """False for a helper neuron of no graph node (the always-on source of constant currents): not read back."""
    bias_exp: np.ndarray | None = None
    """A fixed net's bias exponent per neuron (``bias_mant << bias_exp``); None: 0 (a float net)."""

    @property
    def size(self) -> int:
        return int(self.bias.size)


@dataclass(frozen=True)
class LavaBlock:
    """The multiplied-out synapses from ``source`` to ``target``: ``a_in += weight @ s`` (float64)."""

    source: str
    target: str
    weight: sparse.csr_matrix
    """``(target size, source size)``, the target's input gain folded into its rows."""
    delay: int = 0
    """Steps it waits beyond Lava's one (``DelayDense``/``DelaySparse`` where above 0)."""
    clear: bool = False
    """Zeroed by a Lava ``Reset`` at the source's last step of every sample (the block carries a past step)."""
    graded: bool = False
    """Its source sends numbers, not spikes (graded input): ``num_message_bits = 24``."""
    weight_exp: int = 0
    """A fixed net's weight exponent: Lava's bit-accurate synapse adds ``(weight @ s) << weight_exp``."""

    @property
    def density(self) -> float:
        rows, cols = self.weight.shape
        return self.weight.nnz / max(1, rows * cols)


@dataclass(frozen=True)
class LavaNet:
    """Everything :mod:`hw_sim.backends.lava_graph` builds: the input, the neuron nodes, the blocks."""

    input_name: str
    input_size: int
    input_first: int
    neurons: tuple[LavaNeurons, ...]
    blocks: tuple[LavaBlock, ...]
    mode: str = "float"
    """``float`` (Lava's ``floating_pt`` models) or ``fixed`` (its bit-accurate ``fixed_pt`` models, integers)."""

    def steps(self, samples: int, steps: int) -> int:
        """Lava steps that ``samples`` samples of ``steps`` steps take, the pipeline drained."""
        return max([self.input_first, *(n.first for n in self.neurons)]) + samples * steps - 1
