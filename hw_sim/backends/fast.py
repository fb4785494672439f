r"""Fast backend: Lava's neuron and synapse arithmetic, batched over images and vectorised (numpy).

It steps the processes of :func:`hw_sim.backends.processes.lava_layers` (the very numbers the
Lava backend hands to Lava) with the equations of lava-nc 0.10.0's CPU models, and gives the
same spikes as the Lava backend, element for element, in both modes. ``docs/fastsim.md``
lists every rule with the Lava function it reproduces.

Time. Lava's pipeline is a pure shift: layer ``k`` processes column ``c`` of the stream on
Lava step ``c + k + 2`` (one step of ``Dense`` delay per layer) and resets ``u, v`` on the
first column of every sample (``LIFReset(reset_interval=T, reset_offset=k + 2)``). So every
sample starts from ``u = v = 0`` and layer ``k`` at sample step ``t`` sees the spikes of layer
``k - 1`` at step ``t``. This backend computes those aligned spikes directly, layer by layer:
one matrix product gives the synaptic input of every step and image, then ``T`` vectorised
neuron updates over ``(images, neurons)``. :func:`lava_timeline` puts a layer's spikes back on
Lava's own step index (with the delay), as the Lava sinks record them.

``float`` (``PyDenseModelFloat``, ``PyLifResetModelFloat``; float64):

.. math::

    a_i[t] = \sum_{j:\, s_j[t] = 1} W_{ij} \qquad
    u[t] = u[t-1]\,(1 - d_u) + a[t] \qquad
    v[t] = v[t-1]\,(1 - d_v) + u[t] + b

    s[t] = [\, v[t] > v_{th} \,], \qquad v[t] \leftarrow 0 \text{ where } s[t] = 1

Lava sums the weights of the spiking inputs with numpy's (pairwise) ``sum``. Where every
partial sum of a row of ``W`` is exact in float64 (:func:`exact_sum_rows`, checked once per
layer; true for float32 weights of ordinary range), every order gives Lava's number and one
matrix product is exact. Other rows are summed per step and image in Lava's own order.

``fixed`` (``PyDenseModelBitAcc``, ``PyLifResetModelBitAcc``; integers, ``M = 2^23``):

.. math::

    w = \text{Lava's Dense weight rule per Dense block (:func:`dense_weights`)} \qquad
    a[t] = \mathrm{int32}\Big(\sum_j w_j s_j[t]\Big)

    u[t] = \mathrm{wrap}\big(\mathrm{rz}(u[t-1]\,(4096 - d_u - 1) / 2^{12}) + a[t]\cdot 2^6\big)

    v[t] = \mathrm{clip}\big(\mathrm{rz}(v[t-1]\,(4096 - d_v) / 2^{12}) + u[t] + b_m 2^{b_e},\
           -(M - 1),\ M - 1\big)

    s[t] = [\, v[t] > v_{th} \cdot 2^6 \,], \qquad v[t] \leftarrow 0 \text{ where } s[t] = 1

``rz``: rounding towards zero; ``wrap``: ``x - 2M`` above ``M``, ``x + 2M`` at or below ``-M``
(so ``u`` lies in ``(-M, M]``); ``clip``: saturation. ``a``, ``u`` and ``v`` are int32 as in
Lava, so even an int32 overflow would wrap the same way.

No child process is needed: ``timeout`` is checked between chunks of :data:`CHUNK_SAMPLES`
images, with the Lava backend's message. Input, mode and timeout are checked before, for
every backend alike (:func:`hw_sim.backends.base.checked`).
"""
from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from hw_sim.backends.registry import register_backend
from hw_sim.backends.base import Progress, SimResult, check_mode
from hw_sim.backends.processes import LavaLayer, lava_layers
from deploy.fixed_point import DECAY_UNITY, STATE_SHIFT
from deploy.network import SpikingNetwork
from lorsp.plumbing.errors import LorspError

CHUNK_SAMPLES = 4096
"""Images per batch: bounds the memory of a run (5-6 kB per image for the LoRSP generator at T = 8,
``benchmarks/fastsim.py``) and paces progress and the ``timeout`` check."""
DECAY_SHIFT = 12                 # lava AbstractPyLifModelFixed.decay_shift: DECAY_UNITY = 2 ** 12
UV_LIMIT = 2 ** 23               # lava AbstractPyLifModelFixed.max_uv_val: u, v are 24-bit
CURRENT_OFFSET = 1               # lava AbstractPyLifModelFixed.ds_offset (dm_offset is 0)
WEIGHT_BITS = 8                  # lava Dense: clip_weights(num_bits=8), num_weight_bits 8, weight_exp 0


