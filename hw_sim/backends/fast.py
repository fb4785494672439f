r"""Fast backend: Lava's neuron and synapse arithmetic, batched over images, on the graph runner.

It compiles the processes of :func:`hw_sim.backends.processes.lava_layers` (the very numbers the
Lava backend hands to Lava) into a chain of the graph interpreter's compiled form
(:class:`hw_sim.graph.runner.CompiledGraph`: ``input -> Dense -> LIF -> Dense -> LIF ...``), each node
lava-nc 0.10.0's CPU model (:mod:`hw_sim.backends.lava_dense`, :mod:`hw_sim.backends.lava_lif`), and
steps it with :func:`hw_sim.graph.runner.run_graph`, the runner of ``lorsp-hwsim MODEL.nir``. It gives
the same spikes as the Lava backend, element for element, in both modes. ``docs/fastsim.md`` lists
every rule with the Lava function it reproduces.

Time. Lava's pipeline is a pure shift: layer ``k`` processes column ``c`` of the stream on
Lava step ``c + k + 2`` (one step of ``Dense`` delay per layer) and resets ``u, v`` on the
first column of every sample (``LIFReset(reset_interval=T, reset_offset=k + 2)``). So every
sample starts from ``u = v = 0`` and layer ``k`` at sample step ``t`` sees the spikes of layer
``k - 1`` at step ``t``: the graph runner's convention (no delay per node). :func:`lava_timeline`
puts a layer's spikes back on Lava's own step index (with the delay), as the Lava sinks record them.

``float`` (``PyDenseModelFloat``, ``PyLifResetModelFloat``; float64):

.. math::

    a_i[t] = \sum_{j:\, s_j[t] = 1} W_{ij} \qquad
    u[t] = u[t-1]\,(1 - d_u) + a[t] \qquad
    v[t] = v[t-1]\,(1 - d_v) + u[t] + b

    s[t] = [\, v[t] > v_{th} \,], \qquad v[t] \leftarrow 0 \text{ where } s[t] = 1

with Lava's (pairwise) order of the sum where a row's float64 sums are inexact
(:func:`hw_sim.backends.lava_dense.exact_sum_rows`).

``fixed`` (``PyDenseModelBitAcc``, ``PyLifResetModelBitAcc``; integers, ``M = 2^23``):

.. math::

    w = \text{Lava's Dense weight rule per Dense block (:func:`~hw_sim.backends.lava_dense.dense_weights`)}
    \qquad a[t] = \mathrm{int32}\Big(\sum_j w_j s_j[t]\Big)

    u[t] = \mathrm{wrap}\big(\mathrm{rz}(u[t-1]\,(4096 - d_u - 1) / 2^{12}) + a[t]\cdot 2^6\big)

    v[t] = \mathrm{clip}\big(\mathrm{rz}(v[t-1]\,(4096 - d_v) / 2^{12}) + u[t] + b_m 2^{b_e},\
           -(M - 1),\ M - 1\big)

    s[t] = [\, v[t] > v_{th} \cdot 2^6 \,], \qquad v[t] \leftarrow 0 \text{ where } s[t] = 1

``rz``: rounding towards zero; ``wrap``: ``x - 2M`` above ``M``, ``x + 2M`` at or below ``-M``
(so ``u`` lies in ``(-M, M]``); ``clip``: saturation; sums that leave int32 wrap as Lava's int32
ones do (:class:`hw_sim.graph.fixed_neurons.FixedNeuron`, the general fixed-point path's compartment).

No child process is needed: ``timeout`` is checked every step, with the Lava backend's message.
Input, mode and timeout are checked before, for every backend alike
(:func:`hw_sim.backends.base.checked`).
"""
from __future__ import annotations

import time
import weakref
from typing import Sequence

import numpy as np

from deploy.network import SpikingNetwork
from deploy.nir_graph import FlatGraph, GraphNode
from hw_sim.backends.base import Progress, SimResult, check_mode
from hw_sim.backends.lava_dense import DenseSynapse, lava_dense
from hw_sim.backends.lava_lif import KIND, lava_lif
from hw_sim.backends.processes import LavaLayer, lava_layers
from hw_sim.backends.registry import register_backend
from hw_sim.graph.runner import CompiledGraph, CompiledNode, run_graph
from hw_sim.graph.synapses import passthrough

CHUNK_SAMPLES = 4096
"""Images per batch: bounds the memory of a run (5-6 kB per image for the LoRSP generator at T = 8,
``benchmarks/fastsim.py``) and paces progress."""
INPUT = "input"


def layer_name(k: int) -> str:
    """The chain's node of layer ``k``'s neurons (its ``Dense`` is ``layer_name(k) + ".dense"``)."""
    return f"layer{k}"


