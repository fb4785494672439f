"""snnTorch networks exported to NIR and run by ``lorsp-hwsim``: trained on real data, and timed.

    OMP_NUM_THREADS=1 .venv/bin/python examples/nir_snntorch.py trained --seconds 150 -o runs/nir-trained
    OMP_NUM_THREADS=1 .venv/bin/python examples/nir_snntorch.py speed

``trained``: two networks trained on mnist-5k for ``--seconds`` each, one thread:

* ``conv``: Conv2d 1->8 (5x5) -> Leaky (8x24x24) -> AvgPool2d 2 -> Conv2d 8->16 (5x5) -> Leaky (16x8x8)
  -> AvgPool2d 2 -> Flatten -> Linear 256->10 -> Leaky: 5,642 neurons; input: Bernoulli spikes of
  the pixel intensities, T = 10;
* ``recurrent``: Linear 28->1024 -> RLeaky 1024 (all to all) -> Linear 1024->10 -> Leaky: 1,034
  neurons; input: one image row per step as graded input (the pixel values), T = 28.

Every neuron resets as NIR says (``reset_mechanism="zero", reset_delay=False``) and holds one beta
and threshold per neuron (snnTorch's export needs tensors). Each trains with snnTorch (BPTT, the
cross entropy of output spike counts, Adam) on 4,000 images (seeded split), is exported with
``export_to_nir`` and written; then, on the 1,000 held-out images, snnTorch's own step loop and
``lorsp-hwsim OUT/NAME.nir --input OUT/NAME-test.npz`` (the graph interpreter) run the same input.
Printed and written to ``OUT/summary.json``: the accuracy of each (argmax of the output spike
counts), whether every output spike is equal step by step, the report's spikes, synaptic
operations, energy and chip fit, and the fixed-point run's path, spike agreement and accuracy
(``--mode both``; graded input has none). The reports are ``OUT/NAME-report/``.

``speed``: two untrained networks (weights scaled so every layer spikes) on the same Bernoulli
input (rate 0.1), 32 samples, timed in ``--rounds`` interleaved rounds (snnTorch's own step loop,
then ``lorsp-hwsim``'s float run, then its fixed-point run, in every round; the best round of each
counts): a convolutional net on 2 x 34 x 34 inputs (27,754 neurons; N-MNIST's size) for T = 30 and
a recurrent one (700 -> RLeaky 1000 -> 20, SHD's size) for T = 100. The float and fixed runs are
the graph interpreter's (``hw_sim.graph.runner.run_graph``, counting every operation) on the graph
read back from the file and on its fixed-point twin (``hw_sim.graph.fixed_graph.compile_fixed``,
built once, untimed). Prints and, with ``--json``, writes the rates, their ratios, whether the float
output spikes equal snnTorch's and the fixed run's spike agreement per neuron node; ``--baseline-runner REV``
also times the float interpreter as committed at ``REV`` and checks its output spikes and counts against today's:

    OMP_NUM_THREADS=1 .venv/bin/python examples/nir_snntorch.py speed --json docs/data/hwsim-nir/speed.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import nir
import numpy as np
import snntorch as snn
import snntorch.functional as SF
import torch
from snntorch import utils as snn_utils
from snntorch.export_nir import export_to_nir

from deploy.nir_graph import flat_graph
from hw_sim.cli import main as hwsim
from hw_sim.graph.fixed import graph_run
from hw_sim.graph.fixed_graph import compile_fixed
from hw_sim.graph.runner import compile_graph, run_graph
from lorsp.data import load_source
from lorsp.plumbing.fileio import write_json
from lorsp.plumbing.provenance import git_commit, machine, versions

ZERO = {"reset_mechanism": "zero", "reset_delay": False}
TRAIN, SEED = 4000, 0


def leaky(*shape, **extra) -> snn.Leaky:
    return snn.Leaky(beta=torch.full(shape, 0.9), threshold=torch.ones(shape), **ZERO, **extra)


def conv_net() -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 5), leaky(8, 24, 24, init_hidden=True), torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(8, 16, 5), leaky(16, 8, 8, init_hidden=True), torch.nn.AvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(256, 10), leaky(10, init_hidden=True, output=True))


class Recurrent(torch.nn.Module):
    """Linear -> RLeaky (all to all) -> Linear -> Leaky."""

    def __init__(self, inputs: int = 28, hidden: int = 1024, outputs: int = 10):
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(inputs, hidden), torch.nn.Linear(hidden, outputs)
        self.rec = snn.RLeaky(beta=torch.full((hidden,), 0.9), threshold=torch.ones(hidden),
                              linear_features=hidden, **ZERO)
        self.out = leaky(outputs)

    def forward(self, x):  # one step, for the export's trace
        s, _ = self.rec(self.fc1(x))
        return self.out(self.fc2(s))[0]


@torch.no_grad()
def simulate_conv(net: torch.nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    return run_conv(net, x)


@torch.no_grad()
def simulate_recurrent(net: "Recurrent", x: torch.Tensor) -> torch.Tensor:
    return run_recurrent(net, x)


def run_conv(net: torch.nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    snn_utils.reset(net)
    return torch.stack([net(x[t])[0] for t in range(x.shape[0])])


def run_recurrent(net: Recurrent, x: torch.Tensor) -> torch.Tensor:
    (s1, m1), m2, out = net.rec.init_rleaky(), net.out.init_leaky(), []
    for t in range(x.shape[0]):
        s1, m1 = net.rec(net.fc1(x[t]), s1, m1)
        s2, m2 = net.out(net.fc2(s1), m2)
        out.append(s2)
    return torch.stack(out)


def encode(kind: str, images: torch.Tensor, seed: int) -> torch.Tensor:
    """``(T, N, ...)``: Bernoulli spikes of the intensities (conv, T = 10), or the rows as graded input (T = 28)."""
    if kind == "conv":
        gen = torch.Generator().manual_seed(seed)
        return (torch.rand((10, *images.shape), generator=gen) < images).float().unsqueeze(2)
    return images.permute(1, 0, 2).contiguous()


def train(kind: str, net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, seconds: float) -> dict:
    simulate = run_conv if kind == "conv" else run_recurrent
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    loss_fn = SF.ce_count_loss()
    start, steps, epoch = time.perf_counter(), 0, 0
    while time.perf_counter() - start < seconds:
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(epoch))
        for lo in range(0, len(images), 64):
            idx = order[lo:lo + 64]
            loss = loss_fn(simulate(net, encode(kind, images[idx], steps)), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            if time.perf_counter() - start >= seconds:
                break
        epoch += 1
    return {"seconds": time.perf_counter() - start, "batches": steps, "epochs": steps * 64 / len(images)}


def trained(args: argparse.Namespace) -> None:
    """The ``trained`` command (module docstring)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    source = load_source("mnist-5k")
    order = np.random.default_rng(SEED).permutation(len(source.train.data))
    images = torch.from_numpy(source.train.data[order].astype(np.float32) / 255.0)
    labels = torch.as_tensor(np.asarray(source.train.targets)[order], dtype=torch.long)
    summary = {}
    for kind, net, sample in (("conv", conv_net(), torch.zeros(1, 1, 28, 28)),
                              ("recurrent", Recurrent(), torch.zeros(1, 28))):
        fit = train(kind, net, images[:TRAIN], labels[:TRAIN], args.seconds)
        graph = out / f"{kind}.nir"
        nir.write(graph, export_to_nir(net, sample, ignore_dims=[0]))
        x = encode(kind, images[TRAIN:], seed=10_000)
        reference = (simulate_conv if kind == "conv" else simulate_recurrent)(net, x).numpy()
        np.savez(out / f"{kind}-test.npz", spikes=x.numpy())
        report_dir = out / f"{kind}-report"
        hwsim([str(graph), "--input", str(out / f"{kind}-test.npz"), "--mode", "both", "-o", str(report_dir),
               "--force", "--quiet"])
        report = json.loads((report_dir / "report.json").read_text())
        arrays = np.load(report_dir / "outputs.npz")
        chip, fixed = arrays["output"], report["runs"]["fixed"]
        y = labels[TRAIN:].numpy()
        summary[kind] = {
            "training": fit, "test_samples": int(len(y)), "steps": int(x.shape[0]),
            "neurons": sum(r["neurons"] for r in report["nodes"]),
            "accuracy_snntorch": float((reference.sum(0).argmax(1) == y).mean()),
            "accuracy_lorsp_hwsim": float((chip.sum(0).argmax(1) == y).mean()),
            "output_spikes_equal_step_by_step": bool(np.array_equal(chip, reference)),
            "output_spikes_per_sample": float(reference.sum() / len(y)),
            "spikes_per_sample": report["activity"]["spike"], "synops_per_sample": report["activity"]["synop"],
            "energy_nj_per_sample": {e["table"]: e["total_nj"] for e in report["energy"]},
            "chip_fit": {k: {"cores": f["cores_needed"], "fits": f["fits"]} for k, f in report["chip_fit"].items()},
            "lorsp_hwsim_samples_per_s": report["runs"]["float"]["performance"]["samples_per_s"],
            "fixed": ({"path": fixed["path"], "spike_agreement": fixed["overall"],
                       "accuracy": float((arrays["fixed.output"].sum(0).argmax(1) == y).mean())}
                      if fixed["ran"] else {"not_run": fixed["reason"]}),
        }
        print(kind, json.dumps(summary[kind]))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))


