r"""The fixed-point twin of a NIR graph as Lava's bit-accurate processes: a :class:`LavaNet` of Loihi's integers.

:func:`hw_sim.graph.fixed_graph.compile_fixed` already chose every compartment's scale and integers
(the general fixed-point path, which the fast backend runs). :func:`lava_fixed_net` hands the very
same integers to Lava (lava-nc 0.10.0, ``fixed_pt``), so its spikes must be the fast backend's bit
for bit:

* every compartment node (``LIF``, ``CubaLIF``, ``IF``, read-outs ``LI``, ``I``, ``CubaLI``) is one
  ``LIFReset`` (``PyLifResetModelBitAcc``) with the twin's per-neuron ``du``, ``dv``, the 17-bit
  ``vth`` mantissa, and the bias as ``bias_mant`` with ``bias_exp = 6`` (a leaky node's constant drive
  ``(dt/tau) v_leak`` included: LoRSP's pixel gates' per-pixel drive). A read-out's ``vth`` mantissa is
  ``2^17``: ``v`` is held within ``2^23 - 1``, so it never spikes, and a ``Monitor`` reads its integer ``v``;
* every synapse block (the twin's integer weighted nodes, ``SumPool2d`` counts, ``Flatten``,
  ``Delay``, a one-to-one synapse's integer weight, all multiplied out as the float plan does:
  :func:`hw_sim.graph.lava_plan.blocks_from`) is one ``Dense``/``Sparse`` (``DelayDense``/``DelaySparse``
  where it waits) with ``num_message_bits = 0`` (binary spikes) and 8-bit weights: the smallest weight
  exponent ``e >= 0`` with every weight ``w = m 2^e``, ``m`` one Lava keeps unchanged (``|m| <= 255`` of one
  sign; even and within ``-256..254`` where signs mix, as ``truncate_weights`` drops the lowest bit);
* a bias in front of a ``CubaLIF``/``CubaLI`` (the twin's ``current_bias``, added to the dendrite) comes
  from an always-on compartment (``du = 4095``, ``dv = 0``, ``vth = 0``, bias ``1 << 6``: a spike every step)
  through a block of those integers, as on the chip.

Timing and per-sample resets are the float plan's (:func:`hw_sim.graph.lava_plan.line_up`). Refused in
one line, naming the node: a ``Threshold`` (Lava's 12-bit ``dv`` keeps at least ``1/4096`` of a voltage, so a
compartment cannot forget it), and a block whose multiplied-out weights no 8-bit mantissa and exponent hold
(two paths into one neuron that sum past them).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy import sparse

from deploy.fixed_point import BIAS_EXP, BIAS_MANT_MAX, DECAY_UNITY, STATE_SHIFT, VTH_MAX
from hw_sim.backends.lava_net import LavaNet, LavaNeurons
from hw_sim.graph.fixed_neurons import CURRENT_OFFSET, FixedNeuron
from hw_sim.graph.lava_plan import ALWAYS_ON, PASSING, blocks_from, line_up
from hw_sim.graph.runner import CompiledGraph, CompiledNode
from lorsp.plumbing.errors import LorspError

WEIGHT_EXP_MAX = 7
"""The largest weight exponent tried (Loihi 2's synapses take a small signed exponent per block)."""
READOUT_VTH = 2 ** 17
"""A read-out's ``vth`` mantissa: ``2^23`` once shifted by 6, above the largest voltage ``2^23 - 1``."""


def lava_fixed_net(fixed: CompiledGraph) -> LavaNet:
    """The bit-accurate Lava net of the fixed-point twin ``fixed`` (module docstring); a one-line LorspError
    naming what Lava's fixed-point processes cannot hold (:func:`hw_sim.graph.lava_check.check_lava_fixed` says
    it is ``--backend lava --mode fixed``)."""
    comps = [c for c in fixed.nodes if c.is_compartment]
    for c in fixed.nodes:
        if not c.is_compartment and c.node.kind not in PASSING:
            raise LorspError(f"node {c.name!r} is a {c.node.kind}, which no Lava synapse block holds")
    for c in comps:
        if not isinstance(c.op, FixedNeuron) or c.op.stateless:
            raise LorspError(f"{c.node.kind} node {c.name!r} keeps no state, but Lava's bit-accurate LIF keeps at "
                             f"least 1/4096 of its voltage (dv is 12 bits)")
    ops = {c.name: (lambda x: x) if c.node.kind == "Delay" else c.op.apply
           for c in fixed.nodes if c.node.kind in PASSING}

    def direct(c: CompiledNode, i: int) -> float | None:
        """The one-to-one synapse weight on input edge ``i`` of compartment ``c`` (None: a weighted block)."""
        return c.op.direct[i] if i < len(c.op.direct) else None

    input_node = fixed[fixed.graph.input_name]
    raw: list[tuple[str, str, int, sparse.csr_matrix]] = []
    for src in [input_node, *comps]:
        n = math.prod(src.out_shape)
        raw += [(src.name, t, d, m) for (t, d), m in blocks_from(fixed, src, n, ops, direct).items()]
    currents = [c for c in comps if c.op.current_bias is not None]
    raw += [(ALWAYS_ON, c.name, 0, sparse.csr_matrix(c.op.current_bias.numpy().reshape(-1, 1))) for c in currents]
    exps, held = [], []
    for s, t, d, m in raw:
        weights, e = lava_weights(m, f"the block from {s!r} to {t!r}")
        held.append((s, t, d, weights))
        exps.append(e)
    neurons = [neuron_integers(c) for c in comps]
    if currents:
        neurons.append(LavaNeurons(ALWAYS_ON, "LIF", du=np.full(1, DECAY_UNITY - 1), dv=np.zeros(1, np.int64),
                                   vth=np.zeros(1, np.int64), bias=np.ones(1, np.int64),
                                   bias_exp=np.full(1, BIAS_EXP), first=0, recorded=False))
    return line_up(input_node.name, math.prod(input_node.out_shape), neurons, held, mode="fixed", weight_exps=exps)


def lava_weights(matrix: sparse.csr_matrix, what: str) -> tuple[sparse.csr_matrix, int]:
    """``matrix`` (integers) as the 8-bit mantissas Lava's bit-accurate synapse keeps unchanged and their exponent:
    the smallest ``e`` with ``matrix = m 2^e``; a one-line LorspError naming ``what`` where none does."""
    data = np.asarray(matrix.data, dtype=np.float64)
    if not np.all(data == np.round(data)):
        raise LorspError(f"{what} holds weights that are not integers")
    ints = data.astype(np.int64)
    mixed = bool(ints.size and ints.min() < 0 < ints.max())
    for e in range(WEIGHT_EXP_MAX + 1):
        if np.any(ints % (1 << e)):
            break
        m = ints >> e
        kept = (np.all(m % 2 == 0) and m.min() >= -256 and m.max() <= 254) if mixed else np.abs(m).max() <= 255
        if kept:
            return sparse.csr_matrix((m, matrix.indices, matrix.indptr), shape=matrix.shape), e
    raise LorspError(f"{what} sums weights up to {int(np.abs(ints).max())}, which no 8-bit Lava weight and exponent "
                     f"hold{' (signs mixed: even mantissas)' if mixed else ''}")


def neuron_integers(c: CompiledNode) -> LavaNeurons:
    """Compartment ``c``'s ``LIFReset`` integers, read back from its :class:`FixedNeuron` and checked against Lava's
    register widths."""
    op: FixedNeuron = c.op
    n = op.size
    per = lambda t, default: np.full(n, default) if t is None else t.numpy().reshape(-1)  # noqa: E731
    du = DECAY_UNITY - CURRENT_OFFSET - per(op.u_factor, 0.0) * DECAY_UNITY
    dv = DECAY_UNITY - per(op.v_factor, 1.0) * DECAY_UNITY
    vth = np.full(n, float(READOUT_VTH)) if op.readout else op.vth.numpy() / 2 ** STATE_SHIFT
    bias = per(op.bias, 0.0) / 2 ** BIAS_EXP
    checks = {"du": (du, 0, DECAY_UNITY - 1), "dv": (dv, 0, DECAY_UNITY - 1),
              "vth": (vth, 0, READOUT_VTH if op.readout else VTH_MAX),
              "bias_mant": (bias, -BIAS_MANT_MAX - 1, BIAS_MANT_MAX)}
    for name, (values, low, high) in checks.items():
        if not np.all(values == np.round(values)) or values.min() < low or values.max() > high:
            raise LorspError(f"{c.node.kind} node {c.name!r}: its {name} does not fit Lava's integer register "
                             f"({low}..{high})")
    ints = lambda a: np.round(a).astype(np.int64)  # noqa: E731
    return LavaNeurons(c.name, c.node.kind, du=ints(du), dv=ints(dv), vth=ints(vth), bias=ints(bias),
                       bias_exp=np.full(n, BIAS_EXP, dtype=np.int64), first=0, readout=op.readout)


def dequantised(op: FixedNeuron, v: np.ndarray) -> np.ndarray:
    """A read-out's integer voltages ``v`` (``(..., neurons)``, Lava's) as the fast backend's float32 output:
    ``v / (2^6 s)``, times each neuron's share of the gain."""
    out = torch.as_tensor(np.asarray(v, dtype=np.float64)) / (2.0 ** STATE_SHIFT * op.scale)
    if op.readout_share is not None:
        out = out * op.readout_share
    return out.to(torch.float32).numpy()
