"""The fast backend against Lava on the same images: throughput, ratio, memory, and how fast scales.

    python benchmarks/fastsim.py [BUNDLE] [--samples 256] [--repeats 5] [--json FILE]

BUNDLE is a directory written by ``lorsp-export --target loihi``; without one, a band-gated LoRSP
checkpoint (a chain generator; ``lorsp.prompts.lorsp.band_flags``) is trained briefly (sklearn-digits, 32 px, one
epoch) and exported into a temporary directory. Both backends run the first
``--samples`` test images of the bundle's dataset in float and fixed mode, and their
spikes must be equal. Reported per mode:

* images/s of the whole backend call (Lava: fork, build, compile, run, read-out; fast:
  build and run) and of the stepping alone (Lava after its first chunk, fast's stepping),
  and the ratios fast / Lava of both, from this one run;
* memory per image: fast, the peak of numpy's allocations (tracemalloc) over the batch;
  Lava, the private memory (``Private_*`` of ``/proc/PID/smaps_rollup``) of its processes
  at their peak, sampled every 20 ms, over the batch (mostly a per-run cost).

Then fast alone, best of ``--repeats``: time against batch size (the bundle's images
tiled), time steps ``T`` and hidden width (random networks ``D -> H -> 2G`` with the
generator's input density).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lorsp.plumbing.fileio import write_json  # noqa: E402
from lorsp.prompts.lorsp import band_flags  # noqa: E402

import numpy as np  # noqa: E402

TRAIN = ["--prompt", "lorsp", *band_flags(), "--dataset", "sklearn-digits", "--image-size", "32", "--epochs", "1",
         "--limit-train", "128", "--limit-test", "64", "--batch-size", "32", "--quiet"]
BATCHES = (64, 256, 1024, 4096, 16384)
STEPS = (4, 8, 16, 32, 64)
WIDTHS = (16, 64, 256, 1024)
SCALING_SAMPLES = 1024
MODES = ("float", "fixed")


def make_bundle(workdir: Path) -> Path:
    """Train the default LoRSP generator briefly and export it (no simulation) into ``workdir``."""
    from export.loihi import export_loihi

    run = workdir / "run"
    subprocess.run([sys.executable, "-m", "lorsp.train", *TRAIN, "--out", str(run)], cwd=ROOT, check=True)
    export_loihi(run / "model.pt", workdir / "bundle")
    return workdir / "bundle"


def input_spikes(bundle, samples: int) -> np.ndarray:
    """``(T, N, D)`` uint8 input spikes of the first ``samples`` test images, as lorsp-hwsim encodes them."""
    from lorsp.data import load_split_images

    config = bundle.config
    x, _ = load_split_images(config["dataset"], config["image_size"], samples, config.get("data_root"))
    return bundle.host.encoding(x).numpy().astype(np.uint8)


def best_time(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def numpy_peak_bytes(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


class PrivateMemorySampler:
    """Peak private memory of this process's descendants, sampled in a thread while it runs."""

    def __init__(self, every_s: float = 0.02) -> None:
        self.every_s, self.peak, self._stop = every_s, 0, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "PrivateMemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak = max(self.peak, sum(private_bytes(pid) for pid in descendants(os.getpid())))


