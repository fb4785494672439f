"""What every simulator backend takes and gives back.

A backend is a name in :mod:`hw_sim.backends` and a callable with one signature::

    run(network, spikes_in, *, mode, timeout, progress=None) -> SimResult

``network`` is the :class:`~deploy.network.SpikingNetwork`, ``spikes_in`` the binary input
spikes ``(T, N, D)`` of :mod:`lorsp.encoding`, ``mode`` one of :data:`MODES`. The result
holds every layer's spikes aligned to the input steps (a backend removes its own
pipeline delays), so results of different backends compare element for element.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from deploy.network import SpikingNetwork

MODES = ("float", "fixed")
"""``float``: the float model of the chip; ``fixed``: bit-accurate Loihi integers (:mod:`deploy.fixed_point`)."""

Progress = Callable[[int], None]
"""Called with the number of samples finished so far."""


@dataclass
class SimResult:
    """Spikes of every layer, ``(T, N, neurons)`` uint8, and how the run went."""

    layer_spikes: list[np.ndarray]
    mode: str
    backend: str
    seconds: float
    """Wall time of the whole call: start-up, build, compile, run, read-out."""
    run_seconds: float
    """Wall time of the stepping alone."""
    steps: int
    """Time steps the simulator ran (input steps plus pipeline delay)."""
    details: dict = field(default_factory=dict)

    @property
    def samples(self) -> int:
        return int(self.layer_spikes[0].shape[1])

    @property
    def images_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("nan")


class Backend(Protocol):
    def __call__(self, network: SpikingNetwork, spikes_in: np.ndarray, *, mode: str, timeout: float,
                 progress: Progress | None = None) -> SimResult: ...
