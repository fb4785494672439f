"""The chip network of a pixel bundle (``chip_network: pixel-gates``): the gates' NIR graph, read and checked.

A pixel-gated LoRSP bundle (:mod:`export.pixel_section`) holds the same files as a chain bundle,
with other content: ``prompt_generator.nir`` is the gates' graph (``Input (3, L, L) -> Conv2d 3 -> 1,
k x k -> LIF (1, L, L) -> Output``, :mod:`deploy.pixel_gates`), ``prompt_generator.net`` their lava-dl
netx conv file (:mod:`export.netx_pixel`). :func:`read_pixel_network` reads the graph (bounded, links
refused), takes its parameters back (a graph lorsp would not write from them is refused), computes
their Loihi integers (:func:`deploy.pixel_fixed.pixel_gate_integers`) and refuses a netx file that
differs from them in any dataset or scale. :meth:`PixelGateNetwork.check_prompt` then holds the
PyTorch model rebuilt from the host file to the graph, parameter for parameter.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nir
import numpy as np

from deploy.nir_reader import read_nir
from deploy.pixel_fixed import PixelGateIntegers, check_pixel_netx, pixel_fixed_point, pixel_gate_integers
from deploy.pixel_gates import PixelGateParameters, pixel_gate_parameters, read_pixel_gates
from lorsp.plumbing.errors import LorspError


@dataclass(frozen=True)
class PixelGateNetwork:
    """A pixel bundle's chip network: the graph as read, its parameters and its Loihi integers."""

    graph: nir.NIRGraph
    params: PixelGateParameters
    integers: PixelGateIntegers
    dt: float

    @property
    def image_size(self) -> int:
        return self.params.image_size

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The graph's input, ``(3, L, L)`` binary spikes per step."""
        return (3, self.image_size, self.image_size)

    @property
    def gates(self) -> int:
        """``L^2``, one gate neuron per pixel."""
        return self.image_size ** 2

    def summary(self) -> list[dict[str, Any]]:
        """The manifest's and the report's ``network``: one layer, the chain's keys plus the kernel."""
        w = self.params.weight
        return [{"name": "gates", "nir_nodes": ["conv", "gates"], "inputs": 3 * self.gates, "neurons": self.gates,
                 "kernel": list(w.shape), "padding": list(self.params.padding),
                 "synapses_nonzero": int(np.count_nonzero(w)), "beta": [float(self.params.beta)],
                 "threshold": [float(self.params.threshold)]}]

    def fixed_point(self) -> tuple[list[dict], dict]:
        """The manifest's ``fixed_point`` and ``fixed_point_exact`` (:func:`deploy.pixel_fixed.pixel_fixed_point`)."""
        return pixel_fixed_point(self.params, self.integers)

    def check_prompt(self, prompt: Any) -> None:
        """Refuse, in one line, a rebuilt prompt whose gates are not this graph's, value for value (the kernel,
        the drive map its factors, bias and ``kappa`` give, ``beta``, the threshold, the padding, ``T``)."""
        mine = pixel_gate_parameters(prompt)
        for name in ("weight", "drive"):
            a, b = getattr(mine, name), getattr(self.params, name)
            if a.shape != b.shape or not np.array_equal(a, b):
                raise LorspError(f"the host file's prompt gives gates whose {name} differs from the NIR graph's")
        for name in ("beta", "threshold", "padding", "time_steps"):
            if getattr(mine, name) != getattr(self.params, name):
                raise LorspError(f"the host file's prompt gives gates whose {name} differs from the NIR graph's")


def read_pixel_network(nir_path: Path) -> PixelGateNetwork:
    """The gates of the graph at ``nir_path``, with their integers; a one-line LorspError for anything else."""
    graph = read_nir(nir_path)
    params = read_pixel_gates(graph, str(nir_path))
    return PixelGateNetwork(graph=graph, params=params, integers=pixel_gate_integers(params),
                            dt=float(np.asarray(graph.metadata["dt"])))


def check_pixel_files(network: PixelGateNetwork, netx_path: Path, host_scale: np.ndarray, time_steps: int,
                      encoding_size: int) -> None:
    """Refuse a netx file other than the gates' integers, a host scale other than theirs, or a host encoding of
    another size or ``T`` than the graph's."""
    if time_steps != network.params.time_steps or encoding_size != network.image_size:
        raise LorspError(f"the host file's encoding (size {encoding_size}, T {time_steps}) is not the NIR graph's "
                         f"(size {network.image_size}, T {network.params.time_steps})")
    check_pixel_netx(netx_path, network.integers, host_scale)