def descendants(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        children = parents.get(todo.pop(), [])
        out += children
        todo += children
    return out


def private_bytes(pid: int) -> int:
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return 0
    return sum(int(line.split()[1]) * 1024 for line in lines if line.startswith(("Private_Clean", "Private_Dirty")))


def compare_backends(network, spikes: np.ndarray, repeats: int) -> dict:
    """Lava once and fast best of ``repeats`` per mode, on the same spikes; equal spikes required."""
    from hw_sim.backends import get_backend

    fast, lava = get_backend("fast"), get_backend("lava")
    n = spikes.shape[1]
    out = {}
    for mode in MODES:
        with PrivateMemorySampler() as sampler:
            ref = lava(network, spikes, mode=mode, timeout=3600)
        results = [fast(network, spikes, mode=mode, timeout=3600) for _ in range(repeats)]
        best = min(results, key=lambda r: r.seconds)
        identical = all(np.array_equal(a, b) for r in results for a, b in zip(r.layer_spikes, ref.layer_spikes))
        if not identical:
            raise SystemExit(f"{mode}: fast and Lava spikes differ; no speed figure is worth reporting")
        chunk = ref.details["chunk_samples"]
        lava_steady = (n - chunk) / (ref.run_seconds - ref.details["first_chunk_seconds"])
        fast_peak = numpy_peak_bytes(lambda: fast(network, spikes, mode=mode, timeout=3600))
        out[mode] = {
            "identical_spikes": identical,
            "lava": {"seconds": ref.seconds, "images_per_s": n / ref.seconds, "steady_images_per_s": lava_steady,
                     "private_bytes_peak": sampler.peak, "bytes_per_image": sampler.peak / n},
            "fast": {"seconds": best.seconds, "images_per_s": n / best.seconds,
                     "stepping_images_per_s": n / best.run_seconds, "numpy_bytes_peak": fast_peak,
                     "bytes_per_image": fast_peak / n},
            "ratio_all": ref.seconds / best.seconds,
            "ratio_stepping": (n / best.run_seconds) / lava_steady,
        }
    return out


def fast_seconds(network, spikes: np.ndarray, repeats: int) -> dict[str, float]:
    from hw_sim.backends import get_backend

    run = get_backend("fast")
    return {mode: best_time(lambda m=mode: run(network, spikes, mode=m, timeout=3600), repeats) for mode in MODES}


def random_generator(d: int, hidden: int, out: int, seed: int = 0):
    """``D -> hidden -> out`` Leaky layers (beta 0.9, threshold 1) with weights of a trained generator's spread."""
    from deploy.network import Layer, SpikingNetwork

    rng = np.random.default_rng(seed)

    def layer(name: str, n: int, fan_in: int) -> Layer:
        w = (rng.normal(size=(n, fan_in)) * 2.0 / np.sqrt(fan_in)).astype(np.float32)
        return Layer(name, w, np.zeros(n, np.float32), np.full(n, 0.9, np.float32), np.ones(n, np.float32),
                     np.zeros(n, np.float32))

    return SpikingNetwork(d, (layer("hidden", hidden, d), layer("gates", out, hidden)))


def scaling(network, spikes: np.ndarray, repeats: int) -> dict[str, list[dict]]:
    """fast's time against batch size, T and hidden width."""
    T, n, d = spikes.shape
    density = float(spikes.mean())
    rng = np.random.default_rng(1)
    rows: dict[str, list[dict]] = {"batch": [], "time_steps": [], "width": []}
    for batch in BATCHES:
        tiled = np.tile(spikes, (1, -(-batch // n), 1))[:, :batch]
        rows["batch"].append({"batch": batch, "T": T, "width": network.sizes[0],
                              **fast_seconds(network, tiled, repeats)})
    for steps in STEPS:
        x = (rng.random((steps, SCALING_SAMPLES, d)) < density).astype(np.uint8)
        rows["time_steps"].append({"batch": SCALING_SAMPLES, "T": steps, "width": network.sizes[0],
                                   **fast_seconds(network, x, repeats)})
    x = (rng.random((T, SCALING_SAMPLES, d)) < density).astype(np.uint8)
    for width in WIDTHS:
        net = random_generator(d, width, network.sizes[-1])
        rows["width"].append({"batch": SCALING_SAMPLES, "T": T, "width": width, **fast_seconds(net, x, repeats)})
    return rows


def print_tables(result: dict) -> None:
    print(f"\n{result['samples']} images of {result['dataset']}, T = {result['time_steps']}, network "
          f"{result['network']}; {result['machine']}")
    print(f"{'mode':6} {'Lava img/s':>11} {'steady':>9} {'fast img/s':>12} {'stepping':>12} {'ratio':>8} "
          f"{'stepping':>9} {'Lava B/img':>11} {'fast B/img':>11} equal")
    for mode, r in result["compare"].items():
        print(f"{mode:6} {r['lava']['images_per_s']:11.1f} {r['lava']['steady_images_per_s']:9.1f} "
              f"{r['fast']['images_per_s']:12.0f} {r['fast']['stepping_images_per_s']:12.0f} {r['ratio_all']:7.0f}x "
              f"{r['ratio_stepping']:8.0f}x {r['lava']['bytes_per_image']:11.0f} {r['fast']['bytes_per_image']:11.0f} "
              f"{r['identical_spikes']}")
    print("\nfast backend alone, best of repeats: milliseconds per run and images/s")
    print(f"{'varied':10} {'batch':>6} {'T':>4} {'width':>6} {'float ms':>10} {'fixed ms':>10} {'float img/s':>12} "
          f"{'fixed img/s':>12}")
    for varied, rows in result["scaling"].items():
        for r in rows:
            print(f"{varied:10} {r['batch']:6d} {r['T']:4d} {r['width']:6d} {1e3 * r['float']:10.2f} "
                  f"{1e3 * r['fixed']:10.2f} {r['batch'] / r['float']:12.0f} {r['batch'] / r['fixed']:12.0f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", nargs="?", default=None, help="a lorsp-export --target loihi directory")
    p.add_argument("--samples", type=int, default=256, help="test images both backends run")
    p.add_argument("--repeats", type=int, default=5, help="fast runs per figure (the best counts)")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args()
    from deploy.bundle import open_bundle
    from lorsp.plumbing.provenance import git_commit, machine, versions

    with tempfile.TemporaryDirectory(prefix="fastsim-") as tmp:
        bundle = open_bundle(args.bundle or make_bundle(Path(tmp)))
        spikes = input_spikes(bundle, args.samples)
        network = bundle.network
        result = {"bundle": args.bundle or "trained for this run (sklearn-digits, 32 px, 1 epoch)",
                  "dataset": bundle.config["dataset"], "samples": int(spikes.shape[1]),
                  "time_steps": int(spikes.shape[0]), "network": [network.input_size, *network.sizes],
                  "input_density": float(spikes.mean()), "machine": machine(), "git_commit": git_commit(),
                  "versions": {k: v for k, v in versions().items() if k in ("numpy", "lava-nc", "python")},
                  "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                  "compare": compare_backends(network, spikes, args.repeats),
                  "scaling": scaling(network, spikes, max(1, args.repeats // 2 + 1))}
    print_tables(result)
    if args.json:
        write_json(args.json, result)
        print(f"-> {args.json}")


if __name__ == "__main__":
    main()
