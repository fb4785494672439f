"""Samples per second of lorsp's graph interpreter against Lava itself, on the same snnTorch graphs and input.

    OMP_NUM_THREADS=1 .venv-lava/bin/python benchmarks/nir_lava_speed.py --graphs conv,recurrent,recurrent:4000 \
        -o docs/data/hwsim-nir/lava_speed.json

The two untrained networks of ``examples/nir_snntorch.py speed`` (imported from it: weights scaled so
every layer spikes), exported with snnTorch's ``export_to_nir`` and read back from the file: a
convolutional net on 2 x 34 x 34 inputs (27,754 neurons, T = 30) and a recurrent one (700 -> RLeaky 1000
-> 20, T = 100; ``recurrent:4000`` the same with 4,000), Bernoulli input of rate 0.1. In one process
(the Lava environment; the interpreter on ``--threads`` threads, 1 by default): the graph interpreter (``hw_sim.graph.runner.run_graph``, what
``lorsp-hwsim MODEL.nir`` runs, counting every operation) on ``--samples`` samples, best of
``--rounds``; then Lava (lava-nc 0.10.0, its ``floating_pt`` models, :mod:`hw_sim.backends.lava_graph`)
once on the first ``--lava-samples`` of them, and the spike agreement of every neuron node between the
two. Lava's rate counts its whole run (process start-up, the run, the read-out); its steady rate only
the samples after its first chunk (Lava compiles and starts its processes during the first);
``build_seconds_lorsp`` (multiplying the blocks out, in lorsp) is reported apart and counted in neither.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import tempfile
import time
from pathlib import Path

import nir
import numpy as np
import torch

from deploy.nir_graph import flat_graph
from hw_sim.graph.lava_check import check_lava, voltage_row
from hw_sim.graph.fixed import compare
from hw_sim.graph.runner import compile_graph, run_graph
from lorsp.plumbing.fileio import write_json
from lorsp.plumbing.provenance import git_commit, versions

ROOT = Path(__file__).resolve().parent.parent


def example():
    """``examples/nir_snntorch.py`` as a module (its networks)."""
    spec = importlib.util.spec_from_file_location("nir_snntorch", ROOT / "examples" / "nir_snntorch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scaled_recurrent(ex, hidden: int) -> torch.nn.Module:
    """The example's recurrent net with ``hidden`` neurons, 700 -> RLeaky ``hidden`` -> 20, and its weight scaling
    (``speed_recurrent_net``: input and output weights times 4, recurrent ones times 2)."""
    net = ex.Recurrent(700, hidden, 20)
    with torch.no_grad():
        net.fc1.weight.mul_(4)
        net.fc2.weight.mul_(4)
        net.rec.recurrent.weight.mul_(2)
    return net


def case(name: str, net: torch.nn.Module, shape: tuple[int, ...], steps: int, args: argparse.Namespace) -> dict:
    """Both simulators on one network; the figures of one row."""
    from hw_sim.backends.lava_graph import run_lava_net  # Lava, loaded by check_lava
    from snntorch.export_nir import export_to_nir
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.nir"
        nir.write(path, export_to_nir(net, torch.zeros(1, *shape), ignore_dims=[0]))
        compiled = compile_graph(flat_graph(nir.read(path)), 1e-4)
        before = args.before.compile_graph(flat_graph(nir.read(path)), 1e-4) if args.before else None
    neurons = sum(int(np.prod(c.out_shape)) for c in compiled.nodes if c.node.is_neuron)
    gen = torch.Generator().manual_seed(args.seed)
    x = (torch.rand((steps, args.samples, *shape), generator=gen) < 0.1).float().numpy()
    fast = then = float("inf")
    for _ in range(args.rounds):
        start = time.perf_counter()
        run = run_graph(compiled, x)
        fast = min(fast, time.perf_counter() - start)
        if before is not None:
            start = time.perf_counter()
            old = args.before.run_graph(before, x)
            then = min(then, time.perf_counter() - start)
    baseline = {} if before is None else {"baseline_runner": {
        "revision": args.baseline_runner, "seconds": then, "samples_per_s": args.samples / then,
        "today_over_baseline": then / fast,
        "output_spikes_and_counts_equal": bool(np.array_equal(run.outputs["output"], old.outputs["output"]) and all(
            np.array_equal(getattr(run.stats[k], f), getattr(old.stats[k], f))
            for k in run.stats for f in ("spikes", "pairs", "active_updates")))}}
    xl = np.ascontiguousarray(x[:, :args.lava_samples])
    start = time.perf_counter()
    net_plan = check_lava(compiled, xl)
    build = time.perf_counter() - start
    lava = run_lava_net(net_plan, xl, timeout=args.timeout)
    nodes = [n for n in net_plan.neurons if n.recorded]
    reference = run_graph(compiled, xl, record=[n.name for n in nodes])
    rows = [voltage_row(n.name, lava.outputs[n.name], reference.outputs[n.name].reshape(lava.outputs[n.name].shape))
            if n.readout else compare([n.name], [lava.outputs[n.name]], [reference.outputs[n.name].reshape(
                lava.outputs[n.name].shape)])[0] for n in nodes]
    fast_rate, lava_rate = args.samples / fast, args.lava_samples / lava.seconds
    d = lava.details
    after_first = args.lava_samples - d["chunk_samples"]
    steady = after_first / (d["run_seconds"] - d["first_chunk_seconds"]) if after_first > 0 else None
    row = {"graph": name, "neurons": neurons, "steps": steps, "input_rate": 0.1,
           "fast": {"samples": args.samples, "seconds": fast, "samples_per_s": fast_rate, "rounds": args.rounds,
                    "output_spikes_per_sample": float(run.outputs["output"].sum() / args.samples), **baseline},
           "lava": {"samples": args.lava_samples, "seconds": lava.seconds, "samples_per_s": lava_rate,
                    "build_seconds_lorsp": build, **lava.details,
                    "blocks": [{"source": b.source, "target": b.target, "nonzero_weights": int(b.weight.nnz),
                                "shape": list(b.weight.shape), "delay": b.delay, "clear": b.clear}
                               for b in net_plan.blocks]},
           "lava_steady_samples_per_s": steady, "agreement_lava_vs_interpreter": rows,
           "speedup": fast_rate / lava_rate, "speedup_over_lava_steady": fast_rate / steady if steady else None}
    print(f"{name}: {neurons} neurons, T = {steps}: graph interpreter {fast_rate:.1f} samples/s "
          f"({args.samples} samples, best of {args.rounds}); Lava {lava_rate:.3f} samples/s ({args.lava_samples} "
          f"samples, {lava.seconds:.1f} s; {steady or float('nan'):.3f} samples/s after its first chunk); "
          f"{fast_rate / lava_rate:.0f}x ({fast_rate / steady if steady else float('nan'):.0f}x the steady rate); "
          + (f"the interpreter at {args.baseline_runner}: {args.samples / then:.1f} samples/s (today "
             f"{then / fast:.2f}x; spikes and counts equal {baseline['baseline_runner']['output_spikes_and_counts_equal']}); "
             if before is not None else "")
          + f"spike agreement "
          + ", ".join(f"{r['node']} {100 * r['agreement']:.2f}%" for r in rows), flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=32, help="samples the graph interpreter runs")
    p.add_argument("--lava-samples", type=int, default=16, help="samples Lava runs (the first of the same input)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds of the graph interpreter (best counts)")
    p.add_argument("--graphs", default="conv,recurrent", help="which of conv, recurrent, recurrent:H (H hidden "
                   "neurons instead of 1000, the example's weight scaling)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=900.0, help="seconds allowed for each Lava run")
    p.add_argument("--baseline-runner", default=None, metavar="REV",
                   help="also time the graph interpreter (runner and neurons) as committed at git REV, in the same rounds")
    p.add_argument("--threads", type=int, default=1, help="PyTorch threads of the graph interpreter (Lava runs each "
                   "of its processes in an OS process of its own, so it uses every core whatever this says)")
    p.add_argument("-o", "--out", default=None, help="JSON to write")
    args = p.parse_args()
    if args.threads < 1:
        raise SystemExit(f"--threads must be at least 1, got {args.threads}")
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    ex = example()
    args.before = ex.runner_at(args.baseline_runner) if args.baseline_runner else None
    cases = {"conv": (ex.speed_conv_net, (2, 34, 34), 30), "recurrent": (ex.speed_recurrent_net, (700,), 100)}
    rows = []
    for name in args.graphs.split(","):
        kind, _, hidden = name.partition(":")
        net = cases[kind][0]() if not hidden else scaled_recurrent(ex, int(hidden))
        rows.append(case(name, net, cases[kind][1], cases[kind][2], args))
    if args.out:
        write_json(args.out, {
            "command": f"OMP_NUM_THREADS={args.threads} .venv-lava/bin/python benchmarks/nir_lava_speed.py " + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("out", "before")) + f" -o {args.out}",
            "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs, the interpreter on {args.threads} "
                       f"thread(s) (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}), load average at the end "
                       f"{os.getloadavg()[0]:.2f}",
            "python": platform.python_version(), "versions": versions(), "commit": git_commit(), "rows": rows})


if __name__ == "__main__":
    main()
