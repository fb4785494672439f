"""The network in lava-dl's netx HDF5 format (what ``lava.lib.dl.netx.hdf5.Network`` loads).

Layout (as read by lava-dl 0.6.0, ``lava/lib/dl/netx/hdf5.py``)::

    layer/0/  type "input", shape [D]                 (no neuron: spikes go straight on)
    layer/k/  type "dense", shape [n_k], weight (n_k x n_{k-1}) int, bias (n_k,) int,
              neuron/ type "CUBA", iDecay, vDecay, vThMant, refDelay, gradedSpike

netx builds ``Dense(weight)`` -> ``LIF(vth=vThMant, du=iDecay - 1, dv=vDecay,
bias_mant=bias, bias_exp=6)`` from it, so the integers are those of
:mod:`deploy.fixed_point` (``iDecay = du + 1``) and the file runs like the fixed-mode
simulation. netx holds one ``vth``, ``du`` and ``dv`` per layer: a layer whose neurons
differ in them is refused. The root's attributes carry the scales and the run settings a
lava-dl user needs (``T``, ``reset_interval``, ``reset_offset``, delay, ``fixed_pt``).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

from deploy.fixed_point import BIAS_EXP, FixedPointLayer
from deploy.network import SpikingNetwork
from lorsp.plumbing.errors import LorspError
from deploy.hdf5_files import write_hdf5
from deploy.netx_layout import WRITER, netx_datasets


def write_netx(network: SpikingNetwork, fixed: list[FixedPointLayer], path: str | Path,
               attributes: Mapping[str, Any] | None = None) -> Path:
    """Write the netx file; ``attributes`` (the run settings, :func:`deploy.spec.netx_attributes`) go on its root."""
    for fx in fixed:
        for key in ("vth", "du", "dv"):
            if len(np.unique(getattr(fx, key))) != 1:
                raise LorspError(f"layer {fx.name}: its neurons differ in {key}; netx holds one per layer")
        if fx.bias_exp != BIAS_EXP:
            raise LorspError(f"layer {fx.name}: netx fixes bias_exp at {BIAS_EXP}")

    def write(buffer: io.BytesIO) -> None:
        with h5py.File(buffer, "w") as f:
            f.attrs["writer"] = WRITER
            f.attrs["scales"] = np.array([fx.scale for fx in fixed])
            for key, value in (attributes or {}).items():
                f.attrs[key] = value
            for key, value in netx_datasets(network, fixed).items():
                f.create_dataset(key, data=value)

    return write_hdf5(path, write)