# --------------------------------------------------------------------------- synapses
def dense_weights(block: np.ndarray) -> np.ndarray:
    """The weights one bit-accurate Lava ``Dense`` uses for ``block`` (int64).

    ``PyDenseModelBitAcc.run_spk`` applies ``clip_weights(num_bits=8)`` and
    ``truncate_weights(num_weight_bits=8)`` (``lava/utils/weightutils.py``) with the sign mode
    of its own block (``determine_sign_mode``: all ``>= 0`` excitatory, all ``<= 0``
    inhibitory, else mixed):

    * excitatory: ``clip(w, 0, 255)``; inhibitory: ``clip(w, -255, 0)``;
    * mixed: ``clip(w, -256, 255)`` with the lowest bit dropped, ``(w >> 1) << 1`` (rounds
      towards minus infinity: 255 -> 254, -255 -> -256).

    ``weight_exp`` is 0 (no process sets it), so the accumulated sum is shifted by nothing.
    """
    w = np.asarray(block).astype(np.int64)
    top = 2 ** WEIGHT_BITS
    if w.size == 0 or w.min() >= 0:
        return np.clip(w, 0, top - 1)
    if w.max() <= 0:
        return np.clip(w, -(top - 1), 0)
    return (np.clip(w, -top, top - 1) >> 1) << 1


def effective_weights(layer: LavaLayer, sources: Sequence[np.ndarray]) -> np.ndarray:
    """:func:`dense_weights` of every (target group, source group) block: one Lava ``Dense`` each."""
    w = np.zeros(layer.weight.shape, np.int64)
    for group in layer.groups:
        for src in sources:
            w[np.ix_(group.index, src)] = dense_weights(layer.weight[np.ix_(group.index, src)])
    return w


def exact_sum_rows(weight: np.ndarray) -> np.ndarray:
    r"""Rows of ``weight`` whose every partial sum is a float64 exactly (so any order gives one result).

    A row's values are integer multiples of ``2^q`` (``q``: the lowest set bit among them), and
    so is every partial sum, whose magnitude is at most ``sum |w|``. Every multiple of ``2^q``
    below ``2^{q+53}`` is a float64; ``2^{q+52}`` against the rounded ``sum |w|`` keeps a margin.
    """
    w = np.asarray(weight, dtype=np.float64)
    mantissa, exponent = np.frexp(w)
    digits = np.abs(np.ldexp(mantissa, 53)).astype(np.int64)  # w = +-digits 2^(exponent - 53), exactly
    lowest_bit = np.log2(np.where(digits != 0, digits & -digits, 1)).astype(np.int64)
    lowest = np.where(digits != 0, exponent - 53 + lowest_bit, 2 ** 20)
    q = lowest.min(axis=1, initial=2 ** 20)
    return np.abs(w).sum(axis=1) < np.ldexp(1.0, np.clip(q + 52, -1074, 1023))


