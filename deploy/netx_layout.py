"""The content of a lava-dl netx file, computed once: what :mod:`export.netx` writes and the bundle reader checks.

``prompt_generator.net`` is the file a Loihi loads; nothing in it may differ from the fixed-point
form (:mod:`deploy.fixed_point`) of the bundle's NIR network. :func:`netx_datasets` gives every
dataset of the file by path, and :func:`check_netx` reads a file (refusing links and external
storage, :func:`deploy.hdf5_files.check_self_contained`) and compares it with them, dataset by
dataset, and its ``scales`` attribute with the host file's ``fixed_point.scale``.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from deploy.fixed_point import FixedPointLayer, quantise
from deploy.hdf5_files import check_self_contained, read_bounded
from deploy.network import SpikingNetwork
from lorsp.plumbing.errors import LorspError

WRITER = "lorsp export (deploy.fixed_point)"


def _text(value: str) -> np.ndarray:
    return np.array([value.encode("ascii")])  # netx reads type strings as ascii bytes, first element


def netx_datasets(network: SpikingNetwork, fixed: list[FixedPointLayer]) -> dict[str, np.ndarray]:
    """``{path: value}`` of every dataset of the netx file of ``network`` (layout: :mod:`export.netx`)."""
    data: dict[str, np.ndarray] = {"layer/0/type": _text("input"), "layer/0/shape": np.array([network.input_size])}
    for k, fx in enumerate(fixed, start=1):
        g = f"layer/{k}"
        data.update({f"{g}/type": _text("dense"), f"{g}/shape": np.array([fx.weight.shape[0]]),
                     f"{g}/weight": fx.weight.astype(np.int32), f"{g}/bias": fx.bias_mant.astype(np.int32),
                     f"{g}/neuron/type": _text("CUBA"), f"{g}/neuron/iDecay": np.array(int(fx.du[0]) + 1),
                     f"{g}/neuron/vDecay": np.array(int(fx.dv[0])), f"{g}/neuron/vThMant": np.array(int(fx.vth[0])),
                     f"{g}/neuron/refDelay": np.array(1), f"{g}/neuron/gradedSpike": np.array(False)})
    return data


def _read_netx(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every dataset of a netx file and its ``scales`` attribute (run in a child, :func:`read_bounded`)."""
    check_self_contained(path, "netx file")
    found: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, obj: found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
            return found, np.asarray(f.attrs.get("scales", []))
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise LorspError(f"{path} is not a readable netx file: {type(exc).__name__}") from None


def check_netx(path: str | Path, network: SpikingNetwork, host_scale: np.ndarray | None = None) -> None:
    """Refuse a netx file that differs from ``network``'s fixed-point form, or whose scales differ from the host's."""
    fixed = quantise(network)
    compare_netx(path, netx_datasets(network, fixed), np.array([fx.scale for fx in fixed], dtype=np.float64),
                 host_scale)


def compare_netx(path: str | Path, expected: dict[str, np.ndarray], scales: np.ndarray,
                 host_scale: np.ndarray | None = None) -> None:
    """Refuse a netx file whose datasets are not exactly ``expected`` (:func:`netx_datasets`, or a pixel bundle's
    :func:`deploy.pixel_fixed.pixel_gates_netx_datasets`), whose ``scales`` attribute is not ``scales``, or, given
    the host file's ``fixed_point.scale``, one whose scales differ from it."""
    path = Path(path)
    found, file_scales = read_bounded(_read_netx, path, "netx file")
    differ = sorted(set(found) ^ set(expected))
    if differ:
        raise LorspError(f"{path}: dataset {differ[0]!r} is {'not expected' if differ[0] in found else 'missing'}; "
                         f"the netx file does not hold the bundle's NIR network")
    for key, value in expected.items():
        given = np.asarray(found[key])
        numeric = value.dtype.kind != "S"
        if given.dtype.kind not in ("biu" if numeric else "SO") or given.shape != value.shape or \
                not np.array_equal(given.astype(value.dtype) if numeric else given, value):
            raise LorspError(f"{path}: {key} differs from the fixed-point form of the bundle's NIR network")
    if file_scales.dtype.kind != "f" or not np.array_equal(file_scales, scales):
        raise LorspError(f"{path}: its fixed-point scales differ from those of the bundle's NIR network")
    if host_scale is not None and not np.array_equal(np.asarray(host_scale, dtype=np.float64), scales):
        raise LorspError(f"host file's fixed_point.scale {np.asarray(host_scale).tolist()} differs from the NIR "
                         f"network's fixed-point scales {scales.tolist()}")
