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

import math
from dataclasses import dataclass

import numpy as np

from deploy.network import Layer, SpikingNetwork
from lorsp.plumbing.errors import LorspError

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
    weight = integer_weights(w, scale, mixed)
    bias_mant = integer_bias(layer.bias, scale)
    vth = np.round(scale * layer.threshold.astype(np.float64))
    du, dv = decays(layer.alpha, layer.beta)
    as_int = lambda a: np.ascontiguousarray(a, dtype=np.int32)  # noqa: E731
    return FixedPointLayer(name=layer.name, scale=float(scale), weight=as_int(weight), bias_mant=as_int(bias_mant),
                           vth=as_int(vth), du=as_int(du), dv=as_int(dv), sign_mode=sign_mode)


def integer_weights(w: np.ndarray, scale: float, mixed: bool) -> np.ndarray:
    """Weights ``w`` at ``scale`` as the chip holds them (float64 integers): even and within +-254 when signs
    are mixed, within +-255 otherwise."""
    w = np.asarray(w, dtype=np.float64)
    if mixed:
        return np.clip(2 * np.round(scale * w / 2), -WEIGHT_MAX_MIXED, WEIGHT_MAX_MIXED)
    return np.clip(np.round(scale * w), -WEIGHT_MAX_ONE_SIGN, WEIGHT_MAX_ONE_SIGN)


def integer_bias(bias: np.ndarray, scale: float) -> np.ndarray:
    """The bias mantissa at ``scale`` (13-bit signed; the exponent is :data:`BIAS_EXP`)."""
    return np.clip(np.round(scale * np.asarray(bias, dtype=np.float64)), -BIAS_MANT_MAX - 1, BIAS_MANT_MAX)


