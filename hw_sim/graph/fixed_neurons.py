r"""Loihi's integer compartments for the graph interpreter, batched over samples in PyTorch.

:class:`FixedNeuron` is one compartment node of the general fixed-point path
(:mod:`hw_sim.graph.fixed_graph`) and of the fast backend (:mod:`hw_sim.backends.fast`, a bundle's
chain). Its spiking step is lava-nc 0.10.0's bit-accurate LIF (``PyLifResetModelBitAcc``) on the summed
integer dendrite input ``a``:

.. math::

    u \leftarrow \mathrm{wrap}_{24}\big(\mathrm{rz}(u\, f_u / 2^{12}) + 2^6 a\big), \quad
    v \leftarrow \mathrm{clip}_{24}\big(\mathrm{rz}(v\, f_v / 2^{12}) + u + b\big), \quad
    s = [v > \vartheta], \quad v \leftarrow 0 \text{ where } s

(``rz``: rounded towards zero; ``wrap_24``: ``x - 2^24`` above ``2^23``, ``x + 2^24`` at or below ``-2^23``,
once; ``clip_24``: saturation at ``+-(2^23 - 1)``). Lava adds in int32, so a sum beyond int32 (an input
``a`` over ``2^25``, a bias shifted past ``2^30``) wraps modulo ``2^32`` first; the step does the same
where the sum can leave int32 (checked on the current's range, and on a bound of the voltage's). The
same compartment with no spike is a read-out (``LI``, ``I``, ``CubaLI``): its output is ``v``
dequantised, ``v / (2^6 s)`` for the node's scale ``s``. A ``Threshold`` keeps no state:
``s = [2^6 a + b > \vartheta]``, the compare on the integer potential.

The numbers are integers held in float64 tensors: every product and sum stays below ``2^44`` (int32
values times 13-bit factors; ``2^36`` with 24-bit states), far inside float64's exact ``2^53``, so each
operation is the integer operation, and ``torch.trunc`` is Lava's rounding towards zero. PyTorch's
float64 kernels run several times faster than its int64 ones (no vector integer division) and than
numpy on int64; ``tests/test_hwsim_nir_fixed.py`` checks the step against Lava's equations in numpy
int32 bit for bit, and ``tests/test_fastsim.py`` against Lava's own model class at the register limits.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import torch

from deploy.fixed_point import DECAY_UNITY, STATE_SHIFT
from hw_sim.graph.neurons import Neuron

UV_LIMIT = 2 ** 23               # lava AbstractPyLifModelFixed.max_uv_val: u, v are 24-bit
CURRENT_OFFSET = 1               # lava AbstractPyLifModelFixed.ds_offset (dm_offset is 0)
SHIFT = float(2 ** STATE_SHIFT)
WRAP = float(2 * UV_LIMIT)
INT32 = float(2 ** 31)


def scaled_bias(bias_mant: np.ndarray, bias_exp: np.ndarray) -> np.ndarray:
    """``AbstractPyLifModelFixed.scale_bias``: the int16 Vars, the mantissa as int32 shifted by the exponent
    (left when ``>= 0``, right otherwise)."""
    mant = np.asarray(bias_mant).astype(np.int16).astype(np.int32)
    exp = np.asarray(bias_exp).astype(np.int16)
    return np.where(exp >= 0, np.left_shift(mant, np.maximum(exp, 0)), np.right_shift(mant, np.maximum(-exp, 0)))


def wrap_int32(x: torch.Tensor) -> torch.Tensor:
    """Integers held in float64 reduced modulo ``2^32`` into ``[-2^31, 2^31)``: an int32 sum's overflow."""
    return torch.remainder(x + INT32, 2 * INT32) - INT32


def _factor(values: np.ndarray, identity: float) -> torch.Tensor | None:
    """``values / 4096`` as float64 (exact: a power of two), or None where every value is ``identity``."""
    values = np.asarray(values, dtype=np.float64)
    if np.all(values == identity * DECAY_UNITY):
        return None
    return torch.as_tensor(values / DECAY_UNITY, dtype=torch.float64)


