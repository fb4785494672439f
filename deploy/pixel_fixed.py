r"""LoRSP's pixel gates in Loihi's integers: computed from their parameters, checked, and laid out as netx datasets.

:func:`pixel_gate_integers` applies the rules of :mod:`deploy.fixed_point` (the chain path's, which the
general graph path :func:`hw_sim.graph.fixed_graph.compile_fixed` applies per compartment) to the gates'
one compartment node: the input gain is 1 (:mod:`deploy.pixel_gates`), so the block's weights are the
kernel and the compartment's bias is the drive map; the scale comes from the largest ``|w|``, the
largest sum of ``|w|`` one neuron reaches (a neuron away from the border reaches all ``3 k^2`` inputs),
the largest ``|drive|`` and the threshold (:func:`~deploy.fixed_point.scale_limit`,
:func:`~deploy.fixed_point.scale_between`). The integers are those of the general path bit for bit
(``tests/test_pixel_bundle.py`` compares them with :func:`hw_sim.pixel_twin.twin_integers`,
which reads them from the path's integer twin); ``lorsp-hwsim`` on a pixel bundle checks them again
against the twin it runs.

:func:`dense_view` states the gates as the chain path's layer form (each gate neuron's own row of
``3 k^2`` synapses, the same kernel for every pixel), so :func:`deploy.fixed_point.exactness` and
:meth:`deploy.fixed_point.FixedPointLayer.summary` give the manifest's ``fixed_point`` and
``fixed_point_exact`` by the chain's own rules.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from deploy.fixed_point import BIAS_MANT_MAX, DECAY_UNITY, VTH_MAX, WEIGHT_MAX_ONE_SIGN, FixedPointLayer, decays, \
    exactness, integer_bias, integer_weights, scale_between, scale_limit
from deploy.netx_layout import compare_netx
from deploy.network import Layer, SpikingNetwork
from deploy.pixel_gates import PixelGateParameters
from lorsp.plumbing.errors import LorspError

CONV_GROUP = "layer/1"
"""The netx group of the gates' convolution layer (``layer/0`` is the input)."""


@dataclass(frozen=True)
class PixelGateIntegers:
    """The Loihi integers of the gates: the kernel ``(1, 3, k, k)`` (PyTorch's order), the bias mantissa per neuron
    ``(1, L, L)`` (exponent 6), and ``vth``, ``du``, ``dv`` (one each: netx holds one per layer), the padding, the
    fixed-point scale (float ``x`` is ``scale x`` in these integers) and ``T``."""

    weight: np.ndarray
    bias_mant: np.ndarray
    vth: int
    du: int
    dv: int
    padding: tuple[int, int]
    scale: float
    time_steps: int

    @property
    def image_size(self) -> int:
        return int(self.bias_mant.shape[-1])


def check_registers(ints: PixelGateIntegers) -> None:
    """A one-line LorspError unless every integer is one Loihi's registers hold (8-bit weights, 13-bit bias
    mantissa, 17-bit threshold, 12-bit decays) and the shapes are the gates' (one output channel, 3 inputs, an odd
    square kernel that keeps the image size)."""
    w, b = np.asarray(ints.weight), np.asarray(ints.bias_mant)
    if w.ndim != 4 or w.shape[:2] != (1, 3) or w.shape[2] != w.shape[3] or w.shape[2] != 2 * ints.padding[0] + 1 \
            or ints.padding[0] != ints.padding[1]:
        raise LorspError(f"the gates' kernel {list(w.shape)} with padding {list(ints.padding)} is not a 3 -> 1 "
                         f"square convolution that keeps the image size")
    if b.ndim != 3 or b.shape[0] != 1 or b.shape[1] != b.shape[2]:
        raise LorspError(f"the gates' bias has shape {list(b.shape)}, not (1, L, L)")
    for name, values, low, high in (("weight", w, -WEIGHT_MAX_ONE_SIGN, WEIGHT_MAX_ONE_SIGN),
                                    ("bias mantissa", b, -BIAS_MANT_MAX - 1, BIAS_MANT_MAX),
                                    ("vth", np.array(ints.vth), 0, VTH_MAX),
                                    ("du", np.array(ints.du), 0, DECAY_UNITY - 1),
                                    ("dv", np.array(ints.dv), 0, DECAY_UNITY - 1)):
        if not np.all(values == np.round(values)) or values.min() < low or values.max() > high:
            raise LorspError(f"the gates' {name} does not fit Loihi's register ({low}..{high})")


