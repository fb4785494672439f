"""Fixed point for general NIR graphs: the integer twin equals the Lava-verified chain path where both run.

The chain path (``deploy.fixed_point`` on the fast backend, spike-identical to Lava's ``fixed_pt``
models) takes chains; :mod:`hw_sim.graph.fixed_graph` takes branches, recurrence and large
convolutions by the same rules. On chains both must give the same spikes, bit for bit; on a
recurrent snnTorch graph only the general path runs. Its integer step (PyTorch, float64 tensors of
integers) equals Lava's bit-accurate LIF step in numpy int32 bit for bit; the nodes it adds (``Delay``,
``Threshold``, the read-outs, a bias before a ``CubaLIF``, a neuron fed without a weighted node,
dense nodes in a row) give the float run's spikes exactly where the weights are dyadic. An input gain
that differs between a node's neurons (``tau``, ``r``, ``tau_syn``, ``w_in``) runs with each neuron's
share of it in its threshold; the fixed run's chip fit counts what the general path places.
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
from hw_sim.graph.fixed import chain_network, fixed_run, graph_run
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
                            "lif": nir.LIF(tau=np.full(3, 2e-4), r=np.full(3, 2.0), v_leak=np.zeros(3),
                                           v_threshold=np.ones(3), v_reset=np.full(3, 0.5)),
                            "out": nir.Output(np.array([3]))},
                     edges=[("in", "w"), ("w", "lif"), ("lif", "out")], type_check=False)
    report = fixed_run(compile_graph(flat_graph(g), 1e-4), spikes((3,)), timeout=60).block
    assert not report["ran"] and "chain path:" in report["reason"] and \
        "general path: LIF node 'lif' has a nonzero v_reset" in report["reason"]
    with pytest.raises(LorspError, match="--mode fixed: chain path"):
        fixed_run(compile_graph(flat_graph(g), 1e-4), spikes((3,)), timeout=60, required=True)


def test_overlapping_pools_and_graded_input_are_refused_in_fixed_point():
    """A pool whose windows overlap is no integer SumPool2d block, and Loihi takes spikes: both one line."""
    nodes = {"in": nir.Input(np.array([1, 4, 4])), "pool": nir.SumPool2d(np.array([2, 2]), np.array([1, 1]),
                                                                         np.array([0, 0])),
             "if1": nir.IF(r=np.ones((1, 3, 3), np.float32), v_threshold=np.ones((1, 3, 3), np.float32),
                           v_reset=np.zeros((1, 3, 3), np.float32)), "out": nir.Output(np.array([1, 3, 3]))}
    g = nir.NIRGraph(nodes=nodes, edges=[("in", "pool"), ("pool", "if1"), ("if1", "out")], type_check=False)
    compiled = compile_graph(flat_graph(g), 1e-4)
    with pytest.raises(LorspError, match=r"^SumPool2d node 'pool': its windows overlap or are padded; [^\n]*$"):
        compile_fixed(compiled)
    graded = spikes((1, 4, 4)) * 0.5
    with pytest.raises(LorspError, match=r"^--mode fixed: .*general path: the input is not binary spikes"):
        fixed_run(compiled, graded, timeout=60, required=True)


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


# --------------------------------------------------------------------------- the integer compartments
def lava_int32_step(u, v, a, u_factor, v_factor, bias, vth):
    """Lava's ``PyLifResetModelBitAcc`` step in numpy int32/int64, in place on ``u, v`` (int32); the spikes. The fast
    backend's numpy step before it moved onto the graph runner, kept here as the oracle."""
    def decay(x, f):  # rz(x f / 2^12): the int64 product, sign(p) (|p| >> 12), to int32
        p = x.astype(np.int64) * f
        return (np.sign(p) * (np.abs(p) >> 12)).astype(np.int32)

    m = 2 ** 23
    with np.errstate(over="ignore"):
        current = decay(u, u_factor) + np.left_shift(a.astype(np.int32), 6)  # int32: wraps modulo 2^32
        u[:] = np.where(current > m, current - 2 * m, np.where(current <= -m, current + 2 * m, current))
        v[:] = np.clip(decay(v, v_factor) + u + bias, -(m - 1), m - 1)
    spikes = v > vth
    v[spikes] = 0
    return spikes


