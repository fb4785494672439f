r"""Lava backend (lava-nc 0.10.0, CPU): the network as Loihi 2 processes.

Per layer ``k`` (0-based) and per group of neurons sharing ``du, dv, vth``
(:func:`deploy.network.neuron_groups`; one group when a layer's neurons are alike):
``Dense(W)`` from every group of the layer before into ``LIFReset`` of the group; a
``RingBuffer`` source plays the input spikes, a ``RingBuffer`` sink per group records
the output spikes. Parameters per mode:

=========  ====================================  =========================================
           ``float`` (``floating_pt``)            ``fixed`` (``select_tag="fixed_pt"``)
=========  ====================================  =========================================
weights    ``W`` (float64)                       :mod:`deploy.fixed_point` integers
bias       ``bias_mant = b``                     ``bias_mant = round(s b)``, ``bias_exp = 6``
``du``     ``1 - alpha`` (1: no current state)   ``4095 - round(4096 alpha)`` (4095)
``dv``     ``1 - beta``                          ``round(4096 (1 - beta))``
``vth``    ``theta``                             ``round(s theta)``
=========  ====================================  =========================================

Delay and reset. ``Dense`` sends on step ``t`` what it summed on step ``t - 1``, so layer
``k`` sees input column ``c`` on Lava step ``c + k + 2`` (steps count from 1, the source
sends column ``c`` on step ``c + 1``) and its sink stores it at index ``c + k + 1``.
Samples are streamed back to back, ``T`` columns each, and every layer resets its ``u``
and ``v`` when its first column of a sample arrives (``LIFReset(reset_interval=T,
reset_offset=k + 2)``, the pipelined reset lava-dl's netx uses; :mod:`deploy.lava_settings`). A run of ``N`` samples
is ``N T + L`` steps for ``L`` layers, and the output of layer ``k`` is read from index
``k + 1`` on: no padding between samples, and nothing of one sample reaches the next.

Each run happens in a child process under a deadline (:mod:`lorsp.plumbing.deadline`). Input,
mode and timeout are checked before, for every backend alike
(:func:`hw_sim.backends.base.checked`). This module imports Lava; :mod:`hw_sim.backends`
imports it only when the ``lava`` backend is first asked for.
"""
from __future__ import annotations

import math
import time

import numpy as np

from hw_sim.backends.registry import register_backend
from hw_sim.backends.base import Progress, SimResult
from hw_sim.backends.processes import LavaLayer, lava_layers
from lorsp.plumbing.deadline import run_with_deadline
from hw_sim.lava_runtime import import_lava_runtime
from deploy.lava_settings import layer_reset_offset, output_lag
from deploy.network import SpikingNetwork

# Lava is imported here, at module import, before any child is forked; its first import sets the
# multiprocessing start method, which import_lava_runtime makes safe in a process that already has one.
import_lava_runtime()
from lava.magma.core.run_conditions import RunSteps  # noqa: E402
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: E402
from lava.proc.dense.process import Dense  # noqa: E402
from lava.proc.io.sink import RingBuffer as SpikeSink  # noqa: E402
from lava.proc.io.source import RingBuffer as SpikeSource  # noqa: E402
from lava.proc.lif.process import LIFReset  # noqa: E402

RUN_TAGS = {"float": "floating_pt", "fixed": "fixed_pt"}
PROGRESS_UPDATES = 20


