"""The input of a graph run: an ``.npz`` file, a NIR data file, or a seeded Bernoulli train (``random:RATE``).

Either way the result is float32 ``(T, N, *input_shape)``: ``T`` steps of ``N`` samples. An
``.npz`` holds one array (or several, one named ``spikes`` or ``input``); its values may be
any finite numbers (binary spikes, or graded input a chip would take as graded spikes). Any
other file is read as NIR's data format (:mod:`hw_sim.graph.nir_data`).
"""
from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

import numpy as np

from hw_sim.graph.nir_data import read_nir_input
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.fileio import open_regular

MAX_VALUES = 1 << 28
"""The most input values one run takes (1 GiB of float32)."""
NPZ_KEYS = ("spikes", "input")


def input_spec(text: str) -> str:
    """An argparse type: ``random:RATE`` with ``0 <= RATE <= 1``, or a path to an ``.npz`` file."""
    if text.startswith("random:"):
        try:
            rate = float(text.split(":", 1)[1])
        except ValueError:
            rate = float("nan")
        if not 0.0 <= rate <= 1.0:
            raise argparse.ArgumentTypeError(f"random:RATE needs a rate between 0 and 1, got {text!r}")
    return text


def load_input(spec: str, shape: tuple[int, ...], *, steps: int | None, samples: int, seed: int,
               input_name: str = "input", dt: float = 1e-4) -> np.ndarray:
    """The run's input for a graph whose ``Input`` node ``input_name`` has ``shape`` (module docstring)."""
    if spec.startswith("random:"):
        rate = float(spec.split(":", 1)[1])
        full = (steps or 100, samples, *shape)
        _check_size(full)
        return (np.random.default_rng(seed).random(full, dtype=np.float32) < rate).astype(np.float32)
    path = Path(spec)
    if path.suffix == ".npz":
        x = read_npz(path)
    else:
        if not path.is_file():
            raise LorspError(f"input file not found: {path}")
        x = read_nir_input(path, input_name, shape, dt)
        _check_size(x.shape)
        if not np.isfinite(x).all():
            raise LorspError(f"input {path}: NaN or infinite values")
    if x.ndim != 2 + len(shape) or tuple(x.shape[2:]) != tuple(shape):
        raise LorspError(f"input {spec}: shape {x.shape} is not (T, N, {', '.join(map(str, shape))}) for the "
                         f"graph's Input of shape {shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise LorspError(f"input {spec}: shape {x.shape} holds no step or no sample")
    if steps is not None and steps != x.shape[0]:
        raise LorspError(f"input {spec} holds {x.shape[0]} steps, but --steps is {steps}")
    return x


def read_npz(path: Path) -> np.ndarray:
    """The input array of an ``.npz`` file (no pickles), float32 and finite; one-line LorspError otherwise."""
    with open_regular(path, "input spikes") as f:
        try:
            with np.load(f, allow_pickle=False) as data:
                keys = list(data.keys())
                key = next((k for k in NPZ_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
                if key is None:
                    raise LorspError(f"input {path} holds {len(keys)} arrays ({', '.join(keys[:6])}); name the "
                                     f"input one of: {', '.join(NPZ_KEYS)}")
                array = data[key]
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise LorspError(f"input {path} is not a readable .npz of arrays: {first}") from None
    if array.dtype.kind not in "biuf":
        raise LorspError(f"input {path}: array {key!r} holds {array.dtype}, not numbers")
    _check_size(array.shape)
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise LorspError(f"input {path}: array {key!r} holds NaN or infinite values")
    return array


def _check_size(shape: tuple[int, ...]) -> None:
    if float(np.prod(np.asarray(shape, dtype=np.float64))) > MAX_VALUES:
        raise LorspError(f"the input {shape} holds more than {MAX_VALUES} values; use fewer steps or samples")
