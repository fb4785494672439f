r"""LoRSP's pixel gates (``--gate pixel``) as a NIR graph: their parameters, the graph, and the graph read back.

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

:func:`pixel_gates_graph` checks its own numbers rather than trusting them: the Euler reading of
the node it writes (``beta`` and ``(dt/tau) v_leak`` in float64, rounded to float32 as a float32
simulator holds them) must give PyTorch's ``beta`` and drive bit for bit, else a one-line
:class:`~lorsp.plumbing.errors.LorspError`. :func:`read_pixel_gates` reads the parameters back from a
graph (a bundle's ``prompt_generator.nir``) and refuses one that :func:`pixel_gates_graph` would not write
from them bit for bit. The writer is :func:`export.nir_pixel.write_pixel_gates_nir`; a pixel bundle is read
by :mod:`deploy.pixel_bundle`.
"""
from __future__ import annotations

from dataclasses import dataclass

import nir
import numpy as np
import torch

from deploy.nir_reader import SNNTORCH_DT
from lorsp.plumbing.errors import LorspError
from lorsp.prompts.lorsp import LowRankSpikePrompt

NODES = ("input", "conv", "gates", "output")
"""The graph's node names, in order (``Input``, ``Conv2d``, ``LIF``, ``Output``)."""


@dataclass(frozen=True)
class PixelGateParameters:
    """What the gate neurons compute with, float32 as PyTorch holds it: the convolution's weight ``(1, 3, k, k)``
    (on the grid where the generator learned), the constant drive ``(1, L, L)``, ``beta``, the threshold, the
    convolution's padding and the number of steps ``T``."""

    weight: np.ndarray
    drive: np.ndarray
    beta: float
    threshold: float
    padding: tuple[int, int]
    time_steps: int

    @property
    def image_size(self) -> int:
        return int(self.drive.shape[-1])


@torch.no_grad()
def pixel_gate_parameters(prompt: LowRankSpikePrompt) -> PixelGateParameters:
    """The parameters of a pixel-gated LoRSP prompt's gates (``prompt.gate == "pixel"``), as its
    ``run_generator`` uses them: the weight and drive on the grid where the generator learns
    (``prompt.learns``), PyTorch's float32 values otherwise; a one-line LorspError for another gate."""
    if getattr(prompt, "gate", None) != "pixel":
        raise LorspError(f"the pixel gates' NIR graph needs a LoRSP prompt with --gate pixel, got "
                         f"{getattr(prompt, 'gate', type(prompt).__name__)!r}")
    gates = prompt.spiking_generator
    grid = bool(prompt.learns)
    weight = gates.weight(grid)
    drive = gates.drive(prompt.magnitude(), grid=grid)[0]
    beta = float(gates.neurons.beta.clamp(0, 1))  # snnTorch's Leaky clamps beta so
    return PixelGateParameters(weight=weight.detach().float().numpy().copy(),
                               drive=drive.detach().float().numpy().copy(), beta=beta,
                               threshold=float(gates.neurons.threshold),
                               padding=tuple(int(p) for p in gates.conv.padding), time_steps=int(prompt.time_steps))