def test_the_torch_integer_step_equals_the_fast_backends_numpy_step_bit_for_bit():
    """FixedNeuron (float64 tensors holding integers) against Lava's equations in numpy int32/int64
    (:func:`lava_int32_step`), with currents and voltages driven past 24 bits so that the wrap and the clip are
    exercised, and inputs and biases past int32 so that Lava's int32 sums overflow (and wrap) too."""
    from deploy.fixed_point import DECAY_UNITY
    from hw_sim.graph.fixed_neurons import FixedNeuron
    rng = np.random.default_rng(7)
    size, n = 64, 5
    u_factor = rng.integers(0, DECAY_UNITY, size)
    u_factor[:8] = 0
    v_factor = rng.integers(1, DECAY_UNITY + 1, size)
    v_factor[8:16] = DECAY_UNITY
    for top_a, top_bias in ((2 ** 17, 2 ** 14), (2 ** 27, 2 ** 31 - 1)):
        bias = rng.integers(-top_bias, top_bias, size).astype(np.int32)
        vth = np.left_shift(rng.integers(1, 2 ** 17, size), 6)
        ours = FixedNeuron.build("CubaLIF", (size,), scale=1.0, u_factor=u_factor, v_factor=v_factor, bias=bias,
                                 vth=vth)
        u, v = np.zeros((n, size), np.int32), np.zeros((n, size), np.int32)
        state = ours.initial_state(n)
        wrapped = clipped = overflowed = 0
        for t in range(40):
            a = rng.integers(-top_a, top_a, (n, size)).astype(np.int32)
            overflowed += int((np.abs(a.astype(np.int64) * 64) >= 2 ** 31).sum())
            expected = lava_int32_step(u, v, a, u_factor, v_factor, bias, vth)
            got = ours.step([torch.from_numpy(a.astype(np.float64))], state)
            assert np.array_equal(got.numpy().astype(bool), expected), (top_a, t)
            assert np.array_equal(state["u"].numpy(), u) and np.array_equal(state["v"].numpy(), v), (top_a, t)
            wrapped += int((np.abs(u) > 2 ** 22).sum())
            clipped += int((np.abs(v) == 2 ** 23 - 1).sum())
        assert wrapped and clipped and 0 < (state["v"] == 0).float().mean() < 1
        assert bool(overflowed) == (top_a > 2 ** 25)  # the second round's inputs leave int32 once shifted


# --------------------------------------------------------------------------- nodes the general path adds
def integrate_and_fire(n, r=1.0):
    return nir.IF(r=np.full(n, r, np.float32), v_threshold=np.ones(n, np.float32), v_reset=np.zeros(n, np.float32))


def dyadic(rng, shape, denominator=8):
    return (rng.integers(-3, 7, size=shape) / denominator).astype(np.float32)


def general_run(nodes, edges, x):
    compiled = compile_graph(flat_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)), 1e-4)
    with pytest.raises(LorspError):
        chain_network(compiled, x)  # so the general path is the one tested
    fixed = fixed_run(compiled, x, timeout=60)
    assert fixed.block["ran"] and fixed.block["path"] == "general", fixed.block.get("reason")
    return compiled, fixed, {r["node"]: r for r in fixed.block["per_node"]}


def assert_exact_spikes(rows, names):
    for name in names:
        assert rows[name]["exact"] and rows[name]["agreement"] == 1.0 and rows[name]["spikes_per_sample"] > 0, \
            rows[name]


def test_delays_run_as_integer_buffers_of_spikes_and_of_block_sums():
    """Delay between a block and its neuron (a block's integer sums wait) and between a neuron and the next block
    (spikes wait); integrate-and-fire with dyadic weights rounds nothing, so fixed equals float exactly."""
    rng = np.random.default_rng(11)
    nodes = {"in": nir.Input(np.array([8])), "w1": nir.Linear(dyadic(rng, (10, 8))), "d1": nir.Delay(np.full(10, 2e-4)),
             "if1": integrate_and_fire(10), "d2": nir.Delay(np.full(10, 3e-4)), "w2": nir.Linear(dyadic(rng, (4, 10))),
             "if2": integrate_and_fire(4), "out": nir.Output(np.array([4]))}
    edges = [("in", "w1"), ("w1", "d1"), ("d1", "if1"), ("if1", "d2"), ("d2", "w2"), ("w2", "if2"), ("if2", "out")]
    x = spikes((8,))
    compiled, fixed, rows = general_run(nodes, edges, x)
    assert_exact_spikes(rows, ["if1", "if2"])
    assert not fixed.outputs["out"][:5].any() and fixed.outputs["out"].any()  # nothing arrives before 2 + 3 steps
    nodes["w1"] = nir.Affine(nodes["w1"].weight, np.full(10, 0.25, np.float32))
    with pytest.raises(LorspError, match="'w1' has a bias and a Delay behind it"):
        fixed_run(compile_graph(flat_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)), 1e-4), x,
                  timeout=60, required=True)


def test_threshold_is_a_compare_on_the_integer_potential():
    rng = np.random.default_rng(12)
    nodes = {"in": nir.Input(np.array([8])), "w1": nir.Affine(dyadic(rng, (10, 8)), dyadic(rng, (10,))),
             "th": nir.Threshold(np.full(10, 0.5, np.float32)), "w2": nir.Linear(dyadic(rng, (4, 10))),
             "if2": integrate_and_fire(4), "out": nir.Output(np.array([4]))}
    _, _, rows = general_run(nodes, [("in", "w1"), ("w1", "th"), ("th", "w2"), ("w2", "if2"), ("if2", "out")],
                             spikes((8,)))
    assert_exact_spikes(rows, ["th", "if2"])


