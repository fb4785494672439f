"""Run a bundle's prompt_generator.net in lava-dl, with the settings the file itself carries.

    python examples/lava_dl_netx.py BUNDLE --images x.npy --out gates.safetensors [--timeout 300]

The netx file's root attributes (written by lorsp's export; docs/loihi.md) say how to run it:
``reset_interval`` and ``reset_offset`` for ``lava.lib.dl.netx.hdf5.Network`` (every sample of
``time_steps`` steps starts from rest), ``select_tag`` (``fixed_pt``: the file holds Loihi
integers for the bit-accurate models) and ``output_lag`` (one step of delay per layer: the
gates of input step ``t`` arrive ``output_lag`` steps later). The images are encoded as the
bundle spec says, by ``run_bundle.encode`` (the reference runner beside this file); samples
are streamed back to back, then ``output_lag`` empty steps drain the pipeline.

The output (safetensors) holds ``gate_spikes`` ``(T, N, n)``, ``gate_counts`` and ``gates``
(open: fired at least once). The Lava run is stopped after ``--timeout`` seconds. Bad input:
one ``error:`` line, exit code 2. Needs lava-nc and lava-dl (Python 3.10), not lorsp.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import sys
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_bundle import BundleError, encode, load_images, open_spec, write  # noqa: E402


def netx_settings(path: Path) -> dict:
    """The run settings on the netx file's root: ``time_steps``, ``reset_*``, ``output_lag``, ``select_tag``."""
    with h5py.File(path, "r") as f:
        attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in f.attrs.items()}
    needed = ("time_steps", "reset_interval", "reset_offset", "output_lag", "select_tag")
    missing = [k for k in needed if k not in attrs]
    if missing:
        raise BundleError(f"{path} carries no {missing[0]!r} attribute (exported before lorsp wrote the settings)")
    return attrs


def run_netx(path: Path, spikes: np.ndarray, settings: dict) -> np.ndarray:
    """Gate spikes ``(T, N, n)`` of ``spikes`` ``(T, N, D)`` through the netx network in Lava."""
    try:
        from lava.lib.dl.netx.hdf5 import Network
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg
        from lava.proc.io.sink import RingBuffer as Sink
        from lava.proc.io.source import RingBuffer as Source
    except ImportError as exc:
        raise BundleError(f"this recipe runs the netx file in Lava, which is not installed here ({exc}); "
                          f"pip install lava-nc==0.10.0 lava-dl==0.6.0 (Python 3.10 only)") from None

    T, N, D = spikes.shape
    if T != int(settings["time_steps"]):
        raise BundleError(f"the spikes have {T} steps, the netx file {settings['time_steps']}")
    lag = int(settings["output_lag"])
    interval = settings["reset_interval"]
    net = Network(net_config=str(path), reset_interval=None if interval is None else int(interval),
                  reset_offset=int(settings["reset_offset"]))
    data = np.concatenate([spikes.transpose(2, 1, 0).reshape(D, N * T), np.zeros((D, lag))], axis=1).astype(np.int32)
    source, sink = Source(data=data), Sink(shape=net.out.shape, buffer=data.shape[1])
    source.s_out.connect(net.inp)
    net.out.connect(sink.a_in)
    try:
        net.run(condition=RunSteps(num_steps=data.shape[1]), run_cfg=Loihi2SimCfg(select_tag=settings["select_tag"]))
        recorded = np.asarray(sink.data.get())
    finally:
        net.stop()
    return (recorded[:, lag: lag + N * T] != 0).reshape(-1, N, T).transpose(2, 1, 0).astype(np.uint8)


def stop_after(seconds: float) -> None:
    """End the process with one error line (and Lava's worker processes with it) after ``seconds``."""
    def expire(_signum: int, _frame: object) -> None:
        for child in multiprocessing.active_children():
            child.kill()
        print(f"error: the Lava run took more than {seconds:g} s (--timeout)", file=sys.stderr, flush=True)
        os._exit(2)

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("bundle", metavar="BUNDLE", help="a lorsp-export --target all or loihi directory")
    p.add_argument("--images", required=True, help=".npy: (N, 3, L, L) float32 in [0, 1], or uint8 pixels at L px")
    p.add_argument("--out", required=True, help="gate spikes (.safetensors) to create")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds allowed for the Lava run")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    args = p.parse_args(argv)
    try:
        if not args.timeout > 0:
            raise BundleError(f"--timeout must be positive, got {args.timeout}")
        if Path(args.out).exists() and not args.force:
            raise BundleError(f"output {args.out} already exists: pass --force to overwrite it")
        root = Path(args.bundle)
        spec = open_spec(root)
        netx = root / spec["generator"]["files"]["netx"]
        settings = netx_settings(netx)
        spikes = encode(load_images(Path(args.images), spec["preprocess"]["image_size"]), spec["encode"])
        stop_after(args.timeout)
        gate_spikes = run_netx(netx, spikes, settings)
        signal.setitimer(signal.ITIMER_REAL, 0)
        counts = gate_spikes.astype(np.int32).sum(0)
        write(Path(args.out), {"gate_spikes": gate_spikes, "gate_counts": counts,
                               "gates": (counts > 0).astype(np.uint8)}, args.force)
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{gate_spikes.shape[1]} images through {netx.name} in lava-dl ({settings['select_tag']}, reset_interval "
          f"{settings['reset_interval']}, reset_offset {settings['reset_offset']}): {int(gate_spikes.sum())} gate "
          f"spikes -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