def decays(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``du, dv`` (12-bit) of current decay ``alpha`` and voltage decay ``beta``."""
    dv = np.clip(np.round(DECAY_UNITY * (1.0 - np.asarray(beta, dtype=np.float64))), 0, DECAY_UNITY - 1)
    du = np.clip(DECAY_UNITY - 1 - np.round(DECAY_UNITY * np.asarray(alpha, dtype=np.float64)), 0, DECAY_UNITY - 1)
    return du, dv


def choose_scale(layer: Layer, mixed: bool) -> float:
    """The scale of ``layer``: exact where it can be, else the largest that fits.

    Exact: the largest power of two that fits every register and turns every weight (into an
    even integer when signs are mixed), bias and threshold into an integer, so that nothing
    is rounded (band gating's start lies on such a grid: ``lorsp.prompts.lorsp.GRID_STEP``).
    Otherwise the largest ``s`` with every integer in range, lowered to make ``s max(theta)``
    whole.
    """
    return scale_between(largest_scale(layer, mixed), [layer.weight], layer.bias, layer.threshold, mixed)


def scale_between(largest: float, weights: list[np.ndarray], bias: np.ndarray, threshold: np.ndarray,
                  mixed: bool) -> float:
    """:func:`choose_scale` for synapse blocks ``weights`` (any shapes) into neurons of ``bias`` and ``threshold``."""
    exact = 2.0 ** math.floor(math.log2(largest)) if largest >= 1 else 0.0
    checks = [(w, mixed) for w in weights] + [(bias, False), (threshold, False)]
    if exact and all(_is_integer(exact * a, even=even) for a, even in checks):
        return exact
    theta = float(threshold.max())
    return float(np.floor(largest * theta) / theta)


def _is_integer(values: np.ndarray, even: bool) -> bool:
    v = values.astype(np.float64) / (2.0 if even else 1.0)
    return bool(np.all(v == np.round(v)))


def largest_scale(layer: Layer, mixed: bool) -> float:
    """The largest ``s`` with every integer in range; a LorspError when even ``s max(theta) = 1`` does not fit."""
    w = np.abs(layer.weight.astype(np.float64))
    return scale_limit(layer.name, float(w.max()) if w.size else 0.0, float(w.sum(axis=1).max()) if w.size else 0.0,
                       int(w.shape[1]), float(np.abs(layer.bias).max()), float(layer.threshold.max()), mixed)


def scale_limit(name: str, weight_max: float, row_sum_max: float, fan_in: int, bias_max: float, theta_max: float,
                mixed: bool) -> float:
    """:func:`largest_scale` from a layer's largest ``|w|``, largest row sum of ``|w|``, inputs per neuron,
    largest ``|b|`` and largest threshold."""
    limits = [VTH_MAX / theta_max]
    if weight_max > 0:
        limits.append((WEIGHT_MAX_MIXED if mixed else WEIGHT_MAX_ONE_SIGN) / weight_max)
        limits.append((DENDRITE_MAX - fan_in) / row_sum_max)  # even rounding adds <= 1 per synapse
    if bias_max > 0:
        limits.append(BIAS_MANT_MAX / bias_max)
    if np.floor(min(limits) * theta_max) < 1:
        raise LorspError(f"layer {name}: no fixed-point scale fits (threshold {theta_max:g} against "
                         f"weights up to {weight_max:g} and bias up to {bias_max:g})")
    return float(min(limits))


def _two_adic(values: np.ndarray) -> int | None:
    """The largest ``k`` with ``2^k`` dividing every nonzero integer of ``values`` (None: all zero)."""
    nonzero = np.abs(values[values != 0].astype(np.int64))
    if nonzero.size == 0:
        return None
    return int(min((int(v) & -int(v)).bit_length() - 1 for v in np.unique(nonzero)))


def exactness(network: SpikingNetwork, fixed: list[FixedPointLayer], time_steps: int) -> dict:
    """Whether the fixed-point network computes the float network's spikes bit for bit, for every input.

    It does when, in every layer, (1) each weight, bias and threshold times the scale is the
    integer the chip holds (no rounding); (2) the current is cleared every step
    (``alpha = 0``) and ``beta`` is the chip's decay ``c / 4096`` exactly; (3) the decay,
    which divides the voltage by ``2^l`` (``c = c' 2^(12 - l)``, ``c'`` odd) and rounds
    towards zero, never drops a bit within ``T`` steps: every input to the voltage is a
    multiple of ``2^h`` (the 6-bit shift plus the trailing zeros of the integers) and
    ``h >= (T - 1) l``. The float model's sums are then exact in float32 as well (every value
    is a chip integer over a power of two). Returns ``{"exact": bool, "layers": [...]}``.
    """
    rows = []
    for fx, layer in zip(fixed, network.layers):
        reasons = []
        for what, ints, values in (("weights", fx.weight, layer.weight), ("biases", fx.bias_mant, layer.bias),
                                   ("thresholds", fx.vth, layer.threshold)):
            if not np.array_equal(ints.astype(np.float64) / fx.scale, values.astype(np.float64)):
                reasons.append(f"{what} rounded at scale {fx.scale:g}")
        if np.any(layer.alpha != 0):
            reasons.append("synaptic current decays (alpha > 0)")
        c = (DECAY_UNITY - fx.dv).astype(np.int64)
        if not np.array_equal(c.astype(np.float64) / DECAY_UNITY, layer.beta.astype(np.float64)):
            reasons.append("beta is not a multiple of 1/4096")
        decay_zeros = _two_adic(c)  # c = 0 clears the voltage: nothing to drop
        lost = 0 if decay_zeros is None else 12 - decay_zeros
        input_zeros = _two_adic(np.concatenate([fx.weight.ravel(), fx.bias_mant.ravel()]))
        headroom = STATE_SHIFT + (input_zeros or 0)
        if lost * (time_steps - 1) > headroom:
            reasons.append(f"the decay drops {lost} bit(s) a step: {lost * (time_steps - 1)} over {time_steps} "
                           f"steps against {headroom} bits of headroom")
        rows.append({"name": fx.name, "scale": fx.scale, "decay_bits_per_step": lost, "headroom_bits": headroom,
                     "exact": not reasons, "why_not": reasons})
    return {"exact": all(r["exact"] for r in rows), "time_steps": int(time_steps), "layers": rows}