def euler_reading(tau: np.ndarray, r: np.ndarray, v_leak: np.ndarray, dt: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A NIR LIF's forward-Euler step as a float32 simulator holds it: ``beta = 1 - dt/tau``, the input gain
    ``r dt/tau`` and the constant ``(dt/tau) v_leak``, each computed in float64 and rounded to float32."""
    f32 = lambda a: np.asarray(a, dtype=np.float64).astype(np.float32)  # noqa: E731
    return f32(1.0 - dt / tau), f32(r * dt / tau), f32(v_leak * dt / tau)


def pixel_gates_graph(params: PixelGateParameters, dt: float = SNNTORCH_DT) -> nir.NIRGraph:
    """The NIR graph of the gates (module docstring), ``dt`` in its metadata; a one-line LorspError where
    the Euler reading of the LIF node would not give PyTorch's ``beta`` and drive bit for bit."""
    if not 0.0 <= params.beta < 1.0:
        raise LorspError(f"the gates' beta is {params.beta:g}; NIR's LIF needs a finite tau = dt / (1 - beta)")
    side = params.image_size
    shape = (1, side, side)
    ratio = 1.0 / (1.0 - params.beta)  # tau / dt
    tau = np.full(shape, dt * ratio)
    r = np.full(shape, ratio)
    v_leak = params.drive.astype(np.float64) * ratio
    beta, gain, leak = euler_reading(tau, r, v_leak, dt)
    if not (np.all(beta == np.float32(params.beta)) and np.all(gain == 1.0)
            and np.array_equal(leak, params.drive.astype(np.float32))):
        raise LorspError(f"the LIF node's Euler reading does not give the gates' beta {params.beta:g} and drive "
                         f"exactly in float32; no exact NIR graph for these gates")
    k = params.weight.shape[-1]
    if k != 2 * params.padding[0] + 1:
        raise LorspError(f"the gates' {k} x {k} convolution with padding {params.padding} does not keep the "
                         f"image size")
    nodes = {
        "input": nir.Input(input_type=np.array([3, side, side])),
        "conv": nir.Conv2d(input_shape=(side, side), weight=params.weight.astype(np.float32),
                           stride=np.array([1, 1]), padding=np.array(params.padding),
                           dilation=np.array([1, 1]), groups=1, bias=np.zeros(1, np.float32)),
        "gates": nir.LIF(tau=tau, r=r, v_leak=v_leak, v_threshold=np.full(shape, params.threshold),
                         v_reset=np.zeros(shape)),
        "output": nir.Output(output_type=np.array(list(shape))),
    }
    return nir.NIRGraph(nodes=nodes, edges=list(zip(NODES, NODES[1:])),
                        metadata={"dt": float(dt), "source": "lorsp pixel gates (export/nir_pixel.py)",
                                  "time_steps": params.time_steps})


def read_pixel_gates(graph: nir.NIRGraph, source: str) -> PixelGateParameters:
    """The gates' parameters read back from ``graph`` (a pixel bundle's NIR graph); a one-line LorspError unless
    the graph is exactly what :func:`pixel_gates_graph` writes from them (every node's every array, the edges, ``dt``).
    """
    kinds = {"input": nir.Input, "conv": nir.Conv2d, "gates": nir.LIF, "output": nir.Output}
    nodes = graph.nodes
    if set(nodes) != set(NODES) or any(not isinstance(nodes[name], kind) for name, kind in kinds.items()):
        raise LorspError(f"{source}: not a pixel-gate graph (nodes {sorted(nodes)[:6]}; expected "
                         f"{', '.join(NODES)} as Input, Conv2d, LIF, Output)")
    try:
        dt = float(np.asarray(graph.metadata["dt"]))
        steps = int(np.asarray(graph.metadata["time_steps"]))
    except (KeyError, TypeError, ValueError):
        raise LorspError(f"{source}: the graph's metadata lacks a numeric dt or time_steps") from None
    conv, lif = nodes["conv"], nodes["gates"]
    weight = np.asarray(conv.weight)
    tau, v_leak = np.asarray(lif.tau, dtype=np.float64), np.asarray(lif.v_leak, dtype=np.float64)
    threshold = np.asarray(lif.v_threshold, dtype=np.float64)
    if weight.ndim != 4 or weight.shape[:2] != (1, 3) or tau.ndim != 3 or tau.shape[0] != 1 or tau.size == 0 \
            or v_leak.shape != tau.shape or threshold.size == 0:
        raise LorspError(f"{source}: the Conv2d weight {list(weight.shape)} or the LIF's shape {list(tau.shape)} is "
                         f"not the gates' (1, 3, k, k) and (1, L, L)")
    if not (dt > 0 and np.isfinite(dt) and np.all(np.isfinite(tau)) and np.all(tau > dt)
            and np.all(np.isfinite(v_leak)) and 1 <= steps <= 1024):
        raise LorspError(f"{source}: the gates' dt, tau, v_leak or time_steps are out of range")
    ratio = tau.reshape(-1)[0] / dt
    beta = float(np.float32(1.0 - 1.0 / ratio))
    drive = (v_leak * dt / tau).astype(np.float32)
    params = PixelGateParameters(weight=weight.astype(np.float32), drive=drive, beta=beta,
                                 threshold=float(threshold.reshape(-1)[0]),
                                 padding=tuple(int(p) for p in np.asarray(conv.padding).reshape(-1)[:2]),
                                 time_steps=steps)
    again = pixel_gates_graph(params, dt)
    for name in NODES:
        for key, value in again.nodes[name].to_dict().items():
            if isinstance(value, np.ndarray) and not np.array_equal(np.asarray(nodes[name].to_dict().get(key)), value):
                raise LorspError(f"{source}: node {name!r}'s {key} is not what the gates' parameters give; not a "
                                 f"pixel-gate graph lorsp wrote")
    if sorted(tuple(e) for e in graph.edges) != sorted(again.edges):
        raise LorspError(f"{source}: the graph's edges are not the gates' chain {' -> '.join(NODES)}")
    return params
