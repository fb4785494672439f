r"""Run a netx file of one convolution layer (LoRSP's pixel gates, :mod:`export.netx_pixel`) in lava-dl itself.

:func:`run_conv_netx` loads the file with ``lava.lib.dl.netx.hdf5.Network`` under the run settings on its
root (``reset_interval = T``, ``reset_offset``: :mod:`deploy.lava_settings`), sends image spikes
``(T, N, C, H, W)`` from a Lava ``RingBuffer`` source (binary, int32, netx's ``x, y, z`` order: ``W, H, C``),
``N`` samples of ``T`` steps back to back and ``output_lag`` empty steps to drain the pipeline, and records the
layer's spikes with a ``RingBuffer`` sink. Lava's ``Conv`` synapse, like ``Dense``, hands on in step ``s + 1``
what it received in step ``s``; each neuron zeroes ``u`` and ``v`` on the first step of a sample, so the
spikes of input step ``t`` appear ``output_lag`` steps later and are returned aligned to the input steps,
``(T, N, C_out, H, W)``. The run happens in a child process under a deadline
(:func:`lorsp.plumbing.deadline.run_with_deadline`), Lava's runtime imported first
(:func:`hw_sim.lava_runtime.import_lava_runtime`).
"""
from __future__ import annotations

import time

import h5py
import numpy as np

from hw_sim.lava_runtime import LAVA_INSTALL_HINT, import_lava_runtime
from lorsp.plumbing.deadline import run_with_deadline
from lorsp.plumbing.errors import LorspError

SETTINGS = ("time_steps", "reset_interval", "reset_offset", "output_lag", "select_tag")


def conv_netx_settings(path: str) -> dict:
    """The run settings on the netx file's root (:data:`SETTINGS`); a one-line LorspError where one is missing."""
    with h5py.File(path, "r") as f:
        attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in f.attrs.items()}
    missing = [k for k in SETTINGS if k not in attrs]
    if missing:
        raise LorspError(f"{path} carries no {missing[0]!r} attribute; it was not written by lorsp's netx export")
    return attrs


def run_conv_netx(path: str, spikes: np.ndarray, *, timeout: float) -> tuple[np.ndarray, dict]:
    """The layer's spikes ``(T, N, C_out, H, W)`` (uint8) for binary input ``spikes`` ``(T, N, C, H, W)``, and the
    run's details (settings, steps, seconds); a one-line LorspError for input of the wrong steps or values, a run
    past ``timeout`` s, or no Lava here."""
    settings = conv_netx_settings(str(path))
    if spikes.ndim != 5:
        raise LorspError(f"the input spikes have shape {list(spikes.shape)}, not (T, N, C, H, W)")
    T, N = spikes.shape[:2]
    if T != int(settings["time_steps"]):
        raise LorspError(f"the input has {T} steps, the netx file {int(settings['time_steps'])}")
    if not np.all((spikes == 0) | (spikes == 1)):
        raise LorspError("the input is not binary spikes; the netx file takes unary spikes")
    lag = int(settings["output_lag"])
    columns = spikes.transpose(4, 3, 2, 1, 0).reshape(*spikes.shape[:1:-1], N * T)  # (W, H, C, N T) sample-major
    data = np.concatenate([columns, np.zeros((*columns.shape[:3], lag))], axis=-1).astype(np.int32)
    import_lava_runtime()
    start = time.perf_counter()
    recorded = run_with_deadline(_simulate, (str(path), data, settings), timeout=timeout,
                                 what="the lava-dl netx run")
    seconds = time.perf_counter() - start
    out = recorded[..., lag: lag + N * T] != 0  # (W, H, C_out, N T)
    gates = out.reshape(*out.shape[:3], N, T).transpose(4, 3, 2, 1, 0).astype(np.uint8)
    details = {"reset_interval": int(settings["reset_interval"]), "reset_offset": int(settings["reset_offset"]),
               "output_lag": lag, "run_config": f"Loihi2SimCfg(select_tag={settings['select_tag']!r})",
               "lava_steps": int(data.shape[-1]), "seconds": seconds}
    return np.ascontiguousarray(gates), details


def _simulate(path: str, data: np.ndarray, settings: dict, progress=None) -> np.ndarray:
    """Child side: build the netx network, its source and sink, run every column, read the sink."""
    try:
        from lava.lib.dl.netx.hdf5 import Network
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg
        from lava.proc.io.sink import RingBuffer as Sink
        from lava.proc.io.source import RingBuffer as Source
    except ImportError:
        raise LorspError(f"running a netx file needs lava-dl; {LAVA_INSTALL_HINT}") from None
    net = Network(net_config=path, reset_interval=int(settings["reset_interval"]),
                  reset_offset=int(settings["reset_offset"]))
    if tuple(net.inp.shape) != data.shape[:3]:
        raise LorspError(f"the netx network takes input of shape {list(net.inp.shape)} (x, y, z), the spikes are "
                         f"{list(data.shape[:3])}")
    source, sink = Source(data=data), Sink(shape=net.out.shape, buffer=data.shape[-1])
    source.s_out.connect(net.inp)
    net.out.connect(sink.a_in)
    try:
        net.run(condition=RunSteps(num_steps=data.shape[-1]),
                run_cfg=Loihi2SimCfg(select_tag=str(settings["select_tag"])))
        return np.asarray(sink.data.get())
    finally:
        net.stop()
