"""Would spike-sparse products speed up the graph runner's synapses? Dense against sparse, in one run.

    OMP_NUM_THREADS=1 .venv-lava/bin/python benchmarks/spike_matmul.py -o docs/data/hwsim-nir/spike_matmul.json

The graph interpreter (``hw_sim.graph.runner``) multiplies each step's spikes ``(N, K)`` by a node's dense
float32 weights ``(K, M)``. For the shapes of ``benchmarks/nir_lava_speed.py``'s recurrent graphs (700 -> 1000
and 1000 -> 1000 per step; 4000 -> 4000 for ``recurrent:4000``), ``N = --batch`` samples and Bernoulli
spikes at each ``--densities`` share, this times, interleaved over ``--rounds`` rounds (best round kept):

* ``dense``: ``spikes @ W`` (what the runner does);
* ``csr``: the spikes as a PyTorch CSR tensor times ``W`` (the conversion counted);
* ``gather``: the rows of ``W`` of the spiking inputs summed per sample (``index_add_``).

All three give the same sums (checked). The JSON has microseconds per product and each sparse form's time
over the dense one's, with the machine and the thread count.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from lorsp.plumbing.fileio import write_json
from lorsp.plumbing.provenance import git_commit, versions
from lorsp.plumbing.runtime import tune_allocator

SHAPES = ((700, 1000), (1000, 1000), (4000, 4000))


def products(spikes: torch.Tensor, weight: torch.Tensor) -> dict[str, Callable[[], torch.Tensor]]:
    """The three ways of the module docstring, each a function of nothing that returns ``(N, M)``."""
    def dense() -> torch.Tensor:
        return spikes @ weight

    def csr() -> torch.Tensor:
        return spikes.to_sparse_csr() @ weight

    def gather() -> torch.Tensor:
        n, k = spikes.nonzero(as_tuple=True)
        return torch.zeros(spikes.shape[0], weight.shape[1]).index_add_(0, n, weight[k])

    return {"dense": dense, "csr": csr, "gather": gather}


def time_once(fn: Callable[[], torch.Tensor], repeats: int) -> float:
    """Seconds per call of ``fn``, over ``repeats`` calls."""
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main(argv: list[str] | None = None) -> int:
    tune_allocator()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--densities", type=float, nargs="+", default=[0.02, 0.05, 0.1, 0.2])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--out", required=True, help="JSON to write")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    rows = []
    for k, m in SHAPES:
        weight = torch.randn(k, m)
        for density in args.densities:
            spikes = (torch.rand(args.batch, k) < density).float()
            ways = products(spikes, weight)
            reference = ways["dense"]()
            for name, fn in ways.items():
                if not torch.allclose(fn(), reference, atol=1e-3):
                    raise SystemExit(f"error: {name} differs from the dense product")
            best = {name: float("inf") for name in ways}
            for _ in range(args.rounds):  # interleaved, so a change of load hits every way alike
                for name, fn in ways.items():
                    best[name] = min(best[name], time_once(fn, args.repeats))
            row = {"inputs": k, "outputs": m, "batch": args.batch, "density": density,
                   "microseconds": {name: 1e6 * s for name, s in best.items()},
                   "over_dense": {name: s / best["dense"] for name, s in best.items() if name != "dense"}}
            rows.append(row)
            print(f"{k:>5} -> {m:<5} density {density:<5} " + "  ".join(
                f"{name} {1e6 * s:8.0f} us" for name, s in best.items()), flush=True)
    write_json(Path(args.out), {
        "command": "benchmarks/spike_matmul.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} thread(s), load average at the end "
                   f"{os.getloadavg()[0]:.2f}", "commit": git_commit(),
        "versions": versions(), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
