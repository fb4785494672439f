r"""LoRSP's pixel gates (``--gate pixel``) as a NIR graph, for ``lorsp-hwsim MODEL.nir`` and any NIR reader.

The gate neurons of :class:`lorsp.prompts.pixel_gates.PixelGates` after training are a fixed network:
one snnTorch ``Leaky`` (zero reset, no reset delay) per pixel, whose current at step ``t`` is
``conv3x3(s_t) + drive``, ``s_t`` the image's ``3 x L x L`` input spikes and ``drive`` a constant map
``(1, L, L)`` (the convolution's bias folded in). In NIR 1.0.8 terms:

    Input (3, L, L) -> Conv2d (3 -> 1, 3 x 3, padding 1, bias 0) -> LIF (1, L, L) -> Output

with, per neuron (``dt`` the graph metadata's step, snnTorch's ``1e-4`` s),

.. math::

    \tau = \frac{dt}{1 - \beta}, \quad r = \frac{\tau}{dt}, \quad
    v_{leak} = \frac{\tau}{dt}\,\mathrm{drive}, \quad v_{threshold} = \theta, \quad v_{reset} = 0.

NIR's LIF is ``tau dv/dt = (v_leak - v) + r I``; one forward-Euler step of ``dt`` (snnTorch's
reading, lorsp's runner, Norse's ``LIFBox``) is ``v = (1 - dt/tau) v + (dt/tau) v_leak + (r dt/tau) I``
``= beta v + drive + I``: the constant drive is the leak's target, the convolution is the input, and
the gain ``r dt / tau`` is 1, as snnTorch's own export writes it. With ``beta = 1/2`` (LoRSP's)
``tau = 2 dt``, ``r = 2`` and ``v_leak = 2 drive``, all exact in binary. The drive does not go into the
Conv2d's bias: NIR's convolution bias is one value per output channel, not per pixel.

:func:`pixel_gates_graph` (:mod:`deploy.pixel_gates`) checks its own numbers rather than trusting them: the Euler reading of
the node it writes (``beta`` and ``(dt/tau) v_leak`` in float64, rounded to float32 as a float32
simulator holds them) must give PyTorch's ``beta`` and drive bit for bit, else a one-line
:class:`~lorsp.plumbing.errors.LorspError`. :func:`write_pixel_gates_nir` writes the graph with
``nir.write`` and reads it back with ``nir.read``, comparing every array.
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
