r"""A pixel-gated LoRSP prompt's gates as a lava-dl netx file, with the general fixed-point path's integers.

:func:`write_pixel_gates_netx` chains three stages: the gates' NIR graph
(:func:`export.nir_pixel.pixel_gates_graph`), its fixed-point twin
(:func:`hw_sim.graph.fixed_graph.compile_fixed`: the scale, the 8-bit kernel, each compartment's bias
mantissa, ``vth``, ``du``, ``dv``, the numbers ``lorsp-hwsim MODEL.nir --mode fixed`` and its Lava backend
run) and the netx writer (:func:`export.netx_pixel.write_pixel_gates_netx_file`). Nothing is quantised
here: the neuron's integers are read back from the twin's compartment as its Lava plan reads them
(:func:`hw_sim.graph.lava_fixed_plan`), the kernel by feeding the twin's integer convolution one
spike per input channel, and checked by running that convolution on a random spike map.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deploy.nir_graph import flat_graph
from export.netx_pixel import PixelGateIntegers, write_pixel_gates_netx_file
from export.nir_pixel import PixelGateParameters, pixel_gate_parameters, pixel_gates_graph
from hw_sim.graph.fixed_graph import compile_fixed
from hw_sim.graph.lava_fixed_plan import _neurons as lava_neuron_integers
from hw_sim.graph.runner import CompiledGraph, compile_graph
from lorsp.plumbing.errors import LorspError
from lorsp.prompts.lorsp import LowRankSpikePrompt


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


def pixel_gate_integers(params: PixelGateParameters) -> PixelGateIntegers:
    """The gates' Loihi integers, those of the general fixed-point path; a one-line LorspError where the neurons
    differ in ``vth``, ``du`` or ``dv`` (netx holds one per layer)."""
    fixed = fixed_twin(params)
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


def write_pixel_gates_netx(prompt: LowRankSpikePrompt | PixelGateParameters, path: str | Path) -> PixelGateIntegers:
    """Write the gates of ``prompt`` (a pixel-gated LoRSP prompt, or its :class:`PixelGateParameters`) to ``path`` as a
    lava-dl netx file (atomically); return the integers written. A one-line LorspError for another gate."""
    params = prompt if isinstance(prompt, PixelGateParameters) else pixel_gate_parameters(prompt)
    ints = pixel_gate_integers(params)
    write_pixel_gates_netx_file(ints, path)
    return ints
