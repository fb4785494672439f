r"""Loihi's integer form of a network: defined once, used by the netx writer and every backend.

It matches the bit-accurate models of lava-nc 0.10.0:
``lava/proc/lif/models.py`` (``AbstractPyLifModelFixed``, ``PyLifResetModelBitAcc``),
``lava/proc/dense/models.py`` (``PyDenseModelBitAcc``) and ``lava/utils/weightutils.py``
(``clip_weights``, ``truncate_weights``). One step of a neuron there is

.. math::

    u[t] = \mathrm{rz}\!\left(u[t-1]\,(4096 - d_u - 1)\,/\,2^{12}\right) + 2^6 \sum_j w_j s_j[t]

    v[t] = \mathrm{rz}\!\left(v[t-1]\,(4096 - d_v)\,/\,2^{12}\right) + u[t] + b_m 2^{b_e}

    s[t] = [\, v[t] > 2^6 v_{th} \,]

(``rz``: rounding towards zero; ``u``, ``v`` 24-bit). Every layer ``k`` gets its own scale
``s_k`` (binary spikes make each layer's scale independent of the others):

.. math::

    w = s_k W \text{ rounded (mixed signs: to even values, } |w| \le 254\text{; one sign: } |w| \le 255)

    b_m = \mathrm{round}(s_k b),\ b_e = 6 \qquad v_{th} = \mathrm{round}(s_k \theta)

    d_v = \mathrm{round}(4096 (1 - \beta)) \qquad d_u = 4095 - \mathrm{round}(4096\,\alpha)

so ``d_u = 4095`` (``alpha = 0``) clears the current every step, as in ``LIF(du=1)``. The
scale is the largest that fits every register (8-bit weights, 16-bit dendritic sum,
13-bit bias mantissa, 17-bit threshold) and is then lowered so that ``s_k max(theta)`` is
an integer: the largest threshold is exact and the weights take the rounding.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deploy.network import Layer, SpikingNetwork
from lorsp.errors import LorspError

DECAY_UNITY = 4096          # 12-bit decays: factor (4096 - d) / 4096
STATE_SHIFT = 6             # Lava's act_shift and vth_shift: inputs and vth are MSB-aligned by 6 bits
BIAS_EXP = 6                # b_m << 6 lines the bias up with the shifted synaptic input (as netx does)
WEIGHT_MAX_MIXED = 254      # even values only once the sign bit is taken (truncate_weights)
WEIGHT_MAX_ONE_SIGN = 255
DENDRITE_MAX = 2 ** 15 - 1  # a_in is a 16-bit port in PyLifModelBitAcc
BIAS_MANT_MAX = 2 ** 12 - 1  # 13-bit signed mantissa
VTH_MAX = 2 ** 17 - 1       # 17-bit unsigned threshold mantissa


@dataclass(frozen=True)
class FixedPointLayer:
    """The integers Lava's bit-accurate models and a netx file receive for one layer."""

    name: str
    scale: float
    weight: np.ndarray      # int32 (out, in)
    bias_mant: np.ndarray   # int32 (out,)
    vth: np.ndarray         # int32 (out,), one per neuron (a process holds one)
    du: np.ndarray          # int32 (out,)
    dv: np.ndarray          # int32 (out,)
    sign_mode: str          # "mixed", "excitatory" or "inhibitory"
    bias_exp: int = BIAS_EXP

    def summary(self, layer: Layer) -> dict:
        """Scale, ranges and the rounding it cost (for reports)."""
        err = np.abs(self.weight / self.scale - layer.weight.astype(np.float64))
        return {"name": self.name, "scale": self.scale, "sign_mode": self.sign_mode,
                "weight_range": [int(self.weight.min()), int(self.weight.max())],
                "bias_mant_range": [int(self.bias_mant.min()), int(self.bias_mant.max())],
                "bias_exp": self.bias_exp, "vth": sorted({int(v) for v in self.vth}),
                "du": sorted({int(v) for v in self.du}), "dv": sorted({int(v) for v in self.dv}),
                "weight_max_abs_error": float(err.max()),
                "weights_rounded_to_zero": int(np.count_nonzero((self.weight == 0) & (layer.weight != 0)))}


def quantise(network: SpikingNetwork) -> list[FixedPointLayer]:
    """The fixed-point form of every layer of ``network``."""
    return [quantise_layer(layer) for layer in network.layers]


def quantise_layer(layer: Layer) -> FixedPointLayer:
    w = layer.weight.astype(np.float64)
    mixed = bool(w.min() < 0 < w.max())
    sign_mode = "mixed" if mixed else ("inhibitory" if w.min() < 0 else "excitatory")
    scale = choose_scale(layer, mixed)
    if mixed:
        weight = 2 * np.round(scale * w / 2)
        weight = np.clip(weight, -WEIGHT_MAX_MIXED, WEIGHT_MAX_MIXED)
    else:
        weight = np.clip(np.round(scale * w), -WEIGHT_MAX_ONE_SIGN, WEIGHT_MAX_ONE_SIGN)
    bias_mant = np.clip(np.round(scale * layer.bias.astype(np.float64)), -BIAS_MANT_MAX - 1, BIAS_MANT_MAX)
    vth = np.round(scale * layer.threshold.astype(np.float64))
    dv = np.clip(np.round(DECAY_UNITY * (1.0 - layer.beta.astype(np.float64))), 0, DECAY_UNITY - 1)
    du = np.clip(DECAY_UNITY - 1 - np.round(DECAY_UNITY * layer.alpha.astype(np.float64)), 0, DECAY_UNITY - 1)
    as_int = lambda a: np.ascontiguousarray(a, dtype=np.int32)  # noqa: E731
    return FixedPointLayer(name=layer.name, scale=float(scale), weight=as_int(weight), bias_mant=as_int(bias_mant),
                           vth=as_int(vth), du=as_int(du), dv=as_int(dv), sign_mode=sign_mode)


def choose_scale(layer: Layer, mixed: bool) -> float:
    """The largest ``s`` with every integer in range, lowered to make ``s max(theta)`` whole."""
    w = np.abs(layer.weight.astype(np.float64))
    limits = [VTH_MAX / float(layer.threshold.max())]
    if w.max() > 0:
        limits.append((WEIGHT_MAX_MIXED if mixed else WEIGHT_MAX_ONE_SIGN) / w.max())
        limits.append((DENDRITE_MAX - w.shape[1]) / w.sum(axis=1).max())  # even rounding adds <= 1 per synapse
    if np.abs(layer.bias).max() > 0:
        limits.append(BIAS_MANT_MAX / float(np.abs(layer.bias).max()))
    theta = float(layer.threshold.max())
    vth = np.floor(min(limits) * theta)
    if vth < 1:
        raise LorspError(f"layer {layer.name}: no fixed-point scale fits (threshold {theta:g} against "
                         f"weights up to {w.max():g} and bias up to {np.abs(layer.bias).max():g})")
    return float(vth / theta)
