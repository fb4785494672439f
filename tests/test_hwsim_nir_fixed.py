"""Fixed point for general NIR graphs: the integer twin equals the Lava-verified chain path where both run.

The chain path (``deploy.fixed_point`` on the fast backend, spike-identical to Lava's ``fixed_pt``
models) takes chains; :mod:`hw_sim.graph.fixed_graph` takes branches, recurrence and large
convolutions by the same rules. On chains both must give the same spikes, bit for bit; on a
recurrent snnTorch graph only the general path runs.
"""
from __future__ import annotations

import nir
import numpy as np
import pytest
import snntorch as snn
import torch
from snntorch.export_nir import export_to_nir

from deploy.nir_graph import flat_graph
from hw_sim.backends import get_backend
from hw_sim.graph.fixed import chain_network, fixed_run
from hw_sim.graph.fixed_graph import compile_fixed
from hw_sim.graph.runner import compile_graph, run_graph
from lorsp.plumbing.errors import LorspError

T, N = 20, 6
ZERO = {"reset_mechanism": "zero", "reset_delay": False}


def exported(tmp_path, net, sample):
    path = tmp_path / "net.nir"
    nir.write(path, export_to_nir(net, sample, ignore_dims=[0]))
    return compile_graph(flat_graph(nir.read(path)), 1e-4)


def spikes(shape, seed=0, rate=0.4):
    return (np.random.default_rng(seed).random((T, N, *shape)) < rate).astype(np.float32)


def both_paths(compiled, x):
    network = chain_network(compiled, x)
    chain = get_backend("fast")(network, x.reshape(T, N, -1).astype(np.uint8), mode="fixed", timeout=60)
    names = [layer.name for layer in network.layers]
    general = run_graph(compile_fixed(compiled), x, record=names)
    return names, chain.layer_spikes, [general.outputs[n].reshape(T, N, -1).astype(np.uint8) for n in names]


def per_neuron(n, low, high, gen):
    return low + (high - low) * torch.rand(n, generator=gen)


def test_general_path_equals_the_chain_path_on_a_dense_chain(tmp_path):
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(12, 16), snn.Leaky(beta=per_neuron(16, 0.5, 0.95, gen), threshold=per_neuron(16, 0.5, 1.5, gen),
                                           init_hidden=True, **ZERO),
        torch.nn.Linear(16, 6, bias=False), snn.Synaptic(alpha=torch.full((6,), 0.5), beta=torch.full((6,), 0.8),
                                                         threshold=torch.ones(6), init_hidden=True, output=True, **ZERO))
    with torch.no_grad():
        net[0].weight.mul_(3)
        net[2].weight.mul_(3)
    compiled = exported(tmp_path, net, torch.zeros(1, 12))
    names, chain, general = both_paths(compiled, spikes((12,)))
    for name, a, b in zip(names, chain, general):
        assert a.sum() > 0 and np.array_equal(a, b), name


def test_general_path_equals_the_chain_path_on_a_small_conv_net(tmp_path):
    torch.manual_seed(1)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), snn.Leaky(beta=torch.full((4, 8, 8), 0.9), threshold=torch.ones(4, 8, 8),
                                                       init_hidden=True, **ZERO),
        torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(64, 5),
        snn.Leaky(beta=torch.full((5,), 0.8), threshold=torch.ones(5), init_hidden=True, output=True, **ZERO))
    with torch.no_grad():
        net[0].weight.mul_(2)
        net[4].weight.mul_(6)
    compiled = exported(tmp_path, net, torch.zeros(1, 1, 8, 8))
    names, chain, general = both_paths(compiled, spikes((1, 8, 8), rate=0.3))
    for name, a, b in zip(names, chain, general):
        assert a.sum() > 0 and np.array_equal(a, b), name