# --------------------------------------------------------------------------- neurons
class Compartments(Protocol):
    """One layer of neurons in one mode: its synaptic input, its state and its update."""

    size: int

    def currents(self, spikes: np.ndarray) -> np.ndarray:
        """``(T, n, D)`` bool spikes of the layer before -> ``(T, n, size)`` synaptic input ``a``."""

    def initial_state(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``u, v`` of ``n`` images at the start of a sample (Lava's pipelined reset: zeros)."""

    def step(self, u: np.ndarray, v: np.ndarray, a: np.ndarray) -> np.ndarray:
        """One step of every image in place; the bool spikes ``(n, size)``."""


@dataclass(frozen=True)
class FloatCompartments:
    """``PyDenseModelFloat`` + ``PyLifResetModelFloat`` in float64, per neuron."""

    weight: np.ndarray          # (size, D) float64
    keep_u: np.ndarray          # 1 - du
    keep_v: np.ndarray          # 1 - dv
    bias: np.ndarray            # bias_mant (float mode ignores bias_exp)
    vth: np.ndarray
    blocks: tuple[tuple[np.ndarray, tuple[tuple[np.ndarray, np.ndarray], ...]], ...]
    """Lava's order, for target groups with inexact rows: (target index, ((source index, block), ...))."""

    @property
    def size(self) -> int:
        return int(self.weight.shape[0])

    @classmethod
    def build(cls, layer: LavaLayer, sources: Sequence[np.ndarray]) -> "FloatCompartments":
        weight = np.ascontiguousarray(layer.weight, dtype=np.float64)
        exact = exact_sum_rows(weight)
        blocks = tuple((g.index, tuple((src, np.ascontiguousarray(weight[np.ix_(g.index, src)])) for src in sources))
                       for g in layer.groups if not exact[g.index].all())
        return cls(weight=weight, keep_u=1 - per_neuron(layer, "du"), keep_v=1 - per_neuron(layer, "dv"),
                   bias=np.asarray(layer.bias_mant, dtype=np.float64), vth=per_neuron(layer, "vth"), blocks=blocks)

    def currents(self, spikes: np.ndarray) -> np.ndarray:
        T, n, D = spikes.shape
        a = (spikes.reshape(T * n, D).astype(np.float64) @ self.weight.T).reshape(T, n, self.size)
        for index, sources in self.blocks:  # PyDenseModelFloat: weights[:, s_in].sum(axis=1), Dense by Dense
            for t, i in np.ndindex(T, n):
                acc = np.zeros(len(index))  # PyInPortVectorDense.recv: zeros + each connected Dense
                for src, block in sources:
                    acc = acc + block[:, spikes[t, i, src]].sum(axis=1)
                a[t, i, index] = acc
        return a

    def initial_state(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((n, self.size)), np.zeros((n, self.size))

    def step(self, u: np.ndarray, v: np.ndarray, a: np.ndarray) -> np.ndarray:
        u *= self.keep_u        # u = u (1 - du) + a_in
        u += a
        v *= self.keep_v        # v = v (1 - dv) + u + bias_mant, in this order
        v += u
        v += self.bias
        spikes = v > self.vth
        v[spikes] = 0.0
        return spikes


@dataclass(frozen=True)
class FixedCompartments:
    """``PyDenseModelBitAcc`` + ``PyLifResetModelBitAcc`` in integers, per neuron."""

    weight: np.ndarray          # (size, D) float64 holding Lava's effective integer weights (sums exact below 2^53)
    u_factor: np.ndarray        # 4096 - (du + ds_offset), int64
    v_factor: np.ndarray        # 4096 - dv, int64
    bias: np.ndarray            # int32(bias_mant as int16) << bias_exp, int32
    vth: np.ndarray             # vth << 6, int64

    @property
    def size(self) -> int:
        return int(self.weight.shape[0])

    @classmethod
    def build(cls, layer: LavaLayer, sources: Sequence[np.ndarray]) -> "FixedCompartments":
        return cls(weight=effective_weights(layer, sources).astype(np.float64),
                   u_factor=DECAY_UNITY - (per_neuron(layer, "du").astype(np.int64) + CURRENT_OFFSET),
                   v_factor=DECAY_UNITY - per_neuron(layer, "dv").astype(np.int64),
                   bias=scaled_bias(layer.bias_mant, layer.bias_exp),
                   vth=np.left_shift(per_neuron(layer, "vth").astype(np.int64), STATE_SHIFT))

    def currents(self, spikes: np.ndarray) -> np.ndarray:
        T, n, D = spikes.shape
        a = spikes.reshape(T * n, D).astype(np.float64) @ self.weight.T
        # Dense sends its int64 sum through an int32 channel (wraps modulo 2^32; LIF adds the Dense outputs in int32)
        return a.astype(np.int64).astype(np.int32).reshape(T, n, self.size)

    def initial_state(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((n, self.size), np.int32), np.zeros((n, self.size), np.int32)

    def step(self, u: np.ndarray, v: np.ndarray, a: np.ndarray) -> np.ndarray:
        current = decay(u, self.u_factor) + np.left_shift(a, STATE_SHIFT)
        u[:] = wrap_24(current)
        voltage = decay(v, self.v_factor) + u + self.bias
        v[:] = np.clip(voltage, -(UV_LIMIT - 1), UV_LIMIT - 1)
        spikes = v > self.vth
        v[spikes] = 0
        return spikes


def scaled_bias(bias_mant: np.ndarray, bias_exp: np.ndarray) -> np.ndarray:
    """``AbstractPyLifModelFixed.scale_bias``: the int16 Vars, the mantissa as int32 shifted by the exponent
    (left when ``>= 0``, right otherwise)."""
    mant = np.asarray(bias_mant).astype(np.int16).astype(np.int32)
    exp = np.asarray(bias_exp).astype(np.int16)
    return np.where(exp >= 0, np.left_shift(mant, np.maximum(exp, 0)), np.right_shift(mant, np.maximum(-exp, 0)))


def decay(x: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """``rz(x factor / 2^12)`` as int32: ``sign(p) (|p| >> 12)`` of the int64 product ``p``."""
    p = x.astype(np.int64) * factor
    return (np.sign(p) * (np.abs(p) >> DECAY_SHIFT)).astype(np.int32)


def wrap_24(x: np.ndarray) -> np.ndarray:
    """Lava's current wrap: ``x - 2^24`` where ``x > 2^23``, ``x + 2^24`` where ``x <= -2^23``."""
    return np.where(x > UV_LIMIT, x - 2 * UV_LIMIT, np.where(x <= -UV_LIMIT, x + 2 * UV_LIMIT, x))


def per_neuron(layer: LavaLayer, name: str) -> np.ndarray:
    """A per-process scalar (``du``, ``dv``, ``vth``) spread over the neurons of the layer."""
    values = np.empty(layer.weight.shape[0], dtype=np.asarray([getattr(g, name) for g in layer.groups]).dtype)
    for g in layer.groups:
        values[g.index] = getattr(g, name)
    return values


# --------------------------------------------------------------------------- running
def build_compartments(layers: Sequence[LavaLayer], mode: str, input_size: int) -> list[Compartments]:
    """Every layer in ``mode``; Dense blocks follow the neuron groups of the layer before."""
    kind = FloatCompartments if check_mode(mode) == "float" else FixedCompartments
    sources: Sequence[np.ndarray] = [np.arange(input_size)]
    out: list[Compartments] = []
    for layer in layers:
        out.append(kind.build(layer, sources))
        sources = [g.index for g in layer.groups]
    return out


_COMPILED: dict[tuple[int, str], tuple[weakref.ref, list[Compartments]]] = {}


def compiled_compartments(network: SpikingNetwork, mode: str) -> list[Compartments]:
    """:func:`build_compartments` of ``network`` in ``mode``, built once per network object and reused.

    A co-simulation calls the backend once per batch with the same (frozen) network; building
    Lava's quantised layers each time cost about a third of the generator stage (docs/cosim.md).
    The entry goes when the network does; compartments are never written to while running.
    """
    key = (id(network), mode)
    hit = _COMPILED.get(key)
    if hit is not None and hit[0]() is network:
        return hit[1]
    layers = build_compartments(lava_layers(network, mode), mode, network.input_size)
    _COMPILED[key] = (weakref.ref(network, lambda _, key=key: _COMPILED.pop(key, None)), layers)
    return layers


def run_layer(layer: Compartments, spikes: np.ndarray) -> np.ndarray:
    """``(T, n, D)`` bool input spikes -> ``(T, n, size)`` bool output spikes, every sample from rest."""
    a = layer.currents(spikes)
    u, v = layer.initial_state(spikes.shape[1])
    return np.stack([layer.step(u, v, a[t]) for t in range(spikes.shape[0])])


def run_compartments(layers: Sequence[Compartments], spikes_in: np.ndarray) -> list[np.ndarray]:
    """The spikes of every layer for ``(T, n, D)`` binary input, aligned to the input steps."""
    out, spikes = [], np.asarray(spikes_in, dtype=bool)
    for layer in layers:
        spikes = run_layer(layer, spikes)
        out.append(spikes)
    return out


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
    layers = compiled_compartments(network, mode)
    spikes = [np.empty((T, N, layer.size), dtype=np.uint8) for layer in network.layers]
    t_run = time.perf_counter()
    first_chunk = None
    for lo in range(0, N, CHUNK_SAMPLES):
        hi = min(N, lo + CHUNK_SAMPLES)
        for out, chunk in zip(spikes, run_compartments(layers, spikes_in[:, lo:hi])):
            out[:, lo:hi] = chunk
        if first_chunk is None:
            first_chunk = time.perf_counter() - t_run
        if time.perf_counter() - start > timeout:
            raise LorspError(f"the fast {mode} run exceeded --timeout {timeout:g} s and was stopped (raise "
                             f"--timeout for more samples or a slower machine)")
        if progress is not None:
            progress(hi)
    run_seconds = time.perf_counter() - t_run
    details = {"equations": "lava-nc 0.10.0 " + ("PyDenseModelFloat + PyLifResetModelFloat" if mode == "float"
                                                 else "PyDenseModelBitAcc + PyLifResetModelBitAcc"),
               "build_seconds": t_run - start, "build_reused": build_reused,
               "first_chunk_seconds": first_chunk, "chunk_samples": CHUNK_SAMPLES,
               "lava_delay_steps_aligned": [k + 1 for k in range(len(layers))],
               "lava_steps_equivalent": N * T + len(layers)}
    if mode == "float":
        details["float_sums"] = ["Lava's order, per step" if layer.blocks else "exact (any order)"
                                 for layer in layers]
    return SimResult(layer_spikes=spikes, mode=mode, backend="fast", seconds=time.perf_counter() - start,
                     run_seconds=run_seconds, details=details)
