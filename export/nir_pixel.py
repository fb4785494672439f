r"""LoRSP's pixel gates (``--gate pixel``) as a NIR file, for ``lorsp-hwsim MODEL.nir`` and any NIR reader.

The graph, its parameters and the numbers it checks are :mod:`deploy.pixel_gates`'s
(``Input (3, L, L) -> Conv2d (3 -> 1, k x k) -> LIF (1, L, L) -> Output``, the drive as the LIF's
per-neuron ``v_leak``; re-exported here). :func:`write_pixel_gates_nir` writes the graph with
``nir.write`` and reads it back with ``nir.read``, comparing every array; :func:`encoded_input` gives
the graph's input spikes for images. A pixel bundle's NIR file is the same graph with the bundle's
metadata (:mod:`export.pixel_section`).
"""
from __future__ import annotations

import functools
from pathlib import Path

import nir
import numpy as np
import torch

from deploy.hdf5_files import write_hdf5
from deploy.nir_reader import SNNTORCH_DT
# the parameters and the graph live in deploy (a bundle's reader rebuilds them); re-exported for the examples
from deploy.pixel_gates import NODES, PixelGateParameters, euler_reading, pixel_gate_parameters, \
    pixel_gates_graph  # noqa: F401
from lorsp.plumbing.errors import LorspError
from lorsp.prompts.lorsp import LowRankSpikePrompt


def write_pixel_gates_nir(prompt: LowRankSpikePrompt, path: str | Path, dt: float = SNNTORCH_DT) -> nir.NIRGraph:
    """Write the pixel gates of ``prompt`` to ``path`` with ``nir.write`` (atomically); read the file back with
    ``nir.read`` and return what was read, after checking that every array came back equal (a one-line LorspError
    if not)."""
    graph = pixel_gates_graph(pixel_gate_parameters(prompt), dt)
    write_hdf5(path, functools.partial(nir.write, graph=graph))
    back = nir.read(path)
    for name in NODES:
        written, read = graph.nodes[name].to_dict(), back.nodes.get(name)
        if read is None or type(read) is not type(graph.nodes[name]):
            raise LorspError(f"{path}: node {name!r} did not come back from nir.read as a {written['type']}")
        for key, value in written.items():
            if isinstance(value, np.ndarray) and not np.array_equal(np.asarray(read.to_dict()[key]), value):
                raise LorspError(f"{path}: node {name!r}'s {key} came back from nir.read changed")
    if sorted(back.edges) != sorted(graph.edges):
        raise LorspError(f"{path}: the edges came back from nir.read changed")
    return back


@torch.no_grad()
def encoded_input(prompt: LowRankSpikePrompt, x: torch.Tensor) -> np.ndarray:
    """The gates' input spikes for images ``x`` ``(N, 3, L, L)``: ``(T, N, 3, L, L)`` float32, the shape of the
    graph's ``Input`` (for ``lorsp-hwsim MODEL.nir --input spikes.npz``)."""
    spikes = prompt.encode(x)
    steps, n = spikes.shape[:2]
    side = prompt.image_size
    return spikes.reshape(steps, n, 3, side, side).float().numpy()