def test_a_recurrent_graph_runs_in_fixed_point_on_the_general_path(tmp_path):
    torch.manual_seed(2)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = torch.nn.Linear(10, 24), torch.nn.Linear(24, 6)
            self.rec = snn.RLeaky(beta=torch.full((24,), 0.85), threshold=torch.ones(24), linear_features=24, **ZERO)
            self.out = snn.Leaky(beta=torch.full((6,), 0.8), threshold=torch.ones(6), **ZERO)
            with torch.no_grad():
                self.fc1.weight.mul_(2.5)
                self.fc2.weight.mul_(2.5)

        def forward(self, x):
            s, _ = self.rec(self.fc1(x))
            return self.out(self.fc2(s))[0]

    compiled = exported(tmp_path, Net(), torch.zeros(1, 10))
    with pytest.raises(LorspError):
        chain_network(compiled, spikes((10,)))
    report = fixed_run(compiled, spikes((10,)), timeout=60).block
    assert report["ran"] and report["path"] == "general"
    rows = {r["node"]: r for r in report["per_node"]}
    assert set(rows) == {"rec.lif", "out"} and all(r["agreement"] > 0.9 and r["spikes_per_sample"] > 0
                                                   for r in rows.values())


def test_what_neither_path_holds_is_named_with_both_reasons():
    g = nir.NIRGraph(nodes={"in": nir.Input(np.array([3])), "w": nir.Linear(np.ones((3, 3), np.float32)),
                            "d": nir.Delay(np.full(3, 1e-4)),
                            "lif": nir.LIF(tau=np.full(3, 2e-4), r=np.full(3, 2.0), v_leak=np.zeros(3),
                                           v_threshold=np.ones(3)), "out": nir.Output(np.array([3]))},
                     edges=[("in", "w"), ("w", "d"), ("d", "lif"), ("lif", "out")], type_check=False)
    report = fixed_run(compile_graph(flat_graph(g), 1e-4), spikes((3,)), timeout=60).block
    assert not report["ran"] and "chain path:" in report["reason"] and \
        "general path: node 'd' is a Delay" in report["reason"]
    with pytest.raises(LorspError, match="--mode fixed: chain path"):
        fixed_run(compile_graph(flat_graph(g), 1e-4), spikes((3,)), timeout=60, required=True)


def test_a_sinabs_shaped_cnn_runs_in_float_and_fixed():
    """Conv2d -> IF -> SumPool2d -> Conv2d -> IF -> Flatten -> Linear -> IF, as Sinabs exports CNNs (IF, r = 1)."""
    rng = np.random.default_rng(3)
    k1 = (rng.integers(-2, 6, size=(4, 1, 3, 3)) / 4).astype(np.float32)
    k2 = (rng.integers(-2, 6, size=(6, 4, 3, 3)) / 8).astype(np.float32)
    w = (rng.integers(-3, 6, size=(5, 6 * 4 * 4)) / 8).astype(np.float32)

    def spiking(*shape):
        return nir.IF(r=np.ones(shape, np.float32), v_threshold=np.ones(shape, np.float32),
                      v_reset=np.zeros(shape, np.float32))

    g = nir.NIRGraph(nodes={
        "in": nir.Input(np.array([1, 8, 8])), "c1": nir.Conv2d(None, k1, 1, 1, 1, 1, np.zeros(4, np.float32)),
        "if1": spiking(4, 8, 8), "pool": nir.SumPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])),
        "c2": nir.Conv2d(None, k2, 1, 1, 1, 1, np.zeros(6, np.float32)), "if2": spiking(6, 4, 4),
        "flat": nir.Flatten(np.array([6, 4, 4]), 0, -1), "fc": nir.Linear(w), "if3": spiking(5),
        "out": nir.Output(np.array([5]))},
        edges=[("in", "c1"), ("c1", "if1"), ("if1", "pool"), ("pool", "c2"), ("c2", "if2"), ("if2", "flat"),
               ("flat", "fc"), ("fc", "if3"), ("if3", "out")], type_check=False)
    compiled = compile_graph(flat_graph(g), 1e-4)
    x = spikes((1, 8, 8), rate=0.3)
    float_run = run_graph(compiled, x, record=["if1", "if2", "if3"])
    assert all(float_run.outputs[n].sum() > 0 for n in ("if1", "if2", "if3"))
    fixed = fixed_run(compiled, x, timeout=60)
    report = fixed.block
    assert report["ran"] and report["path"] == "general"
    assert np.array_equal(fixed.outputs["out"], float_run.outputs["if3"])
    # dyadic weights and integrate-and-fire (no decay): the integers round nothing, so fixed equals float
    assert report["overall"] == 1.0, report["per_node"]