def test_branches_a_merge_a_skip_connection_and_a_nested_graph_run_exactly_in_fixed_point():
    """in -> w1 -> [nested: IF] -> w3 -> if2 <- w2 <- in (a skip connection: two blocks merge into ``if2``), and
    the nested IF branches to w4 -> if3: integrate-and-fire with dyadic weights, so fixed equals float exactly."""
    rng = np.random.default_rng(14)
    sub = nir.NIRGraph(nodes={"i": nir.Input(np.array([10])), "if1": integrate_and_fire(10),
                              "o": nir.Output(np.array([10]))}, edges=[("i", "if1"), ("if1", "o")], type_check=False)
    nodes = {"in": nir.Input(np.array([8])), "w1": nir.Linear(dyadic(rng, (10, 8))), "sub": sub,
             "w2": nir.Linear(dyadic(rng, (4, 8))), "w3": nir.Linear(dyadic(rng, (4, 10))),
             "if2": integrate_and_fire(4),
             "w4": nir.Linear(dyadic(rng, (3, 10))), "if3": integrate_and_fire(3), "o2": nir.Output(np.array([4])),
             "o3": nir.Output(np.array([3]))}
    edges = [("in", "w1"), ("w1", "sub"), ("sub", "w3"), ("in", "w2"), ("w3", "if2"), ("w2", "if2"), ("sub", "w4"),
             ("w4", "if3"), ("if2", "o2"), ("if3", "o3")]
    x = spikes((8,))
    compiled, fixed, rows = general_run(nodes, edges, x)
    assert compiled["if2"].node.inputs == ("w3", "w2")
    assert_exact_spikes(rows, ["sub.if1", "if2", "if3"])
    reference = run_graph(compiled, x)
    assert all(np.array_equal(fixed.outputs[o], reference.outputs[o]) for o in ("o2", "o3"))


def test_conv1d_and_scale_run_exactly_in_fixed_point():
    """``Conv1d`` (2 channels, kernel 3, stride 1, padding 1) and ``Scale`` (per element, one 0) as 8-bit weighted
    nodes: integrate-and-fire with dyadic weights, so fixed equals float exactly."""
    rng = np.random.default_rng(16)
    scale = dyadic(rng, (24,), denominator=4)
    scale[3] = 0.0
    if1 = nir.IF(r=np.ones((2, 12), np.float32), v_threshold=np.ones((2, 12), np.float32),
                 v_reset=np.zeros((2, 12), np.float32))
    nodes = {"in": nir.Input(np.array([1, 12])),
             "c": nir.Conv1d(12, dyadic(rng, (2, 1, 3)) * 2, 1, 1, 1, 1, dyadic(rng, (2,))), "if1": if1,
             "flat": nir.Flatten(np.array([2, 12]), 0, -1), "s": nir.Scale(scale),
             "if2": integrate_and_fire(24, r=0.5), "out": nir.Output(np.array([24]))}
    edges = [("in", "c"), ("c", "if1"), ("if1", "flat"), ("flat", "s"), ("s", "if2"), ("if2", "out")]
    compiled, fixed, rows = general_run(nodes, edges, spikes((1, 12)))
    assert compiled["c"].out_shape == (2, 12)
    assert_exact_spikes(rows, ["if1", "if2"])


def test_broadcast_parameters_run_in_fixed_point():
    """An IF and a LIF whose parameters are one value for all their neurons (NumPy's broadcast; NIR wants one shape
    for all of a node's parameters): the chain path refuses the shapes, the general path runs them."""
    rng = np.random.default_rng(15)
    lif = nir.LIF(tau=np.array([2e-4]), r=np.array([2.0]), v_leak=np.array([0.0]), v_threshold=np.array([1.0]),
                  v_reset=np.array([0.0]))
    nodes = {"in": nir.Input(np.array([8])), "w1": nir.Linear(dyadic(rng, (10, 8))), "if1": integrate_and_fire(1),
             "w2": nir.Linear(dyadic(rng, (4, 10))), "lif": lif, "out": nir.Output(np.array([4]))}
    edges = [("in", "w1"), ("w1", "if1"), ("if1", "w2"), ("w2", "lif"), ("lif", "out")]
    compiled, fixed, rows = general_run(nodes, edges, spikes((8,)))
    assert compiled["if1"].out_shape == (10,)
    assert_exact_spikes(rows, ["if1", "lif"])   # dyadic weights: here the LIF's decay drops no bit either