@dataclasses.dataclass
class FixedNeuron(Neuron):
    """A compartment node in Loihi's integers (module docstring), on flattened neurons.

    ``direct[i]``: the integer weight of input ``i`` (same-step inputs, then recurrent ones) where it
    reaches the compartment without a weighted node (a one-to-one synapse; None: already integers).
    ``current_bias``: integers added to the dendrite input every step (a bias in front of a ``CubaLIF``,
    carried by a compartment that spikes every step).
    """

    scale: float = 1.0
    u_factor: torch.Tensor | None = None
    v_factor: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    vth: torch.Tensor | None = None
    current_bias: torch.Tensor | None = None
    direct: tuple[float | None, ...] = ()
    readout: bool = False
    stateless: bool = False
    bias_bound: float = 0.0
    """The largest ``|bias|``: the voltage's sum can leave int32 only where this is large."""
    readout_share: torch.Tensor | None = None
    """A read-out's factor per neuron on its dequantised voltage (its share of the node's input gain; None: 1)."""

    @classmethod
    def build(cls, kind: str, shape: tuple[int, ...], *, scale: float, u_factor: np.ndarray, v_factor: np.ndarray,
              bias: np.ndarray, vth: np.ndarray, current_bias: np.ndarray | None = None,
              direct: Sequence[float | None] = (), readout: bool = False, stateless: bool = False,
              readout_share: np.ndarray | None = None) -> "FixedNeuron":
        """From Lava's integers (``u_factor = 4096 - du - 1``, ``v_factor = 4096 - dv``, ``bias`` already shifted
        (:func:`scaled_bias`), ``vth`` shifted by 6), per flattened neuron; ``readout_share``: a read-out's factor
        per neuron on its dequantised voltage."""
        as64 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))  # noqa: E731
        return cls(kind, shape, scale=scale, u_factor=_factor(u_factor, 0.0), v_factor=_factor(v_factor, 1.0),
                   bias=as64(bias) if np.any(bias) else None, vth=as64(vth),
                   current_bias=None if current_bias is None or not np.any(current_bias) else as64(current_bias),
                   direct=tuple(direct), readout=readout, stateless=stateless,
                   bias_bound=float(np.abs(np.asarray(bias, dtype=np.float64)).max(initial=0.0)),
                   readout_share=None if readout_share is None else as64(readout_share))

    @property
    def size(self) -> int:
        return int(self.vth.numel())

    def initial_state(self, n: int) -> dict:
        """``u = v = 0``, ``(n, neurons)``."""
        return {"u": torch.zeros((n, self.size), dtype=torch.float64),
                "v": torch.zeros((n, self.size), dtype=torch.float64)}

    def dendrite(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """The summed integer input ``a`` ``(n, neurons)``, one-to-one weights and current bias applied: a new
        tensor, except that a first input already in float64 is summed into in place (the runner hands a node
        each step's fresh sums)."""
        n = inputs[0].shape[0]
        a = None
        for i, x in enumerate(inputs):
            w = self.direct[i] if i < len(self.direct) else None
            x = x.reshape(n, -1)
            if a is None:
                a = x.to(torch.float64) if w is None else x.to(torch.float64).mul_(w)
            else:
                a.add_(x.to(torch.float64), alpha=1.0 if w is None else w)
        if self.current_bias is not None:
            a.add_(self.current_bias)
        return a

    def step(self, inputs: Sequence[torch.Tensor], state: dict) -> torch.Tensor:
        """One bit-accurate step; the spikes (0/1 float32) or, for a read-out, ``v`` dequantised (float32)."""
        a = self.dendrite(inputs)
        n = a.shape[0]
        if self.stateless:
            v = a.mul_(SHIFT) if self.bias is None else a.mul_(SHIFT).add_(self.bias)
            return (v > self.vth).to(torch.float32).reshape(n, *self.shape)
        if self.u_factor is None:  # the current is cleared every step
            u = a.mul_(SHIFT)
        else:
            u = state["u"].mul_(self.u_factor).trunc_().add_(a, alpha=SHIFT)
        low, high = (float(m) for m in torch.aminmax(u))
        if high > UV_LIMIT or low <= -UV_LIMIT:
            if high >= INT32 or low < -INT32:
                u = wrap_int32(u)
            u = torch.where(u > UV_LIMIT, u - WRAP, torch.where(u <= -UV_LIMIT, u + WRAP, u))
            low, high = (float(m) for m in torch.aminmax(u))
        state["u"] = u
        v = state["v"] if self.v_factor is None else state["v"].mul_(self.v_factor).trunc_()
        v.add_(u)
        if self.bias is not None:
            v.add_(self.bias)
        if UV_LIMIT + max(high, -low) + self.bias_bound >= INT32:  # |v| < 2^23 before: only then can it wrap
            v = state["v"] = wrap_int32(v)
        v.clamp_(-(UV_LIMIT - 1), UV_LIMIT - 1)
        if self.readout:
            out = v / (SHIFT * self.scale)
            if self.readout_share is not None:
                out = out * self.readout_share
            return out.to(torch.float32).reshape(n, *self.shape)
        spikes = v > self.vth
        v.masked_fill_(spikes, 0.0)
        return spikes.to(torch.float32).reshape(n, *self.shape)
