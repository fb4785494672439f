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
of the general fixed-point path (:func:`hw_sim.pixel_twin.twin_integers` reads them from
:func:`hw_sim.graph.fixed_graph.compile_fixed`; a bundle's from :func:`deploy.pixel_fixed.pixel_gate_integers`,
which gives the same), checked against Loihi's registers before anything is written.
"""
from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np

from deploy.hdf5_files import write_hdf5
from deploy.netx_layout import WRITER
# the integers and the file's datasets live in deploy (a bundle's reader checks the file against them)
from deploy.pixel_fixed import CONV_GROUP, PixelGateIntegers, check_registers, \
    pixel_gates_netx_datasets  # noqa: F401
from deploy.spec import netx_attributes


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