@pytest.mark.parametrize("readout", ["I", "LI", "CubaLI"])
def test_readouts_give_the_integer_potential_dequantised(readout):
    """An ``I`` read-out (no decay) equals float exactly; ``LI``/``CubaLI`` (decay 0.5, rounded towards zero
    on the chip) stay within a quantum of the scale per step."""
    rng = np.random.default_rng(13)
    node = {"I": nir.I(r=np.ones(4, np.float32)),
            "LI": nir.LI(tau=np.full(4, 2e-4), r=np.ones(4), v_leak=np.zeros(4)),
            "CubaLI": nir.CubaLI(tau_syn=np.full(4, 2e-4), tau_mem=np.full(4, 2e-4), r=np.ones(4), v_leak=np.zeros(4),
                                 w_in=np.full(4, 2.0))}[readout]
    nodes = {"in": nir.Input(np.array([8])), "w1": nir.Affine(dyadic(rng, (10, 8)), dyadic(rng, (10,))),
             "if1": integrate_and_fire(10), "w2": nir.Affine(dyadic(rng, (4, 10)), dyadic(rng, (4,))), "ro": node,
             "out": nir.Output(np.array([4]))}
    edges = [("in", "w1"), ("w1", "if1"), ("if1", "w2"), ("w2", "ro"), ("ro", "out")]
    x = spikes((8,))
    compiled, fixed, rows = general_run(nodes, edges, x)
    assert_exact_spikes(rows, ["if1"])
    row = rows["ro"]
    assert row["readout"] and row["max_abs_voltage"] > 0 and fixed.block["overall"] == 1.0
    voltage = run_graph(compiled, x).outputs["out"]
    assert np.array_equal(fixed.outputs["out"], voltage) == row["exact"]
    if readout == "I":
        assert row["exact"] and row["max_abs_error"] == 0.0
    else:
        assert 0 < row["max_abs_error"] <= T / row["scale"]
    nodes["next"] = nir.Linear(np.ones((4, 4), np.float32))
    edges = [e for e in edges if e != ("ro", "out")] + [("ro", "next"), ("next", "out")]
    with pytest.raises(LorspError, match=f"{readout} node 'ro' feeds another node"):
        fixed_run(compile_graph(flat_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)), 1e-4), x,
                  timeout=60, required=True)


def dyadic_layers(net, denominator=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                m.weight.copy_(torch.randint(-3, 7, m.weight.shape, generator=gen) / denominator)
                if m.bias is not None:
                    m.bias.copy_(torch.randint(-2, 4, m.bias.shape, generator=gen) / denominator)
    return net


def compare_with_float(compiled, x):
    """The general path's rows, whether or not the chain path could take the graph."""
    return {r["node"]: r for r in graph_run(compiled, compile_fixed(compiled), x, 60).block["per_node"]}


def test_a_bias_before_a_cuba_lif_enters_its_current(tmp_path):
    """snnTorch ``Linear`` with bias -> ``Synaptic``: the bias is a weight from a bias neuron into the current."""
    net = dyadic_layers(torch.nn.Sequential(
        torch.nn.Linear(8, 6), snn.Synaptic(alpha=torch.full((6,), 0.5), beta=torch.full((6,), 0.5),
                                            threshold=torch.ones(6), init_hidden=True, output=True, **ZERO)))
    compiled = exported(tmp_path, net, torch.zeros(1, 8))
    assert np.any(compiled["0"].node.node.bias != 0)
    assert_exact_spikes(compare_with_float(compiled, spikes((8,))), ["1"])


def test_a_neuron_fed_without_a_weighted_node_gets_one_to_one_synapses(tmp_path):
    """snnTorch ``Linear -> Leaky -> Leaky`` (spikes straight into a neuron) and ``AvgPool2d -> Leaky``
    (pooled spikes straight into a neuron)."""
    half = dict(init_hidden=True, **ZERO)
    net = dyadic_layers(torch.nn.Sequential(
        torch.nn.Linear(8, 6), snn.Leaky(beta=torch.full((6,), 0.5), threshold=torch.ones(6), **half),
        snn.Leaky(beta=torch.full((6,), 0.5), threshold=torch.full((6,), 0.5), output=True, **half)))
    compiled = exported(tmp_path, net, torch.zeros(1, 8))
    assert compiled["2"].node.inputs == ("1",)
    assert_exact_spikes(compare_with_float(compiled, spikes((8,))), ["1", "2"])
    net = dyadic_layers(torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3, padding=1), snn.Leaky(beta=torch.full((2, 8, 8), 0.5), threshold=torch.ones(2, 8, 8),
                                                       **half),
        torch.nn.AvgPool2d(2), snn.Leaky(beta=torch.full((2, 4, 4), 0.5), threshold=torch.full((2, 4, 4), 0.3),
                                         output=True, **half)), denominator=4)
    compiled = exported(tmp_path, net, torch.zeros(1, 1, 8, 8))
    assert_exact_spikes(compare_with_float(compiled, spikes((1, 8, 8))), ["1", "3"])


