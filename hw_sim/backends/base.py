"""What every simulator backend takes and gives back, and the one check of what it takes.

A backend is a name in :mod:`hw_sim.backends` and a callable with one signature::

    run(network, spikes_in, *, mode, timeout, progress=None) -> SimResult

``network`` is the :class:`~deploy.network.SpikingNetwork` (the description, as a Lava
process is), ``spikes_in`` the binary input spikes ``(T, N, D)`` of :mod:`lorsp.encoding`,
``mode`` one of :data:`MODES`. A backend module holds only the simulation (as a Lava
process model does); :func:`checked` wraps it so that every backend refuses bad input, an
unknown mode and a bad timeout the same way, in one line, before it starts anything
(``register_backend`` applies it). The result holds every layer's spikes aligned to the
input steps (a backend removes its own pipeline delays), so results of different backends
compare element for element.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from deploy.network import SpikingNetwork
from lorsp.plumbing.deadline import check_timeout
from lorsp.plumbing.errors import LorspError

MODES = ("float", "fixed")
"""``float``: the float model of the chip; ``fixed``: bit-accurate Loihi integers (:mod:`deploy.fixed_point`)."""

Progress = Callable[[int], None]
"""Called with the number of samples finished so far."""


@dataclass
class SimResult:
    """Spikes of every layer, ``(T, N, neurons)`` uint8, and how the run went.

    ``steps`` is the same for every backend: the time steps of one sample, ``T``, the
    steps the aligned spikes span. What a backend simulated beyond them goes in
    ``details`` under its own name (the Lava backend's ``simulated_steps``: ``N T + L``,
    the samples back to back plus one step of delay per layer).
    """

    layer_spikes: list[np.ndarray]
    mode: str
    backend: str
    seconds: float
    """Wall time of the whole call: start-up, build, compile, run, read-out."""
    run_seconds: float
    """Wall time of the stepping alone."""
    details: dict = field(default_factory=dict)

    @property
    def steps(self) -> int:
        """Time steps per sample, ``T`` (the first axis of every layer's spikes)."""
        return int(self.layer_spikes[0].shape[0])

    @property
    def samples(self) -> int:
        """Samples run, ``N``."""
        return int(self.layer_spikes[0].shape[1])

    @property
    def images_per_s(self) -> float:
        """Samples per second of wall time of the whole call."""
        return self.samples / self.seconds if self.seconds > 0 else float("nan")


class Backend(Protocol):
    def __call__(self, network: SpikingNetwork, spikes_in: np.ndarray, *, mode: str, timeout: float,
                 progress: Progress | None = None) -> SimResult: ...


def check_mode(mode: str) -> str:
    """``mode``, or a one-line :class:`LorspError` unless it is one of :data:`MODES`."""
    if mode not in MODES:
        raise LorspError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
    return mode


def is_binary(x: np.ndarray) -> bool:
    """Every value 0 or 1 (for integers two reductions, much cheaper than ``np.isin``)."""
    if x.dtype == bool or x.size == 0:
        return True
    if np.issubdtype(x.dtype, np.integer):
        return bool(x.min() >= 0 and x.max() <= 1)
    return bool(((x == 0) | (x == 1)).all())


def check_spikes(network: SpikingNetwork, spikes_in: np.ndarray) -> np.ndarray:
    """``spikes_in`` as an array, or a one-line :class:`LorspError` unless it is ``(T, N, D)`` of 0 and 1.

    ``D`` is the network's input size, ``T`` and ``N`` at least 1; the values may be bool,
    integers or floats, each 0 or 1.
    """
    if not isinstance(network, SpikingNetwork):
        raise LorspError(f"network must be a deploy.network.SpikingNetwork, got {type(network).__name__}")
    spikes_in = np.asarray(spikes_in)
    if spikes_in.dtype.kind not in "biuf":
        raise LorspError(f"input spikes must be bool, integer or float, got dtype {spikes_in.dtype}")
    if spikes_in.ndim != 3 or spikes_in.shape[2] != network.input_size:
        raise LorspError(f"input spikes must be (T, N, {network.input_size}), got {spikes_in.shape}")
    if spikes_in.shape[0] == 0 or spikes_in.shape[1] == 0:
        raise LorspError(f"input spikes must hold at least one step and one sample, got {spikes_in.shape}")
    if not is_binary(spikes_in):
        raise LorspError("input spikes must be binary (0 or 1)")
    return spikes_in


def check_run(network: SpikingNetwork, spikes_in: np.ndarray, mode: str, timeout: float) -> np.ndarray:
    """Everything a backend call is checked for (:func:`check_spikes`, :func:`check_mode`,
    :func:`~lorsp.plumbing.deadline.check_timeout`); the input spikes as an array."""
    spikes_in = check_spikes(network, spikes_in)
    check_mode(mode)
    check_timeout(timeout)
    return spikes_in


def checked(simulate: Backend) -> Backend:
    """``simulate`` behind :func:`check_run`: it gets only valid input, as an array, and does the simulation alone."""
    @functools.wraps(simulate)
    def run(network: SpikingNetwork, spikes_in: np.ndarray, *, mode: str, timeout: float,
            progress: Progress | None = None) -> SimResult:
        spikes_in = check_run(network, spikes_in, mode, timeout)
        return simulate(network, spikes_in, mode=mode, timeout=timeout, progress=progress)

    return run
