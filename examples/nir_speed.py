"""lorsp-hwsim's NIR graph interpreter against snnTorch's own simulation: same spikes, samples per second.

    OMP_NUM_THREADS=1 .venv/bin/python examples/nir_speed.py

Two snnTorch networks (randomly initialised, weights scaled so every layer spikes), exported with
``export_to_nir``, written, read back and run by :mod:`hw_sim.graph.runner` (float32, counting
spikes, synaptic operations and neuron updates per node and sample), beside snnTorch's step loop on
the same Bernoulli input (rate 0.1): a convolutional net on 2 x 34 x 34 inputs (27,754 neurons;
N-MNIST's size) for T = 30 and a recurrent one (700 -> RLeaky 1000 -> 20, SHD's size) for T = 100,
32 samples each, one thread, the best of 3 interleaved runs each. Prints whether the output
spikes are equal and both rates.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import nir
import numpy as np
import snntorch as snn
import torch
from snntorch import utils as snn_utils
from snntorch.export_nir import export_to_nir

from deploy.nir_graph import flat_graph
from hw_sim.graph.runner import compile_graph, run_graph

ZERO = {"reset_mechanism": "zero", "reset_delay": False}


def leaky(*shape, **extra):
    return snn.Leaky(beta=torch.full(shape, 0.9), threshold=torch.ones(shape), **ZERO, **extra)


def conv_net() -> torch.nn.Sequential:
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 16, 3, padding=1), leaky(16, 34, 34, init_hidden=True), torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), leaky(32, 17, 17, init_hidden=True), torch.nn.AvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32 * 8 * 8, 10), leaky(10, init_hidden=True, output=True))
    with torch.no_grad():
        for i, gain in ((0, 3), (3, 6), (7, 20)):
            net[i].weight.mul_(gain)
    return net


class Recurrent(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(700, 1000), torch.nn.Linear(1000, 20)
        self.rec = snn.RLeaky(beta=torch.full((1000,), 0.9), threshold=torch.ones(1000), linear_features=1000, **ZERO)
        self.out = leaky(20)
        with torch.no_grad():
            self.fc1.weight.mul_(4)
            self.fc2.weight.mul_(4)
            self.rec.recurrent.weight.mul_(2)

    def forward(self, x):
        a, _ = self.rec(self.fc1(x))
        return self.out(self.fc2(a))[0]


@torch.no_grad()
def simulate_conv(net, x):
    snn_utils.reset(net)
    return torch.stack([net(x[t])[0] for t in range(x.shape[0])])


@torch.no_grad()
def simulate_recurrent(net, x):
    (s1, m1), m2, out = net.rec.init_rleaky(), net.out.init_leaky(), []
    for t in range(x.shape[0]):
        s1, m1 = net.rec(net.fc1(x[t]), s1, m1)
        s2, m2 = net.out(net.fc2(s1), m2)
        out.append(s2)
    return torch.stack(out)


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cases = (("conv", conv_net(), (2, 34, 34), simulate_conv, 30), ("recurrent", Recurrent(), (700,), simulate_recurrent, 100))
    with tempfile.TemporaryDirectory() as tmp:
        for name, net, shape, simulate, steps in cases:
            path = Path(tmp) / f"{name}.nir"
            nir.write(path, export_to_nir(net, torch.zeros(1, *shape), ignore_dims=[0]))
            compiled = compile_graph(flat_graph(nir.read(path)), 1e-4)
            neurons = sum(int(np.prod(c.out_shape)) for c in compiled.nodes if c.node.is_neuron)
            x = (torch.rand(steps, 32, *shape) < 0.1).float()
            t_ref = t_run = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                reference = simulate(net, x)
                t_ref = min(t_ref, time.perf_counter() - start)
                start = time.perf_counter()
                run = run_graph(compiled, x.numpy())
                t_run = min(t_run, time.perf_counter() - start)
            same = np.array_equal(run.outputs["output"], reference.numpy())
            print(f"{name}: {neurons} neurons, T = {steps}, N = 32: output spikes equal {same} "
                  f"({int(reference.sum())} spikes); snnTorch {32 / t_ref:.1f} samples/s, "
                  f"lorsp graph interpreter {32 / t_run:.1f} samples/s ({t_ref / t_run:.2f}x)")


if __name__ == "__main__":
    main()