def test_two_dense_nodes_in_a_row_are_one_block_and_a_convolution_before_a_linear_is_refused(tmp_path):
    net = dyadic_layers(torch.nn.Sequential(
        torch.nn.Linear(8, 10), torch.nn.Linear(10, 6),
        snn.Leaky(beta=torch.full((6,), 0.5), threshold=torch.ones(6), init_hidden=True, output=True, **ZERO)))
    compiled = exported(tmp_path, net, torch.zeros(1, 8))
    assert compiled["1"].node.inputs == ("0",)
    assert_exact_spikes(compare_with_float(compiled, spikes((8,))), ["2"])
    assert [c.name for c in compile_fixed(compiled).nodes if c.node.kind in ("Affine", "Linear")] == ["1"]
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(72, 4),
                              snn.Leaky(beta=torch.full((4,), 0.5), threshold=torch.ones(4), init_hidden=True,
                                        output=True, **ZERO))
    compiled = exported(tmp_path, net, torch.zeros(1, 1, 8, 8))
    with pytest.raises(LorspError, match=r"^Conv2d node '0' feeds Affine node '2' without a neuron between them; "
                                         r"[^\n]*$"):
        compile_fixed(compiled)  # (the chain path multiplies the convolution out and runs it)


# --------------------------------------------------------------------------- chip fit of what the general path places
def placed_graph():
    """``in -> Affine (bias) -> CubaLIF -> LIF (fed directly) -> Linear -> Linear -> IF``, hand-countable: the
    Affine has 9 zeros and one weight 8 bits round to 0, one zero bias; the two Linears are dense."""
    rng = np.random.default_rng(21)
    w1 = (rng.integers(1, 8, size=(6, 8)) / 8).astype(np.float32)
    w1.reshape(-1)[rng.permutation(48)[:9]] = 0.0
    w1[5, 7] = 1e-4                                  # nonzero in float32, 0 at any 8-bit scale here
    b1 = np.array([0.25, -0.125, 0.0, 0.5, 0.125, 0.375], np.float32)
    w2 = (rng.integers(1, 8, size=(4, 6)) / 8).astype(np.float32)
    w3 = (rng.integers(1, 8, size=(3, 4)) / 8).astype(np.float32)
    cuba = nir.CubaLIF(tau_syn=np.full(6, 2e-4), tau_mem=np.full(6, 2e-4), r=np.full(6, 2.0), v_leak=np.zeros(6),
                       v_threshold=np.ones(6), v_reset=np.zeros(6), w_in=np.full(6, 2.0))
    lif = nir.LIF(tau=np.full(6, 2e-4), r=np.full(6, 2.0), v_leak=np.zeros(6), v_threshold=np.full(6, 0.5),
                  v_reset=np.zeros(6))
    nodes = {"in": nir.Input(np.array([8])), "w1": nir.Affine(w1, b1), "cuba": cuba, "lif": lif,
             "w2": nir.Linear(w2), "w3": nir.Linear(w3), "if3": integrate_and_fire(3), "out": nir.Output(np.array([3]))}
    edges = [("in", "w1"), ("w1", "cuba"), ("cuba", "lif"), ("lif", "w2"), ("w2", "w3"), ("w3", "if3"),
             ("if3", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def test_the_fixed_chip_fit_counts_what_the_general_path_places(tmp_path):
    """Hand count: ``cuba`` 6 neurons + 1 bias neuron, 48 - 9 - 1 = 38 synapses from the input (the weight 8 bits
    round to 0 is not stored) and 5 from the bias neuron (one bias is 0); ``lif`` 6 one-to-one synapses; ``if3``
    the composed 3x6 block, 18 synapses (the float count takes the 6 x 4 x 3 = 72 paths through both Linears)."""
    from hw_sim.cli import main
    from hw_sim.graph.chip_fit import CHIPS, chip_fit
    from hw_sim.graph.fixed_fit import fixed_chip_fit
    compiled = compile_graph(flat_graph(placed_graph()), 1e-4)
    fit = fixed_chip_fit(compile_fixed(compiled), CHIPS.get("loihi"))
    rows = {r["node"]: r for r in fit["nodes"]}
    assert rows["cuba"]["neurons"] == 7 and rows["cuba"]["bias_neurons"] == 1
    assert rows["cuba"]["synapses_from"] == {"in": 38, "bias neuron": 5}
    assert rows["lif"]["neurons"] == 6 and rows["lif"]["synapses_from"] == {"cuba": 6}
    assert rows["if3"]["neurons"] == 3 and rows["if3"]["synapses_from"] == {"lif": 18}
    assert (fit["neurons"], fit["bias_neurons"], fit["synapses"]) == (16, 1, 38 + 5 + 6 + 18)
    assert fit["synaptic_memory_bytes"] == 67 and fit["cores_needed"] == 3 and fit["fits"]
    assert fit["counts"].startswith("the fixed-point general path's placement")
    floats = chip_fit(compiled, CHIPS.get("loihi"))
    assert (floats["neurons"], floats["synapses"]) == (15, 39 + 6 + 72) and floats["counts"].startswith("the float")
    path = tmp_path / "placed.nir"
    nir.write(path, placed_graph())
    assert main([str(path), "--input", "random:0.4", "--steps", "10", "--samples", "2", "--mode", "both",
                 "--chip", "loihi", "-o", str(tmp_path / "rep"), "--quiet"]) == 0
    import json
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    fixed = report["runs"]["fixed"]
    assert fixed["path"] == "general" and fixed["chip_fit"] == {"loihi": fit}
    assert report["chip_fit"]["loihi"]["synapses"] == 117
    assert "Chip fit: Loihi (fixed point, general path)" in (tmp_path / "rep" / "report.md").read_text()


# --------------------------------------------------------------------------- chip fit of what the chain path places
SIDE, WIDE = 34, 120   # a 34 x 34 map: 1,156 neurons (two Loihi cores); 120 neurons fed by 4 x 289 x 120 synapses


def chain_fit_graph():
    """``in (1, 34, 34) -> Conv2d 3x3 pad 1 -> LIF -> AvgPool2d 2 -> Flatten -> Linear (120 x 289) -> LIF``: a chain
    the chain path runs. The kernel's centre and one Linear weight are nonzero in float32 but 0 at any 8-bit scale
    here; the Linear has 10 zeros."""
    kernel = np.full((1, 1, 3, 3), 0.5, np.float32)
    kernel[0, 0, 1, 1] = 1e-6
    w = np.ones((WIDE, (SIDE // 2) ** 2), np.float32)
    w[0, :10] = 0.0
    w[1, 0] = 1e-6

    def lif(*shape):
        return nir.LIF(tau=np.full(shape, 2e-4), r=np.full(shape, 2.0), v_leak=np.zeros(shape),
                       v_threshold=np.ones(shape), v_reset=np.zeros(shape))

    pooled = np.array([1, SIDE // 2, SIDE // 2])
    nodes = {"in": nir.Input(np.array([1, SIDE, SIDE])),
             "conv": nir.Conv2d(np.array([SIDE, SIDE]), kernel, 1, 1, 1, 1, np.zeros(1, np.float32)),
             "lif1": lif(1, SIDE, SIDE), "pool": nir.AvgPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])),
             "flat": nir.Flatten(pooled, 0, -1), "fc": nir.Linear(w), "lif2": lif(WIDE),
             "out": nir.Output(np.array([WIDE]))}
    edges = [("in", "conv"), ("conv", "lif1"), ("lif1", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "lif2"),
             ("lif2", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def conv3x3_pairs(h, w, centre=True):
    """(input, output) pairs of a 3 x 3 convolution with padding 1 on an ``h x w`` map, counted tap by tap."""
    taps = [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1) if centre or (di, dj) != (0, 0)]
    return sum(0 <= i + di < h and 0 <= j + dj < w for i in range(h) for j in range(w) for di, dj in taps)


def test_the_chain_paths_chip_fit_counts_the_layers_it_quantises(tmp_path):
    """Hand count. ``lif1``: 1,156 neurons; the convolution's pairs less the centre tap's (8 bits round it to 0):
    10,000 - 1,156 = 8,844. ``lif2``: 120 neurons; pool, Flatten and Linear are one dense 120 x 1,156 block whose
    entries are the Linear's nonzero weights four times over (a 2 x 2 pool of stride 2 puts each pixel in one
    window): 4 (34,680 - 10 - 1) = 138,676, over Loihi's 128 KB (two cores by memory), under Loihi 2's 192 KB.
    The float graph counts 10,000 and 138,680: the chain places other blocks, so its fit is reported apart."""
    import json

    from hw_sim.backends.fast import compiled_chain
    from hw_sim.cli import main
    from hw_sim.graph.chip_fit import CHIPS, chip_fit
    from hw_sim.graph.fixed_fit import chain_chip_fit
    from deploy.fixed_point import quantise
    conv_pairs, centre = conv3x3_pairs(SIDE, SIDE), SIDE * SIDE
    assert conv_pairs == (3 * SIDE - 2) ** 2 == 10_000
    linear_nonzero = WIDE * (SIDE // 2) ** 2 - 10
    expected = {"lif1": (centre, {"in": conv_pairs - centre}), "lif2": (WIDE, {"lif1": 4 * (linear_nonzero - 1)})}
    cores = {"loihi": {"lif1": 2, "lif2": 2}, "loihi2": {"lif1": 1, "lif2": 1}}  # 1,156 > 1,024; 138,676 > 131,072
    compiled = compile_graph(flat_graph(chain_fit_graph()), 1e-4)
    network = chain_network(compiled, spikes((1, SIDE, SIDE)))
    fits = {name: chain_chip_fit(compiled, network, quantise(network), CHIPS.get(name)) for name in cores}
    for name, fit in fits.items():
        rows = {r["node"]: r for r in fit["nodes"]}
        assert {n: (r["neurons"], r["synapses_from"]) for n, r in rows.items()} == expected
        assert {n: r["synaptic_memory_bytes"] for n, r in rows.items()} == {n: sum(e[1].values())
                                                                           for n, e in expected.items()}
        assert {n: r["cores"] for n, r in rows.items()} == cores[name]
        assert (fit["neurons"], fit["synapses"], fit["synaptic_memory_bytes"], fit["cores_needed"]) == \
            (centre + WIDE, 8_844 + 138_676, 147_520, sum(cores[name].values()))
        assert fit["bias_neurons"] == 0 and fit["fits"] and fit["counts"].startswith("the fixed-point chain path")
    assert [r["limited_by"] for r in fits["loihi"]["nodes"]] == ["neurons", "memory"]
    # the counts are the nonzero weights of the very Dense blocks the fast backend's fixed run steps
    held = [c.op.apply(torch.eye(c.in_shape[0], dtype=torch.float64)) for c in compiled_chain(network, "fixed").nodes
            if c.node.kind == "Dense"]
    assert [int(torch.count_nonzero(w)) for w in held] == [8_844, 138_676]
    floats = chip_fit(compiled, CHIPS.get("loihi"))
    assert {r["node"]: r["synapses_from"] for r in floats["nodes"]} == {"lif1": {"in": 10_000},
                                                                         "lif2": {"lif1": 4 * linear_nonzero}}
    path = tmp_path / "chain.nir"
    nir.write(path, chain_fit_graph())
    assert main([str(path), "--input", "random:0.2", "--steps", "4", "--samples", "2", "--mode", "both",
                 "-o", str(tmp_path / "rep"), "--quiet"]) == 0
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    fixed = report["runs"]["fixed"]
    assert fixed["path"] == "chain" and fixed["chip_fit"] == fits and "chip_fit_note" not in fixed
    assert report["chip_fit"]["loihi"]["synapses"] == 148_680
    for doc in ("report.md", "report.html"):
        text = (tmp_path / "rep" / doc).read_text()
        assert "Chip fit: Loihi 2 (fixed point, chain path)" in text and "in (8,844)" in text \
            and "lif1 (138,676)" in text, doc


# --------------------------------------------------------------------------- per-neuron parameters in fixed point
def per_neuron_node(case, n, rng):
    """A compartment node of ``n`` neurons whose ``case`` parameter differs between neurons (so its input gain
    ``r dt / tau`` or ``w_in dt / tau_syn`` does too); a read-out for ``LI``."""
    spread, z, one = (lambda lo, hi: rng.uniform(lo, hi, n)), np.zeros(n), np.ones(n)
    return {"tau": lambda: nir.LIF(tau=spread(1.5e-4, 1e-3), r=one, v_leak=z, v_threshold=one, v_reset=z),
            "r": lambda: nir.LIF(tau=np.full(n, 5e-4), r=spread(1, 10), v_leak=z, v_threshold=one, v_reset=z),
            "tau_syn": lambda: nir.CubaLIF(tau_syn=spread(2e-4, 1e-3), tau_mem=np.full(n, 5e-4), r=np.full(n, 5.0),
                                           v_leak=z, v_threshold=one, v_reset=z, w_in=one),
            "w_in": lambda: nir.CubaLIF(tau_syn=np.full(n, 4e-4), tau_mem=np.full(n, 5e-4), r=np.full(n, 5.0),
                                        v_leak=z, v_threshold=one, v_reset=z, w_in=spread(1, 8)),
            "IF.r": lambda: nir.IF(r=spread(0.2, 1.0), v_threshold=spread(0.5, 1.5), v_reset=z),
            "LI": lambda: nir.LI(tau=spread(1.5e-4, 1e-3), r=spread(0.5, 2.0), v_leak=z)}[case]()


def per_neuron_graph(case, seed=5):
    """``in -> Linear -> node (per-neuron case) -> Linear -> IF -> out`` (an ``LI`` read-out ends the graph),
    random normal weights."""
    rng = np.random.default_rng(seed)
    nodes = {"in": nir.Input(np.array([16])), "w1": nir.Linear(rng.normal(0, 1, (32, 16)).astype(np.float32)),
             "x": per_neuron_node(case, 32, rng)}
    edges = [("in", "w1"), ("w1", "x")]
    if case == "LI":
        nodes["out"], edges = nir.Output(np.array([32])), edges + [("x", "out")]
    else:
        nodes |= {"w2": nir.Linear(rng.normal(0, 1, (8, 32)).astype(np.float32)), "if2": integrate_and_fire(8),
                  "out": nir.Output(np.array([8]))}
        edges += [("x", "w2"), ("w2", "if2"), ("if2", "out")]
    return compile_graph(flat_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)), 1e-4)


PER_NEURON = ["tau", "r", "tau_syn", "w_in", "IF.r", "LI"]


def node_gain(op):
    """A float neuron's input gain ``g g_syn`` per neuron (float64)."""
    gain = np.ones(int(np.prod(op.shape)))
    for part in (op.gain, op.syn_gain):
        if part is not None:
            gain = gain * part.double().numpy().reshape(-1)
    return gain


@pytest.mark.parametrize("case", PER_NEURON)
def test_a_parameter_that_differs_between_neurons_runs_in_fixed_point(case):
    """The node's input gain differs between its neurons: the largest folds into the weights and each neuron's
    share ``h`` divides its threshold (a read-out's voltage is multiplied by it). Against float on random
    normal weights: at least 99% equal spikes on the node (a read-out: every voltage within a few quanta)."""
    compiled = per_neuron_graph(case)
    gain = node_gain(compiled["x"].op)
    assert gain.max() > 1.5 * gain.min()  # the gain differs between neurons
    x = (np.random.default_rng(6).random((50, 8, 16)) < 0.3).astype(np.float32)
    rows = compare_with_float(compiled, x)
    if case == "LI":
        assert rows["x"]["readout"] and rows["x"]["max_abs_voltage"] > 1
        assert rows["x"]["max_abs_error"] <= 50 / rows["x"]["scale"], rows["x"]
    else:
        assert rows["x"]["agreement"] >= 0.99 and rows["x"]["spikes_per_sample"] > 50, rows["x"]


@pytest.mark.parametrize("case", PER_NEURON)
def test_per_neuron_integers_step_as_lavas_bit_accurate_lif_in_numpy_int32(case):
    """The node's integer dendrite input (the fixed ``Linear``'s output) through :func:`lava_int32_step` with the
    node's per-neuron ``du``, ``dv``, ``vth``: the same spikes (a read-out: the same voltage) bit for bit; and
    ``vth = round(s theta / h) << 6`` with ``h`` each neuron's share of the largest gain."""
    from deploy.fixed_point import DECAY_UNITY
    compiled = per_neuron_graph(case)
    fixed = compile_fixed(compiled)
    op = fixed["x"].op
    x = (np.random.default_rng(6).random((30, 4, 16)) < 0.3).astype(np.float32)
    got = run_graph(fixed, x, record=["w1", "x"]).outputs
    size = op.size
    u_factor = np.zeros(size) if op.u_factor is None else op.u_factor.numpy() * DECAY_UNITY
    v_factor = np.full(size, DECAY_UNITY) if op.v_factor is None else op.v_factor.numpy() * DECAY_UNITY
    vth = op.vth.numpy().astype(np.int64)
    u, v = np.zeros((4, size), np.int32), np.zeros((4, size), np.int32)
    for t in range(30):
        a = got["w1"][t].astype(np.int64)
        assert np.array_equal(a, got["w1"][t])  # integers
        expected = lava_int32_step(u, v, a, u_factor.astype(np.int64), v_factor.astype(np.int64), 0, vth)
        if case == "LI":
            share = op.readout_share.numpy()
            assert np.array_equal(got["x"][t], (v / (64 * op.scale) * share).astype(np.float32)), t
        else:
            assert np.array_equal(got["x"][t].astype(bool), expected), t
    gain = node_gain(compiled["x"].op)
    share = gain / gain.max()
    assert share.min() < 0.7 and np.allclose(share.max(), 1.0)
    if case != "LI":
        theta = compiled["x"].op.threshold.double().numpy().reshape(-1)
        assert np.array_equal(vth, np.left_shift(np.round(op.scale * theta / share).astype(np.int64), 6))
        assert got["x"].sum() > 0


def test_dyadic_gain_shares_give_the_float_spikes_exactly():
    """``IF`` with ``r`` of 1, 1/2, 1/4 per neuron and dyadic weights: ``theta / h`` is a whole number at the chosen
    scale, so nothing rounds and fixed equals float spike for spike (without dividing the threshold by ``h``,
    neurons of ``r = 1/4`` would fire as if ``r = 1``)."""
    rng = np.random.default_rng(14)
    nodes = {"in": nir.Input(np.array([8])), "w1": nir.Linear(dyadic(rng, (12, 8))),
             "if1": integrate_and_fire(12), "w2": nir.Linear(dyadic(rng, (4, 12))), "if2": integrate_and_fire(4),
             "out": nir.Output(np.array([4]))}
    nodes["if1"] = nir.IF(r=np.tile(np.array([1.0, 0.5, 0.25], np.float32), 4), v_threshold=np.ones(12, np.float32),
                          v_reset=np.zeros(12, np.float32))
    compiled, fixed, rows = general_run(nodes, [("in", "w1"), ("w1", "if1"), ("if1", "w2"), ("w2", "if2"),
                                                ("if2", "out")], spikes((8,)))
    assert_exact_spikes(rows, ["if1", "if2"])


def test_a_gain_that_is_zero_or_changes_sign_between_neurons_is_refused():
    rng = np.random.default_rng(15)
    for r in ([1.0, -1.0, 0.5], [1.0, 0.0, 0.5]):
        nodes = {"in": nir.Input(np.array([4])), "w": nir.Linear(dyadic(rng, (3, 4))),
                 "if1": nir.IF(r=np.array(r, np.float32), v_threshold=np.ones(3, np.float32),
                               v_reset=np.zeros(3, np.float32)), "out": nir.Output(np.array([3]))}
        compiled = compile_graph(flat_graph(nir.NIRGraph(nodes=nodes, edges=[("in", "w"), ("w", "if1"),
                                                                            ("if1", "out")], type_check=False)), 1e-4)
        with pytest.raises(LorspError, match=r"^IF node 'if1': its input gain is 0 or changes sign between neurons"):
            compile_fixed(compiled)