def chain_graph(layers: Sequence[LavaLayer], mode: str, input_size: int) -> CompiledGraph:
    """The chain ``input -> Dense -> LIF -> ...`` of ``layers`` in ``mode``, in the graph runner's compiled form;
    a layer's ``Dense`` blocks follow the neuron groups of the layer before."""
    check_mode(mode)
    nodes = [CompiledNode(GraphNode(INPUT, "Input", None, ()), passthrough("Input"), (input_size,), (input_size,))]
    sources: Sequence[np.ndarray] = [np.arange(input_size)]
    before = INPUT
    for k, layer in enumerate(layers):
        size, name = (int(layer.weight.shape[0]),), layer_name(k)
        fan_in = (int(layer.weight.shape[1]),)
        nodes.append(CompiledNode(GraphNode(f"{name}.dense", "Dense", layer, (before,)),
                                  lava_dense(layer, sources, mode), fan_in, size, spike_input=True))
        nodes.append(CompiledNode(GraphNode(name, KIND, layer, (f"{name}.dense",)), lava_lif(layer, mode),
                                  size, size))
        sources, before = [g.index for g in layer.groups], name
    graph = FlatGraph(tuple(c.node for c in nodes), INPUT, (input_size,), (), {})
    return CompiledGraph(graph, nodes, dt=1.0)


def lava_order(compiled: CompiledGraph) -> list[bool]:
    """Per layer: whether some of its float sums follow Lava's order (inexact rows)."""
    return [bool(c.op.lava_order) for c in compiled.nodes if isinstance(c.op, DenseSynapse)]


_COMPILED: dict[tuple[int, str], tuple[weakref.ref, CompiledGraph]] = {}


def compiled_chain(network: SpikingNetwork, mode: str) -> CompiledGraph:
    """:func:`chain_graph` of ``network`` in ``mode``, built once per network object and reused.

    A co-simulation calls the backend once per batch with the same (frozen) network; building
    Lava's quantised layers each time cost about a third of the generator stage (docs/cosim.md).
    The entry goes when the network does; the compiled nodes keep no state between runs.
    """
    key = (id(network), mode)
    hit = _COMPILED.get(key)
    if hit is not None and hit[0]() is network:
        return hit[1]
    compiled = chain_graph(lava_layers(network, mode), mode, network.input_size)
    _COMPILED[key] = (weakref.ref(network, lambda _, key=key: _COMPILED.pop(key, None)), compiled)
    return compiled


def run_chain(compiled: CompiledGraph, spikes_in: np.ndarray, *, timeout: float = 600.0, what: str = "the chain run",
              progress: Progress | None = None) -> list[np.ndarray]:
    """The spikes ``(T, N, n)`` uint8 of every layer of ``compiled`` for ``(T, N, D)`` binary input, aligned to the
    input steps, every sample from rest."""
    names = [c.name for c in compiled.nodes if c.node.kind == KIND]
    run = run_graph(compiled, spikes_in, record=names, timeout=timeout, progress=progress, count=False,
                    chunk=CHUNK_SAMPLES, what=what, output_dtype=np.uint8, block=max(1, spikes_in.shape[0]))
    return [run.outputs[name] for name in names]


def lava_timeline(spikes: np.ndarray, layer: int, n_layers: int) -> np.ndarray:
    """Layer ``layer``'s aligned spikes ``(T, N, n)`` placed where Lava's sink records them.

    Returns ``(n, N T + L)``: column ``N_i T + t + layer + 1`` holds step ``t`` of sample ``N_i``
    (one step of ``Dense`` delay per layer, and the source sends column ``c`` on step ``c + 1``).
    Columns ``0 .. layer`` are the pipeline filling up; they are left zero (Lava may record
    bias-driven spikes there, which its pipelined reset then discards).
    """
    T, N, n = spikes.shape
    out = np.zeros((n, N * T + n_layers), dtype=np.uint8)
    out[:, layer + 1: layer + 1 + N * T] = spikes.transpose(2, 1, 0).reshape(n, N * T)
    return out


@register_backend("fast")
def run_fast(network: SpikingNetwork, spikes_in: np.ndarray, *, mode: str, timeout: float,
             progress: Progress | None = None) -> SimResult:
    """Run ``spikes_in`` ``(T, N, D)`` with Lava's arithmetic, all images at once; spikes aligned to the input steps."""
    start = time.perf_counter()
    T, N, _ = spikes_in.shape
    build_reused = (id(network), mode) in _COMPILED
    compiled = compiled_chain(network, mode)
    t_run = time.perf_counter()
    first_chunk: list[float] = []

    def done(samples: int) -> None:
        if not first_chunk:
            first_chunk.append(time.perf_counter() - t_run)
        if progress is not None:
            progress(samples)

    spikes = run_chain(compiled, spikes_in, timeout=timeout, what=f"the fast {mode} run", progress=done)
    run_seconds = time.perf_counter() - t_run
    layers = len(network.layers)
    details = {"equations": "lava-nc 0.10.0 " + ("PyDenseModelFloat + PyLifResetModelFloat" if mode == "float"
                                                 else "PyDenseModelBitAcc + PyLifResetModelBitAcc"),
               "build_seconds": t_run - start, "build_reused": build_reused,
               "first_chunk_seconds": first_chunk[0], "chunk_samples": CHUNK_SAMPLES,
               "lava_delay_steps_aligned": [k + 1 for k in range(layers)],
               "lava_steps_equivalent": N * T + layers}
    if mode == "float":
        details["float_sums"] = ["Lava's order, per step" if ordered else "exact (any order)"
                                 for ordered in lava_order(compiled)]
    return SimResult(layer_spikes=spikes, mode=mode, backend="fast", seconds=time.perf_counter() - start,
                     run_seconds=run_seconds, details=details)