@register_backend("lava")
def run_lava(network: SpikingNetwork, spikes_in: np.ndarray, *, mode: str, timeout: float,
             progress: Progress | None = None) -> SimResult:
    """Run ``spikes_in`` ``(T, N, D)`` through Lava; spikes aligned to the input steps.

    ``details["simulated_steps"]`` is the steps Lava ran, ``N T + L``; ``SimResult.steps`` is ``T``.
    """
    T, N, D = spikes_in.shape
    layers = lava_layers(network, mode)
    n_layers = len(layers)
    # sample-major columns: column n*T + t holds step t of sample n; then L empty columns drain the pipeline
    columns = spikes_in.transpose(2, 1, 0).reshape(D, N * T)
    data = np.concatenate([columns, np.zeros((D, n_layers), dtype=columns.dtype)], axis=1)
    data = data.astype(np.float64 if mode == "float" else np.int32)
    chunk = max(1, math.ceil(N / PROGRESS_UPDATES))
    start = time.perf_counter()
    raw, timing = run_with_deadline(_simulate, (layers, data, T, N, chunk, RUN_TAGS[mode]), timeout=timeout,
                                    what=f"the Lava {mode} run", on_progress=progress)
    seconds = time.perf_counter() - start
    spikes = []
    for k, (layer, sinks) in enumerate(zip(network.layers, raw)):
        out = np.zeros((layer.size, N * T), dtype=np.uint8)
        for group, recorded in zip(layers[k].groups, sinks):
            out[group.index] = recorded[:, output_lag(k): output_lag(k) + N * T] != 0
        spikes.append(np.ascontiguousarray(out.reshape(layer.size, N, T).transpose(2, 1, 0)))
    details = {**timing, "run_config": f"Loihi2SimCfg(select_tag={RUN_TAGS[mode]!r})",
               "simulated_steps": N * T + n_layers,
               "delay_steps_removed": [output_lag(k) for k in range(n_layers)],
               "reset": "LIFReset(reset_interval=T, reset_offset=k+2) per layer k",
               "processes": {"LIFReset": sum(len(l.groups) for l in layers),
                             "Dense": sum(len(l.groups) * (len(layers[k - 1].groups) if k else 1)
                                          for k, l in enumerate(layers)),
                             "RingBuffer": 1 + sum(len(l.groups) for l in layers)}}
    return SimResult(layer_spikes=spikes, mode=mode, backend="lava", seconds=seconds,
                     run_seconds=timing["run_seconds"], details=details)


def _simulate(layers: list[LavaLayer], data: np.ndarray, T: int, N: int, chunk: int, tag: str,
              progress: Progress) -> tuple[list[list[np.ndarray]], dict]:
    """Child side: build the processes, run ``N T + L`` steps in chunks, read every sink."""
    t0 = time.perf_counter()
    steps = data.shape[1]
    source = SpikeSource(data=data)
    previous = [(source.s_out, np.arange(data.shape[0]))]
    sinks: list[list[SpikeSink]] = []
    for k, layer in enumerate(layers):
        outputs, layer_sinks = [], []
        for g in layer.groups:
            lif = LIFReset(shape=(len(g.index),), du=g.du, dv=g.dv, vth=g.vth, bias_mant=layer.bias_mant[g.index],
                           bias_exp=layer.bias_exp[g.index], reset_interval=T, reset_offset=layer_reset_offset(k))
            for port, src in previous:
                dense = Dense(weights=layer.weight[np.ix_(g.index, src)])
                port.connect(dense.s_in)
                dense.a_out.connect(lif.a_in)
            sink = SpikeSink(shape=(len(g.index),), buffer=steps)
            lif.s_out.connect(sink.a_in)
            outputs.append((lif.s_out, g.index))
            layer_sinks.append(sink)
        previous = outputs
        sinks.append(layer_sinks)
    cfg = Loihi2SimCfg(select_tag=tag)
    t1 = time.perf_counter()
    first_chunk = None
    try:
        done = 0
        while done < N:
            n = min(chunk, N - done)
            last = done + n == N
            source.run(condition=RunSteps(num_steps=n * T + (len(layers) if last else 0)), run_cfg=cfg)
            done += n
            if first_chunk is None:
                first_chunk = time.perf_counter() - t1
            progress(done)
        t2 = time.perf_counter()
        recorded = [[np.asarray(s.data.get()) for s in layer_sinks] for layer_sinks in sinks]
    finally:
        source.stop()
    return recorded, {"build_seconds": t1 - t0, "first_chunk_seconds": first_chunk,
                      "run_seconds": t2 - t1, "readout_seconds": time.perf_counter() - t2, "chunk_samples": chunk}
