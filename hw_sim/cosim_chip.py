"""The chip stage of ``lorsp-cosim`` by the bundle's chip network kind (:mod:`deploy.chip_kinds`).

A :class:`ChipPart` turns a batch's input spikes ``(T, N, D)`` into the chip's spikes per layer (the last
layer's are the gate spikes the host reads) and, over the whole run, the chip's operations per image that
the energy tables price. A chain (:func:`chain_part`) runs on a simulator backend
(:mod:`hw_sim.backends`) and is counted from its weights as before; pixel gates (:func:`pixel_part`) run on
the NIR graph path (:func:`hw_sim.pixel_chip.run_pixel_gates`, float or fixed), counted by the graph
runner batch by batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from deploy.bundle import Bundle
from deploy.chip_kinds import PIXEL_GATES
from deploy.network import SpikingNetwork
from deploy.pixel_bundle import PixelGateNetwork
from hw_sim import energy
from hw_sim.backends import get_backend
from hw_sim.pixel_chip import compiled_gates, run_pixel_gates
from hw_sim.run import chip_weights
from lorsp.plumbing.errors import LorspError

ChipRun = tuple[list[np.ndarray], energy.OperationCounts | None]
"""A batch on the chip: its spikes per layer ``(T, N, n_k)`` and, where the runner counts them, its operations."""


@dataclass(frozen=True)
class ChipPart:
    """The chip stage of a split pipeline: layer names, gate count, the run of a batch and the run's counts."""

    names: list[str]
    gates: int
    run: Callable[[np.ndarray], ChipRun]
    count: Callable[[np.ndarray, list[np.ndarray], Sequence[ChipRun]], energy.OperationCounts]
    """``(input spikes, layer spikes of every image, every batch's run) -> operations per image``."""


def chain_part(network: SpikingNetwork, backend: str, mode: str, timeout: float) -> ChipPart:
    """A chain of dense layers on ``backend`` in ``mode``; counted from the weights the chip holds in ``mode``."""
    def run(spikes_in: np.ndarray) -> ChipRun:
        return get_backend(backend)(network, spikes_in, mode=mode, timeout=timeout).layer_spikes, None

    def count(spikes_in: np.ndarray, sim: list[np.ndarray], _: Sequence[ChipRun]) -> energy.OperationCounts:
        return energy.count_operations(*chip_weights(network, mode), spikes_in, sim)

    return ChipPart([layer.name for layer in network.layers], network.sizes[-1], run, count)


def pixel_part(network: PixelGateNetwork, backend: str, mode: str, timeout: float) -> ChipPart:
    """Pixel gates on the NIR graph path in ``mode`` (the graph interpreter; ``backend`` must be ``fast``)."""
    if backend != "fast":
        raise LorspError(f"lorsp-cosim runs a pixel bundle's gates on the NIR graph path (--backend fast), not "
                         f"{backend!r}; lorsp-hwsim DIR --backend lava compares Lava with that path")
    compiled = compiled_gates(network, mode)  # the fixed twin's integers checked against the netx file once

    def run(spikes_in: np.ndarray) -> ChipRun:
        done = run_pixel_gates(network, spikes_in, mode=mode, timeout=timeout, compiled=compiled)
        return [done.gate_spikes], done.counts

    def count(spikes_in: np.ndarray, sim: list[np.ndarray], runs: Sequence[ChipRun]) -> energy.OperationCounts:
        sizes = np.array([r[0][0].shape[1] for r in runs], dtype=np.float64)
        mean = lambda values: float(np.dot(sizes, values) / sizes.sum())  # noqa: E731  per image over every batch
        counts = [r[1] for r in runs]
        return energy.OperationCounts(
            input_spikes=mean([c.input_spikes for c in counts]), synops=[mean([c.synops[0] for c in counts])],
            spikes=[mean([c.spikes[0] for c in counts])], neuron_updates=counts[0].neuron_updates,
            active_neuron_updates=[mean([c.active_neuron_updates[0] for c in counts])],
            dense_macs=counts[0].dense_macs)

    return ChipPart(["gates"], network.gates, run, count)


def chip_part(bundle: Bundle, backend: str, mode: str, timeout: float) -> ChipPart:
    """The chip stage of ``bundle``'s kind."""
    make = pixel_part if bundle.kind == PIXEL_GATES else chain_part
    return make(bundle.network, backend, mode, timeout)
