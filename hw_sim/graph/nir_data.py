"""Input spikes in NIR's own data format (``nir.write_data`` / ``nir.read_data``, NIR 1.0.8's ``data_ir``).

The file's entry for the graph's ``Input`` node (its name at the top of the ``NIRGraphData``)
holds the input: the observable ``spikes`` or its only one, either ``TimeGriddedData``
``(samples, steps, neurons)`` on a grid of the run's ``dt``, or ``EventData`` (binned onto the
run's ``dt`` by NIR's ``to_time_gridded``). ``neurons`` is the Input's shape flattened (C order).
"""
from __future__ import annotations

import math
from pathlib import Path

import nir
import numpy as np

from deploy.hdf5_files import check_self_contained, read_bounded
from lorsp.plumbing.errors import LorspError

DT_RTOL = 1e-9


def read_nir_input(path: Path, input_name: str, shape: tuple[int, ...], dt: float) -> np.ndarray:
    """The run's input ``(T, N, *shape)`` float32 from a NIR data file; one-line LorspError otherwise."""
    data = read_bounded(_read_checked, path, "NIR data")
    entry = data.nodes.get(input_name) if isinstance(data, nir.NIRGraphData) else None
    if not isinstance(entry, nir.NIRNodeData) or not entry.observables:
        raise LorspError(f"input {path}: no data for the graph's Input node {input_name!r} "
                         f"(it holds: {', '.join(sorted(getattr(data, 'nodes', {}))[:6]) or 'nothing'})")
    observables = entry.observables
    obs = observables.get("spikes", next(iter(observables.values())) if len(observables) == 1 else None)
    if obs is None:
        raise LorspError(f"input {path}: node {input_name!r} holds {', '.join(observables)}; name the input 'spikes'")
    if isinstance(obs, nir.EventData):
        obs = obs.to_time_gridded(dt)
    if not math.isclose(float(obs.dt), dt, rel_tol=DT_RTOL):
        raise LorspError(f"input {path}: its time grid is dt = {float(obs.dt):g} s, the run's is {dt:g} s "
                         f"(set --dt to the data's, or resample it)")
    grid = np.asarray(obs.data)
    if grid.ndim != 3 or grid.shape[2] != math.prod(shape):
        raise LorspError(f"input {path}: data of shape {grid.shape} is not (samples, steps, {math.prod(shape)}) "
                         f"for the graph's Input of shape {shape}")
    return np.ascontiguousarray(grid.transpose(1, 0, 2).reshape(grid.shape[1], grid.shape[0], *shape),
                                dtype=np.float32)


def _read_checked(path: Path) -> nir.NIRGraphData:
    """What :func:`read_nir_input` runs in its child: links and external storage refused, then the data."""
    check_self_contained(path, "NIR data")
    try:
        return nir.read_data(str(path))
    except Exception as exc:  # h5py and nir raise many kinds on foreign or cut files
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise LorspError(f"{path} is not readable NIR data: {type(exc).__name__}: {first}") from None
