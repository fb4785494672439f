"""Lava (lava-nc 0.10.0, CPU) runs a general graph: a :class:`~hw_sim.backends.lava_net.LavaNet`.

A float net runs Lava's ``floating_pt`` models (float64); a fixed net (``LavaNet.mode == "fixed"``) its
bit-accurate ``fixed_pt`` models on integers: the input as int32 spikes, every block with its 8-bit
weights and weight exponent and ``num_message_bits = 0`` (binary spikes), every ``LIFReset`` with its
integer ``du``, ``dv``, ``vth`` and ``bias_mant``/``bias_exp``; a read-out's ``Monitor`` gives its integer ``v``.

One ``RingBuffer`` source plays the input, one ``LIFReset`` per neuron node (its ``du``, ``dv``,
``vth`` and bias per neuron; reset at the node's first step of every sample), one ``Dense`` per
synapse block (``Sparse`` where at most :data:`SPARSE_DENSITY` of its weights are nonzero;
``DelayDense``/``DelaySparse`` where the block waits), a Lava ``Reset`` on the buffer of every block
that carries a past step, a :class:`SpikeRecorder` per spiking node and a ``Monitor`` on the voltage of
every read-out. Samples are streamed back to back, ``T`` steps each; the timing of every node and
block is :mod:`hw_sim.backends.lava_net`'s. The run happens in a child process under a deadline
(:mod:`lorsp.plumbing.deadline`). This module and :mod:`hw_sim.backends.lava` are the only ones that
import Lava; :mod:`hw_sim.graph.lava_check` imports this one after ``get_backend("lava")`` loaded Lava.
"""
from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from hw_sim.backends.lava_net import LavaBlock, LavaNet
from hw_sim.lava_runtime import import_lava_runtime
from lorsp.plumbing.deadline import run_with_deadline

import_lava_runtime()
from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import InPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.run_conditions import RunSteps  # noqa: E402
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402
from lava.proc.dense.process import DelayDense, Dense  # noqa: E402
from lava.proc.io.reset import Reset  # noqa: E402
from lava.proc.io.source import RingBuffer as Source  # noqa: E402
from lava.proc.lif.process import LIFReset  # noqa: E402
from lava.proc.monitor.process import Monitor  # noqa: E402
from lava.proc.sparse.process import DelaySparse, Sparse  # noqa: E402

SPARSE_DENSITY = 0.2
"""A block with at most this share of nonzero weights runs as Lava's ``Sparse`` (scipy CSR), else ``Dense``."""
GRADED_BITS = 24
PROGRESS_UPDATES = 20
RUN_TAGS = {"float": "floating_pt", "fixed": "fixed_pt"}


class SpikeRecorder(AbstractProcess):
    """A sink that writes the spikes it receives, step ``s`` to row ``s - 1``, into a ``.npy`` file.

    Lava's own ``RingBuffer`` sink is read back through ``Var.get()``, which took 27 s for 18,496
    neurons by 33 steps here; this one leaves its numbers in a file (a shared memory map) that the
    run reads once it is over.
    """

    def __init__(self, *, shape: tuple[int, ...], path: str, steps: int) -> None:
        super().__init__(shape=shape, path=path, steps=steps)
        self.a_in = InPort(shape=shape)


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySpikeRecorderModel(PyLoihiProcessModel):
    """:class:`SpikeRecorder` in Python: one uint8 row per step in a memory-mapped ``.npy``."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.out = np.lib.format.open_memmap(proc_params["path"], mode="w+", dtype=np.uint8,
                                             shape=(proc_params["steps"], *proc_params["shape"]))

    def run_spk(self) -> None:
        self.out[self.time_step - 1] = self.a_in.recv() != 0


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikeRecorderFixedModel(PySpikeRecorderModel):
    """:class:`SpikeRecorder` behind Lava's bit-accurate ``LIF`` (integer spikes)."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)


RECORDER_MODELS = {"float": PySpikeRecorderModel, "fixed": PySpikeRecorderFixedModel}


@dataclass
class LavaNetRun:
    """What Lava gave: per recorded neuron node ``(T, N, size)`` spikes (uint8), for a read-out voltages (float64;
    a fixed net's integer ``v``)."""

    outputs: dict[str, np.ndarray]
    seconds: float
    details: dict = field(default_factory=dict)

    @property
    def samples_per_s(self) -> float | None:
        samples = next(iter(self.outputs.values())).shape[1] if self.outputs else 0
        return samples / self.seconds if self.seconds > 0 else None