def pixel_gates_netx_datasets(ints: PixelGateIntegers) -> dict[str, np.ndarray]:
    """``{path: value}`` of every dataset of the gates' netx file (layout: module docstring)."""
    check_registers(ints)
    text = lambda s: np.array([s.encode("ascii")])  # noqa: E731  netx reads a type as the first ascii bytes
    side, pad = ints.image_size, [int(p) for p in ints.padding]
    g = CONV_GROUP
    return {"layer/0/type": text("input"), "layer/0/shape": np.array([3, side, side]),
            f"{g}/type": text("conv"), f"{g}/shape": np.array([1, side, side]),
            f"{g}/weight": np.asarray(ints.weight).astype(np.int32), f"{g}/stride": np.array([1, 1]),
            f"{g}/padding": np.array(pad), f"{g}/dilation": np.array([1, 1]), f"{g}/groups": np.array(1),
            f"{g}/bias": np.ascontiguousarray(np.asarray(ints.bias_mant)[0].T[..., None]).astype(np.int32),
            f"{g}/neuron/type": text("CUBA"), f"{g}/neuron/iDecay": np.array(int(ints.du) + 1),
            f"{g}/neuron/vDecay": np.array(int(ints.dv)), f"{g}/neuron/vThMant": np.array(int(ints.vth)),
            f"{g}/neuron/refDelay": np.array(1), f"{g}/neuron/gradedSpike": np.array(False)}



def pixel_gate_integers(params: PixelGateParameters) -> PixelGateIntegers:
    """The gates' Loihi integers from their parameters (module docstring); a one-line LorspError where no scale fits
    or an integer leaves its register."""
    w = params.weight.astype(np.float64)
    k, side = w.shape[-1], params.image_size
    if side < k:
        raise LorspError(f"the gates' image ({side} px) is smaller than their {k} x {k} kernel")
    drive = params.drive.astype(np.float64).reshape(-1)
    theta = np.full(drive.size, float(params.threshold))
    mixed = bool(w.min() < 0 < w.max())
    with torch.no_grad():  # the largest sum of |w| one neuron reaches, summed as the float32 graph sums it
        reach = F.conv2d(torch.ones((1, 3, side, side)), torch.from_numpy(np.abs(w).astype(np.float32)),
                         padding=tuple(params.padding))
    largest = scale_limit("gates", float(np.abs(w).max()), float(reach.double().max()), 3 * k * k,
                          float(np.abs(drive).max()), float(theta.max()), mixed)
    scale = scale_between(largest, [w], drive, theta, mixed)
    du, dv = decays(np.zeros(1), np.array([params.beta]))
    ints = PixelGateIntegers(weight=integer_weights(w, scale, mixed).astype(np.int32),
                             bias_mant=integer_bias(drive, scale).reshape(1, side, side).astype(np.int32),
                             vth=int(np.round(scale * params.threshold)), du=int(du[0]), dv=int(dv[0]),
                             padding=tuple(int(p) for p in params.padding), scale=float(scale),
                             time_steps=int(params.time_steps))
    check_registers(ints)
    return ints


def dense_view(params: PixelGateParameters, ints: PixelGateIntegers) -> tuple[SpikingNetwork, FixedPointLayer]:
    """The gates as the chain path's one-layer network and its fixed-point layer: every gate neuron a row of the
    ``3 k^2`` kernel weights (border neurons' padded inputs carry no spike), the drive as the bias."""
    n, row = params.image_size ** 2, params.weight.reshape(1, -1)
    full = lambda value: np.full(n, value, dtype=np.float32)  # noqa: E731
    layer = Layer(name="gates", weight=np.broadcast_to(row, (n, row.shape[1])),
                  bias=params.drive.reshape(-1).astype(np.float32), beta=full(params.beta),
                  threshold=full(params.threshold), alpha=full(0.0), sources=("conv", "gates"))
    w = np.asarray(ints.weight).reshape(1, -1)
    sign_mode = "mixed" if w.min() < 0 < w.max() else ("inhibitory" if w.min() < 0 else "excitatory")
    as_int = lambda value: np.full(n, value, dtype=np.int32)  # noqa: E731
    fixed = FixedPointLayer(name="gates", scale=ints.scale, weight=np.broadcast_to(w, (n, w.shape[1])),
                            bias_mant=np.asarray(ints.bias_mant).reshape(-1).astype(np.int32), vth=as_int(ints.vth),
                            du=as_int(ints.du), dv=as_int(ints.dv), sign_mode=sign_mode)
    return SpikingNetwork(input_size=row.shape[1], layers=(layer,)), fixed


def pixel_fixed_point(params: PixelGateParameters, ints: PixelGateIntegers) -> tuple[list[dict], dict]:
    """The manifest's ``fixed_point`` (one row, the chain's keys) and ``fixed_point_exact`` (the chain's rule:
    :func:`deploy.fixed_point.exactness`) of the gates."""
    network, fixed = dense_view(params, ints)
    return [fixed.summary(network.layers[0])], exactness(network, [fixed], params.time_steps)


def check_pixel_netx(path: str | Path, ints: PixelGateIntegers, host_scale: np.ndarray | None = None) -> None:
    """Refuse a netx file that is not exactly the gates' datasets at ``ints`` (:func:`pixel_gates_netx_datasets`)
    with scales ``[ints.scale]``, or (given) whose scale differs from the host file's ``fixed_point.scale``."""
    compare_netx(path, pixel_gates_netx_datasets(ints), np.array([ints.scale], dtype=np.float64), host_scale)