def speed_conv_net() -> torch.nn.Sequential:
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 16, 3, padding=1), leaky(16, 34, 34, init_hidden=True), torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), leaky(32, 17, 17, init_hidden=True), torch.nn.AvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32 * 8 * 8, 10), leaky(10, init_hidden=True, output=True))
    with torch.no_grad():
        for i, gain in ((0, 3), (3, 6), (7, 20)):
            net[i].weight.mul_(gain)
    return net


def speed_recurrent_net() -> Recurrent:
    net = Recurrent(700, 1000, 20)
    with torch.no_grad():
        net.fc1.weight.mul_(4)
        net.fc2.weight.mul_(4)
        net.rec.recurrent.weight.mul_(2)
    return net


def module_at(revision: str, path: str, replacing: dict[str, types.ModuleType] | None = None) -> types.ModuleType:
    """The module at ``path`` as committed at git ``revision``, for a before/after measurement in one run (it
    imports today's modules, but those named in ``replacing``: ``{dotted name: module}``, which it gets
    instead)."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(["git", "show", f"{revision}:{path}"], cwd=root, check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType(f"{Path(path).stem}_at_{revision}")
    sys.modules[module.__name__] = module
    saved = {name: sys.modules.get(name) for name in replacing or {}}
    sys.modules.update(replacing or {})
    try:
        exec(compile(source, f"{revision}:{path}", "exec"), module.__dict__)
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    return module


def compile_fixed_at(revision: str):
    """``compile_fixed`` of ``hw_sim/graph/fixed_graph.py`` as committed at git ``revision``."""
    return module_at(revision, "hw_sim/graph/fixed_graph.py").compile_fixed


def runner_at(revision: str) -> types.ModuleType:
    """``hw_sim/graph/runner.py`` as committed at git ``revision``, with the neurons of that revision
    (``compile_graph`` and ``run_graph`` of the float graph interpreter before a change)."""
    neurons = module_at(revision, "hw_sim/graph/neurons.py")
    return module_at(revision, "hw_sim/graph/runner.py", {"hw_sim.graph.neurons": neurons})


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def speed(args: argparse.Namespace) -> None:
    """The ``speed`` command (module docstring)."""
    cases = (("conv", speed_conv_net(), (2, 34, 34), simulate_conv, 30),
             ("recurrent", speed_recurrent_net(), (700,), simulate_recurrent, 100))
    samples = 32
    record = {"command": "examples/nir_snntorch.py speed", "rounds": args.rounds, "samples": samples,
              "threads": torch.get_num_threads(), "machine": machine(), "versions": versions(),
              "commit": git_commit(), "load_average_start": os.getloadavg(), "graphs": {}}
    baseline = compile_fixed_at(args.baseline_fixed) if args.baseline_fixed else None
    record["baseline_fixed"] = args.baseline_fixed
    before = runner_at(args.baseline_runner) if args.baseline_runner else None
    record["baseline_runner"] = args.baseline_runner
    with tempfile.TemporaryDirectory() as tmp:
        for name, net, shape, simulate, steps in cases:
            path = Path(tmp) / f"{name}.nir"
            nir.write(path, export_to_nir(net, torch.zeros(1, *shape), ignore_dims=[0]))
            compiled = compile_graph(flat_graph(nir.read(path)), 1e-4)
            start = time.perf_counter()
            fixed = compile_fixed(compiled)
            compile_s = time.perf_counter() - start
            neurons = sum(int(np.prod(c.out_shape)) for c in compiled.nodes if c.node.is_neuron)
            x = (torch.rand(steps, samples, *shape) < 0.1).float()
            runs = {"snntorch": (simulate, net, x), "lorsp_float": (run_graph, compiled, x.numpy()),
                    "lorsp_fixed": (run_graph, fixed, x.numpy())}
            if args.baseline_fixed:
                old = baseline(compiled)
                runs[f"lorsp_fixed_at_{args.baseline_fixed}"] = (run_graph, old, x.numpy())
                record.setdefault("fixed_output_spikes_equal_baseline", {})[name] = bool(np.array_equal(
                    run_graph(fixed, x.numpy()).outputs["output"], run_graph(old, x.numpy()).outputs["output"]))
            if before is not None:
                old_float = before.compile_graph(flat_graph(nir.read(path)), 1e-4)
                runs[f"lorsp_float_at_{args.baseline_runner}"] = (before.run_graph, old_float, x.numpy())
                now, then = run_graph(compiled, x.numpy()), before.run_graph(old_float, x.numpy())
                record.setdefault("float_output_spikes_and_counts_equal_baseline_runner", {})[name] = bool(
                    np.array_equal(now.outputs["output"], then.outputs["output"]) and all(
                        np.array_equal(getattr(now.stats[k], f), getattr(then.stats[k], f))
                        for k in now.stats for f in ("spikes", "pairs", "active_updates")))
            rounds = {k: [] for k in runs}
            for _ in range(args.rounds):
                for k, (fn, *a) in runs.items():
                    rounds[k].append(timed(fn, *a))
            rate = {k: samples / min(v) for k, v in rounds.items()}
            same = np.array_equal(run_graph(compiled, x.numpy()).outputs["output"], simulate(net, x).numpy())
            agreement = graph_run(compiled, fixed, x.numpy(), timeout=600).block
            record["graphs"][name] = {
                "neurons": neurons, "steps": steps, "seconds_per_round": rounds, "samples_per_s": rate,
                "float_over_snntorch": rate["lorsp_float"] / rate["snntorch"],
                "fixed_over_snntorch": rate["lorsp_fixed"] / rate["snntorch"],
                "fixed_over_float": rate["lorsp_fixed"] / rate["lorsp_float"],
                **({"float_over_baseline_runner": rate["lorsp_float"] / rate[f"lorsp_float_at_{args.baseline_runner}"]}
                   if args.baseline_runner else {}),
                **({"fixed_over_baseline_fixed": rate["lorsp_fixed"] / rate[f"lorsp_fixed_at_{args.baseline_fixed}"]}
                   if args.baseline_fixed else {}),
                "float_output_spikes_equal_snntorch": bool(same), "fixed_compile_seconds": compile_s,
                "fixed_spike_agreement": {r["node"]: r["agreement"] for r in agreement["per_node"]},
                "fixed_spike_agreement_overall": agreement["overall"]}
            print(f"{name}: {neurons} neurons, T = {steps}, N = {samples}: float output spikes equal snnTorch's "
                  f"{same}; snnTorch {rate['snntorch']:.1f}, lorsp float {rate['lorsp_float']:.1f} "
                  f"({rate['lorsp_float'] / rate['snntorch']:.2f}x), lorsp fixed {rate['lorsp_fixed']:.1f} samples/s "
                  f"({rate['lorsp_fixed'] / rate['snntorch']:.2f}x snnTorch); fixed spike agreement "
                  f"{100 * agreement['overall']:.2f}%"
                  + (f"; fixed at {args.baseline_fixed} {rate[f'lorsp_fixed_at_{args.baseline_fixed}']:.1f} samples/s "
                     f"(today {record['graphs'][name]['fixed_over_baseline_fixed']:.2f}x)" if args.baseline_fixed else ""))
    record["load_average_end"] = os.getloadavg()
    if args.json:
        write_json(args.json, record)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("trained", help="train on mnist-5k, export, run, compare")
    t.add_argument("--seconds", type=float, default=150.0, help="training time per network")
    t.add_argument("-o", "--out", default="runs/nir-trained")
    sp = sub.add_parser("speed", help="samples per second of snnTorch and of the graph interpreter, float and fixed")
    sp.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the best of each counts")
    sp.add_argument("--json", default=None, help="write the figures to this JSON file")
    sp.add_argument("--baseline-runner", default=None, metavar="REV",
                    help="also time the float graph interpreter (runner and neurons) as committed at git REV, "
                         "and check that its output spikes and counts equal today's")
    sp.add_argument("--baseline-fixed", default=None, metavar="REV",
                    help="also time the fixed path of hw_sim/graph/fixed_graph.py as committed at git REV")
    args = p.parse_args()
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    {"trained": trained, "speed": speed}[args.command](args)


if __name__ == "__main__":
    main()