def run_lava_net(net: LavaNet, x: np.ndarray, *, timeout: float,
                 progress: Callable[[int], None] | None = None) -> LavaNetRun:
    """Run input ``x`` ``(T, N, *input_shape)`` through ``net`` in Lava's models of its mode; outputs aligned to its
    steps."""
    T, N = x.shape[:2]
    total = net.steps(N, T)
    data = np.zeros((net.input_size, total), dtype=np.float64 if net.mode == "float" else np.int32)
    start_col = net.input_first - 1
    data[:, start_col:start_col + N * T] = x.reshape(T, N, -1).transpose(2, 1, 0).reshape(net.input_size, N * T)
    chunk = max(1, math.ceil(N / PROGRESS_UPDATES))
    start = time.perf_counter()
    recorded, timing = run_with_deadline(_simulate, (net, data, T, N, chunk), timeout=timeout,
                                         what=f"the Lava {net.mode} run of the graph", on_progress=progress)
    seconds = time.perf_counter() - start
    outputs = {}
    for neurons in (n for n in net.neurons if n.recorded):
        values = recorded[neurons.name][neurons.first - 1: neurons.first - 1 + N * T]  # (N T, size)
        values = values.reshape(N, T, neurons.size).transpose(1, 0, 2)
        outputs[neurons.name] = np.ascontiguousarray(values if neurons.readout else (values != 0).astype(np.uint8))
    kinds = [_block_kind(b) for b in net.blocks]
    processes = {"LIFReset": len(net.neurons), **{k: kinds.count(k) for k in sorted(set(kinds))},
                 "Reset": sum(b.clear for b in net.blocks), "RingBuffer": 1,
                 "SpikeRecorder": sum(n.recorded and not n.readout for n in net.neurons),
                 "Monitor": sum(n.readout for n in net.neurons)}
    details = {**timing, "run_config": f"Loihi2SimCfg(select_tag={RUN_TAGS[net.mode]!r})", "simulated_steps": total,
               "first_step": {"input": net.input_first, **{n.name: n.first for n in net.neurons}},
               "processes": processes}
    return LavaNetRun(outputs, seconds, details)


def _block_kind(block: LavaBlock) -> str:
    kind = "Sparse" if block.density <= SPARSE_DENSITY else "Dense"
    return f"Delay{kind}" if block.delay else kind


def _connection(block: LavaBlock, mode: str):
    """The Lava process of one block (a fixed net's: integer weights with their exponent)."""
    bits = GRADED_BITS if block.graded else 0
    kind = _block_kind(block)
    weights = block.weight if kind.endswith("Sparse") else block.weight.toarray()
    extra = {}
    if mode == "fixed":
        weights = weights.astype(np.int32)
        extra = {"weight_exp": int(block.weight_exp)}
    if kind == "Dense":
        return Dense(weights=weights, num_message_bits=bits, **extra)
    if kind == "Sparse":
        return Sparse(weights=weights, num_message_bits=bits, **extra)
    return (DelayDense if kind == "DelayDense" else DelaySparse)(weights=weights, delays=int(block.delay),
                                                                num_message_bits=bits, **extra)


def _simulate(net: LavaNet, data: np.ndarray, T: int, N: int, chunk: int,
              progress: Callable[[int], None]) -> tuple[dict[str, np.ndarray], dict]:
    """Child side: build the processes, run every step in chunks of samples, read every recorder and monitor."""
    with tempfile.TemporaryDirectory(prefix="lorsp-lava-") as tmp:
        return _simulate_in(net, data, T, N, chunk, progress, Path(tmp))


def _simulate_in(net: LavaNet, data: np.ndarray, T: int, N: int, chunk: int, progress: Callable[[int], None],
                 tmp: Path) -> tuple[dict[str, np.ndarray], dict]:
    t0 = time.perf_counter()
    total = data.shape[1]
    source = Source(data=data)
    cells, sinks, monitors = {}, {}, {}
    for n in net.neurons:
        cells[n.name] = LIFReset(shape=(n.size,), du=n.du, dv=n.dv, vth=n.vth, bias_mant=n.bias,
                                 bias_exp=np.zeros(n.size) if n.bias_exp is None else n.bias_exp,
                                 reset_interval=T, reset_offset=n.first % T)
        if not n.recorded:
            continue
        if n.readout:
            monitors[n.name] = Monitor()
            monitors[n.name].probe(cells[n.name].v, total)
        else:
            sinks[n.name] = SpikeRecorder(shape=(n.size,), path=str(tmp / f"{len(sinks)}.npy"), steps=total)
            cells[n.name].s_out.connect(sinks[n.name].a_in)
    first = {n.name: n.first for n in net.neurons}
    for block in net.blocks:
        conn = _connection(block, net.mode)
        (source if block.source == net.input_name else cells[block.source]).s_out.connect(conn.s_in)
        conn.a_out.connect(cells[block.target].a_in)
        if block.clear:  # zeroed after the source's last step of each sample: step first(target) - 1 (mod T)
            reset = Reset(reset_value=0, interval=T, offset=(first[block.target] - 2) % T)
            reset.connect_var(conn.a_buff)
    # keyed by process instance: Lava would otherwise search this module's directory for the recorder's model
    cfg = Loihi2SimCfg(select_tag=RUN_TAGS[net.mode],
                       exception_proc_model_map={s: RECORDER_MODELS[net.mode] for s in sinks.values()})
    t1 = time.perf_counter()
    first_chunk = None
    try:
        done, ran = 0, 0
        while done < N:
            n = min(chunk, N - done)
            steps = total - ran if done + n == N else n * T
            source.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
            done, ran = done + n, ran + steps
            if first_chunk is None:
                first_chunk = time.perf_counter() - t1
            progress(done)
        t2 = time.perf_counter()
        recorded = {name: np.load(s.proc_params["path"]) for name, s in sinks.items()}
        for name, monitor in monitors.items():
            recorded[name] = np.asarray(next(iter(monitor.get_data().values()))["v"])
    finally:
        source.stop()
    return recorded, {"build_seconds": t1 - t0, "first_chunk_seconds": first_chunk, "run_seconds": t2 - t1,
                      "readout_seconds": time.perf_counter() - t2, "chunk_samples": chunk}
