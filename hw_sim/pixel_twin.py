r"""The pixel gates' Loihi integers as the general fixed-point path holds them, read back from its integer twin.

:func:`twin_integers` reads the integers of :func:`hw_sim.graph.fixed_graph.compile_fixed`'s twin of the
gates' graph (what ``--mode fixed`` and the Lava fixed backend run): the neuron's integers as its Lava plan
reads them (:mod:`hw_sim.graph.lava_fixed_plan`), the kernel by feeding the twin's integer convolution one
spike per input channel, checked by running that convolution on a random spike map. A pixel bundle's
netx file holds :func:`deploy.pixel_fixed.pixel_gate_integers`; ``lorsp-hwsim`` on a pixel bundle refuses
one whose integers differ from these (:mod:`hw_sim.pixel_chip`), and :mod:`pipeline.netx_pixel` writes
netx files from them.
"""
from __future__ import annotations

import numpy as np
import torch

from deploy.nir_graph import flat_graph
from deploy.pixel_fixed import PixelGateIntegers
from deploy.pixel_gates import PixelGateParameters, pixel_gates_graph
from hw_sim.graph.fixed_graph import compile_fixed
from hw_sim.graph.lava_fixed_plan import neuron_integers as lava_neuron_integers
from hw_sim.graph.runner import CompiledGraph, compile_graph
from lorsp.plumbing.errors import LorspError


def fixed_twin(params: PixelGateParameters) -> CompiledGraph:
    """The general fixed-point path's twin of the gates' NIR graph (what ``--mode fixed`` runs)."""
    graph = pixel_gates_graph(params)
    return compile_fixed(compile_graph(flat_graph(graph), float(graph.metadata["dt"])))


def integer_kernel(fixed: CompiledGraph, kernel: int) -> np.ndarray:
    """The twin's integer convolution as a kernel ``(1, 3, k, k)`` in PyTorch's order: one spike in the middle of
    channel ``c`` gives, around it, kernel ``c`` turned by 180 degrees; the kernel must then give the twin's output
    on a random spike map bit for bit, else a one-line LorspError."""
    conv = fixed["conv"]
    _, side, _ = conv.in_shape
    if side < kernel:
        raise LorspError(f"the gates' image ({side} px) is smaller than their {kernel} x {kernel} kernel")
    pad, mid = kernel // 2, side // 2
    probe = torch.zeros((3, *conv.in_shape))
    for c in range(3):
        probe[c, c, mid, mid] = 1.0
    with torch.no_grad():
        out = conv.op.apply(probe)[:, 0, mid - pad: mid + pad + 1, mid - pad: mid + pad + 1]
    weight = out.flip(-1).flip(-2).double().numpy()[None]
    spikes = (torch.rand((2, *conv.in_shape), generator=torch.Generator().manual_seed(0)) < 0.5).float()
    with torch.no_grad():
        again = torch.nn.functional.conv2d(spikes.double(), torch.from_numpy(weight), padding=pad)
        if not torch.equal(again, conv.op.apply(spikes).double()):
            raise LorspError("the gates' integer convolution is not one k x k kernel; no netx conv layer holds it")
    return weight


def twin_integers(params: PixelGateParameters, fixed: CompiledGraph | None = None) -> PixelGateIntegers:
    """The gates' Loihi integers, those of the general fixed-point path (``fixed``: its twin, if already built); a
    one-line LorspError where the neurons differ in ``vth``, ``du`` or ``dv`` (netx holds one per layer)."""
    fixed = fixed_twin(params) if fixed is None else fixed
    gates = fixed["gates"]
    neurons = lava_neuron_integers(gates)
    for name in ("vth", "du", "dv"):
        if np.unique(getattr(neurons, name)).size != 1:
            raise LorspError(f"the gates' neurons differ in {name}; netx holds one per layer")
    side = params.image_size
    return PixelGateIntegers(weight=integer_kernel(fixed, params.weight.shape[-1]).astype(np.int32),
                             bias_mant=neurons.bias.reshape(1, side, side).astype(np.int32),
                             vth=int(neurons.vth[0]), du=int(neurons.du[0]), dv=int(neurons.dv[0]),
                             padding=params.padding, scale=float(gates.op.scale), time_steps=params.time_steps)
