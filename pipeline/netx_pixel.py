r"""A pixel-gated LoRSP prompt's gates as a lava-dl netx file, with the general fixed-point path's integers.

:func:`write_pixel_gates_netx` chains three stages: the gates' NIR graph
(:func:`export.nir_pixel.pixel_gates_graph`), its fixed-point twin
(:func:`hw_sim.graph.fixed_graph.compile_fixed`, read back by :mod:`hw_sim.pixel_twin`: the scale, the
8-bit kernel, each compartment's bias mantissa, ``vth``, ``du``, ``dv``, the numbers ``lorsp-hwsim MODEL.nir
--mode fixed`` and its Lava backend run) and the netx writer (:func:`export.netx_pixel.write_pixel_gates_netx_file`). Nothing is quantised
here: the neuron's integers are read back from the twin's compartment as its Lava plan reads them
(:func:`hw_sim.graph.lava_fixed_plan`), the kernel by feeding the twin's integer convolution one
spike per input channel, and checked by running that convolution on a random spike map.
"""
from __future__ import annotations

from pathlib import Path

from export.netx_pixel import PixelGateIntegers, write_pixel_gates_netx_file
from export.nir_pixel import PixelGateParameters, pixel_gate_parameters
from hw_sim.pixel_twin import twin_integers  # the twin's integers (lorsp-hwsim checks a bundle's netx file against them)
from lorsp.prompts.lorsp import LowRankSpikePrompt


def write_pixel_gates_netx(prompt: LowRankSpikePrompt | PixelGateParameters, path: str | Path) -> PixelGateIntegers:
    """Write the gates of ``prompt`` (a pixel-gated LoRSP prompt, or its :class:`PixelGateParameters`) to ``path`` as a
    lava-dl netx file (atomically); return the integers written. A one-line LorspError for another gate."""
    params = prompt if isinstance(prompt, PixelGateParameters) else pixel_gate_parameters(prompt)
    ints = twin_integers(params)
    write_pixel_gates_netx_file(ints, path)
    return ints
