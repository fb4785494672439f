r"""LoRSP's pixel gates as a lava-dl netx file: an ``input`` layer and one ``conv`` layer of CUBA neurons.

The bundle's netx file (:mod:`export.netx`) holds dense layers only; the pixel gates
(:mod:`export.nir_pixel`: ``Input (3, L, L) -> Conv2d 3 -> 1, k x k -> LIF (1, L, L)`` with a
per-pixel drive) are a convolution. lava-dl 0.6's ``netx.hdf5.Network`` builds a ``conv`` layer
(``create_conv``) as ``blocks.Conv``: Lava's ``Conv`` synapse into one ``LIF``/``LIFReset`` of the
layer's shape, whose ``bias_mant`` may be one value per neuron. Layout written here (shapes in
PyTorch's ``C, H, W`` order, which netx reverses to its ``x, y, z``)::

    layer/0/  type "input", shape [3, L, L]
    layer/1/  type "conv", shape [1, L, L], weight (1, 3, k, k) int32 (PyTorch's order: netx flips the
              kernel and Lava's Conv flips it back), stride [1, 1], padding [p, p], dilation [1, 1],
              groups 1, bias (L, L, 1) int32: the bias mantissa per neuron in netx's x, y, z order
              (netx hands it to the neuron unchanged and compares its shape with the layer's (x, y, z)),
              neuron/ type "CUBA", iDecay = du + 1, vDecay = dv, vThMant, refDelay 1, gradedSpike false

netx gives the neuron ``bias_exp = 6``; the root attributes are the bundle's run settings
(:func:`deploy.spec.netx_attributes`: ``reset_interval = T``, ``reset_offset``, ``output_lag`` 1,
``select_tag`` ``fixed_pt``) plus the layer's scale. The integers are not computed here: they are those
of the general fixed-point path (:func:`pipeline.netx_pixel.pixel_gate_integers` reads them from
:func:`hw_sim.graph.fixed_graph.compile_fixed`), checked against Loihi's registers before anything is
written.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from deploy.fixed_point import BIAS_MANT_MAX, DECAY_UNITY, VTH_MAX, WEIGHT_MAX_ONE_SIGN
from deploy.hdf5_files import write_hdf5
from deploy.netx_layout import WRITER
from deploy.spec import netx_attributes
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


def write_pixel_gates_netx_file(ints: PixelGateIntegers, path: str | Path) -> Path:
    """Write the gates' netx file to ``path`` atomically (:func:`deploy.hdf5_files.write_hdf5`): the datasets of
    :func:`pixel_gates_netx_datasets` and, on the root, the run settings and the scale."""
    datasets = pixel_gates_netx_datasets(ints)

    def write(buffer: io.BytesIO) -> None:
        with h5py.File(buffer, "w") as f:
            f.attrs["writer"] = WRITER
            f.attrs["scales"] = np.array([float(ints.scale)])
            for key, value in netx_attributes(int(ints.time_steps), layers=1).items():
                f.attrs[key] = value
            for key, value in datasets.items():
                f.create_dataset(key, data=value)

    return write_hdf5(path, write)
