"""``lorsp-hwsim MODEL.nir --backend lava --mode fixed`` beyond chains: Lava's bit-accurate processes on the general path.

The fast backend's fixed mode runs a graph that is not a chain as its integer twin
(:func:`hw_sim.graph.fixed_graph.compile_fixed`); :func:`hw_sim.graph.lava_fixed_plan.lava_fixed_net` hands the
same integers to lava-nc 0.10.0's ``fixed_pt`` models (``LIFReset``, ``Sparse``/``Dense`` with 8-bit weights and
binary messages). Every test runs the same graph on the same input through both and asserts equal spikes on every
step, neuron and sample (and equal read-out voltages): LoRSP's pixel gates (``Conv2d -> LIF`` with a per-neuron
``v_leak``, written by export/nir_pixel.py) and a graph with a branch, a merge, a recurrent loop, a one-to-one
synapse, a ``Delay``, a bias into a ``CubaLIF`` current and an ``LI`` read-out, on random (not dyadic) weights, so
the integers round.
"""
from __future__ import annotations

import dataclasses
import json

import nir
import numpy as np
import pytest

from deploy.nir_graph import flat_graph
from export.nir_pixel import PixelGateParameters, pixel_gates_graph
from hw_sim.cli import main
from hw_sim.graph.fixed import chain_network
from hw_sim.graph.runner import compile_graph, run_graph
from lorsp.plumbing.errors import LorspError

pytestmark = pytest.mark.lava

DT = 1e-4
TIMEOUT = 300


def gates_graph(side=10, seed=0) -> nir.NIRGraph:
    """Pixel gates as export/nir_pixel.py writes them: weights and drive on LoRSP's grid 2^-5, beta 1/2, T = 8."""
    rng = np.random.default_rng(seed)
    weight = (rng.integers(-16, 17, size=(1, 3, 3, 3)) / 32).astype(np.float32)
    drive = (rng.integers(-10, 24, size=(1, side, side)) / 32).astype(np.float32)
    return pixel_gates_graph(PixelGateParameters(weight=weight, drive=drive, beta=0.5, threshold=1.0, padding=(1, 1),
                                                 time_steps=8))


def spikes(shape, steps=8, samples=6, rate=0.4, seed=1) -> np.ndarray:
    return (np.random.default_rng(seed).random((steps, samples, *shape)) < rate).astype(np.float32)


def compiled_of(g: nir.NIRGraph, tmp_path=None):
    """The graph compiled as ``lorsp-hwsim`` does, read back from a file where ``tmp_path`` is given."""
    if tmp_path is not None:
        nir.write(tmp_path / "g.nir", g)
        g = nir.read(tmp_path / "g.nir")
    return compile_graph(flat_graph(g), DT)


def lava_and_fast(compiled, x):
    """Lava's bit-accurate outputs and the fast backend's fixed-mode outputs of every recorded node, and the plan."""
    from hw_sim.backends.lava_graph import run_lava_net
    from hw_sim.graph.lava_check import check_lava, check_lava_fixed
    check_lava(compiled, x)
    plan = check_lava_fixed(compiled, x)
    assert plan.network is None and plan.net.mode == "fixed"  # the general path, not the chain one
    lava = run_lava_net(plan.net, x, timeout=TIMEOUT)
    names = [n.name for n in plan.net.neurons if n.recorded]
    fast = run_graph(plan.fixed, x, record=names, timeout=TIMEOUT)
    return plan, lava, {n: fast.outputs[n].reshape(lava.outputs[n].shape) for n in names}


def test_pixel_gates_with_per_neuron_v_leak_spike_as_the_fast_fixed_mode_bit_for_bit(tmp_path):
    g = gates_graph()
    compiled = compiled_of(g, tmp_path)
    x = spikes((3, 10, 10))
    with pytest.raises(LorspError, match="v_leak"):
        chain_network(compiled, x)  # the chain path refuses it: this is the general path
    plan, lava, fast = lava_and_fast(compiled, x)
    gates = next(n for n in plan.net.neurons if n.name == "gates")
    assert gates.bias.min() < 0 < gates.bias.max() and len(np.unique(gates.bias)) > 10  # the drive, per neuron
    assert np.array_equal(lava.outputs["gates"], fast["gates"].astype(np.uint8))
    share = fast["gates"].mean()
    assert 0.1 < share < 0.9
    # the fixed run is the float one here (every value on the grid), and Lava's too
    float_gates = run_graph(compiled, x, record=["gates"]).outputs["gates"].reshape(fast["gates"].shape)
    assert np.array_equal(float_gates, fast["gates"])
    from hw_sim.backends.lava_graph import run_lava_net
    no_drive = dataclasses.replace(plan.net, neurons=tuple(dataclasses.replace(n, bias=np.zeros_like(n.bias))
                                                           for n in plan.net.neurons))
    assert not np.array_equal(run_lava_net(no_drive, x, timeout=TIMEOUT).outputs["gates"], lava.outputs["gates"])


def branchy_graph(seed=3) -> nir.NIRGraph:
    """A branch (``lif1`` feeds three nodes), merges (``lif2`` sums three blocks and a recurrent one), a recurrent
    loop, a one-to-one synapse (``lif1 -> lif3`` with no weighted node), a ``Delay`` of spikes, a bias into a
    ``CubaLIF`` current and an ``LI`` read-out; random normal weights (the integers round)."""
    rng = np.random.default_rng(seed)
    w = lambda o, i, s=0.6: rng.normal(0.0, s, size=(o, i)).astype(np.float32)  # noqa: E731
    full = lambda n, v: np.full(n, v, dtype=np.float32)  # noqa: E731

    def lif(n, beta=0.8, theta=1.0):
        tau = DT / (1.0 - beta)
        return nir.LIF(tau=full(n, tau), r=full(n, tau / DT), v_leak=full(n, 0.0), v_threshold=full(n, theta),
                       v_reset=full(n, 0.0))

    nodes = {
        "in": nir.Input(np.array([12])),
        "w1": nir.Linear(w(16, 12, 0.8)), "lif1": lif(16),
        "w2": nir.Affine(w(10, 12, 0.8), rng.normal(0.0, 0.1, 10).astype(np.float32)),
        "cuba": nir.CubaLIF(tau_syn=full(10, 2 * DT), tau_mem=full(10, 4 * DT), r=full(10, 4.0), v_leak=full(10, 0.0),
                            w_in=full(10, 2.0), v_threshold=full(10, 1.0), v_reset=full(10, 0.0)),
        "w3": nir.Linear(w(8, 16)), "w4": nir.Linear(w(8, 10)), "rec": nir.Linear(w(8, 8, 0.4)),
        "lif2": lif(8, beta=0.7),
        "lif3": lif(16, beta=0.5, theta=0.9),
        "delay": nir.Delay(full(16, 2 * DT)), "w5": nir.Linear(w(8, 16)), "lif4": lif(8, beta=0.6),
        "w6": nir.Linear(w(4, 8)), "li": nir.LI(tau=full(4, 2 * DT), r=full(4, 2.0), v_leak=full(4, 0.0)),
        "out": nir.Output(np.array([8])), "volts": nir.Output(np.array([4])),
    }
    edges = [("in", "w1"), ("w1", "lif1"), ("in", "w2"), ("w2", "cuba"),
             ("lif1", "w3"), ("w3", "lif2"), ("cuba", "w4"), ("w4", "lif2"), ("lif2", "rec"), ("rec", "lif2"),
             ("lif1", "lif3"),
             ("lif3", "delay"), ("delay", "w5"), ("w5", "lif4"), ("lif2", "w6"), ("w6", "li"),
             ("lif4", "out"), ("li", "volts")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def test_branches_merges_recurrence_delay_bias_and_read_out_spike_as_the_fast_fixed_mode(tmp_path):
    compiled = compiled_of(branchy_graph(), tmp_path)
    x = spikes((12,), steps=16, samples=5)
    plan, lava, fast = lava_and_fast(compiled, x)
    kinds = {b.source: b for b in plan.net.blocks}
    assert "(always-on)" in kinds and any(b.clear for b in plan.net.blocks) and any(b.delay for b in plan.net.blocks)
    for name in ("lif1", "cuba", "lif2", "lif3", "lif4"):
        assert np.array_equal(lava.outputs[name], fast[name].astype(np.uint8)), name
        assert lava.outputs[name].any() and not lava.outputs[name].all(), name
    from hw_sim.graph.lava_fixed_plan import dequantised
    volts = dequantised(plan.fixed["li"].op, lava.outputs["li"])
    assert np.array_equal(volts, fast["li"]) and np.abs(volts).max() > 0
    # the fixed run rounds (random weights): not the float run, which the integer twin approximates
    floats = run_graph(compiled, x, record=["lif2"]).outputs["lif2"].reshape(fast["lif2"].shape)
    assert 0.8 < float((floats == fast["lif2"]).mean())


def test_pools_conv1d_scale_if_and_the_i_and_cubali_read_outs_spike_as_the_fast_fixed_mode(tmp_path):
    """The node types the graph above leaves out, on dyadic weights: ``SumPool2d`` of input spikes straight into an
    ``IF`` (one-to-one synapses), ``AvgPool2d -> Flatten -> Linear`` into a ``CubaLI`` read-out, ``Flatten -> Scale``
    into an ``I`` read-out; and ``Conv1d`` (padding, a bias) into an ``IF``, then ``Flatten -> Scale`` into an
    ``IF``. Lava's spikes and dequantised voltages equal the fast fixed mode's."""
    from hw_sim.graph.lava_fixed_plan import dequantised
    rng = np.random.default_rng(5)
    ones = lambda *shape: np.ones(shape, np.float32)  # noqa: E731
    pooled = nir.IF(r=ones(1, 4, 4), v_threshold=ones(1, 4, 4) * 1.5, v_reset=ones(1, 4, 4) * 0)
    pools = nir.NIRGraph(nodes={
        "in": nir.Input(np.array([1, 8, 8])),
        "sum": nir.SumPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])),
        "if1": pooled, "avg": nir.AvgPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])),
        "f1": nir.Flatten(np.array([1, 2, 2]), 0, -1),
        "w": nir.Linear((rng.integers(-2, 7, (3, 4)) / 4).astype(np.float32)),
        "cubali": nir.CubaLI(tau_syn=np.full(3, 2 * DT), tau_mem=np.full(3, 2 * DT), r=np.full(3, 2.0),
                             v_leak=np.zeros(3), w_in=np.full(3, 2.0)),
        "f2": nir.Flatten(np.array([1, 4, 4]), 0, -1), "s": nir.Scale((rng.integers(-2, 5, 16) / 4).astype(np.float32)),
        "i": nir.I(r=ones(16)), "o1": nir.Output(np.array([3])), "o2": nir.Output(np.array([16]))},
        edges=[("in", "sum"), ("sum", "if1"), ("if1", "avg"), ("avg", "f1"), ("f1", "w"), ("w", "cubali"),
               ("cubali", "o1"), ("if1", "f2"), ("f2", "s"), ("s", "i"), ("i", "o2")], type_check=False)
    plan, lava, fast = lava_and_fast(compiled_of(pools, tmp_path), spikes((1, 8, 8), steps=12, samples=4))
    assert np.array_equal(lava.outputs["if1"], fast["if1"].astype(np.uint8)) and lava.outputs["if1"].any()
    for name in ("cubali", "i"):
        volts = dequantised(plan.fixed[name].op, lava.outputs[name])
        assert np.array_equal(volts, fast[name]) and np.abs(volts).max() > 0, name
    conv = nir.NIRGraph(nodes={
        "in": nir.Input(np.array([1, 12])),
        "c": nir.Conv1d(12, (rng.integers(-2, 7, (2, 1, 3)) / 4).astype(np.float32), 1, 1, 1, 1,
                        np.full(2, 0.25, np.float32)),
        "if1": nir.IF(r=ones(2, 12), v_threshold=ones(2, 12), v_reset=ones(2, 12) * 0),
        "f": nir.Flatten(np.array([2, 12]), 0, -1), "s": nir.Scale((rng.integers(1, 6, 24) / 4).astype(np.float32)),
        "if2": nir.IF(r=ones(24), v_threshold=ones(24), v_reset=ones(24) * 0), "out": nir.Output(np.array([24]))},
        edges=[("in", "c"), ("c", "if1"), ("if1", "f"), ("f", "s"), ("s", "if2"), ("if2", "out")], type_check=False)
    plan, lava, fast = lava_and_fast(compiled_of(conv, tmp_path), spikes((1, 12), steps=12, samples=4))
    for name in ("if1", "if2"):
        assert np.array_equal(lava.outputs[name], fast[name].astype(np.uint8)), name
        assert lava.outputs[name].any() and not lava.outputs[name].all(), name


def test_broadcast_parameters_spike_as_the_fast_fixed_mode():
    """An IF and a LIF whose parameters are one value for all their neurons, behind a branch (so not a chain)."""
    rng = np.random.default_rng(6)
    one = lambda v: np.array([v], np.float32)  # noqa: E731
    g = nir.NIRGraph(nodes={
        "in": nir.Input(np.array([8])), "w1": nir.Linear((rng.integers(-2, 7, (10, 8)) / 4).astype(np.float32)),
        "if1": nir.IF(r=one(1.0), v_threshold=one(1.0), v_reset=one(0.0)),
        "w2": nir.Linear((rng.integers(-2, 7, (4, 10)) / 4).astype(np.float32)),
        "lif": nir.LIF(tau=one(2 * DT), r=one(2.0), v_leak=one(0.0), v_threshold=one(1.0), v_reset=one(0.0)),
        "o1": nir.Output(np.array([4])), "o2": nir.Output(np.array([10]))},
        edges=[("in", "w1"), ("w1", "if1"), ("if1", "w2"), ("w2", "lif"), ("lif", "o1"), ("if1", "o2")],
        type_check=False)
    plan, lava, fast = lava_and_fast(compiled_of(g), spikes((8,), steps=12, samples=4))
    for name in ("if1", "lif"):
        assert np.array_equal(lava.outputs[name], fast[name].astype(np.uint8)), name
        assert lava.outputs[name].any() and not lava.outputs[name].all(), name


def test_a_skip_connection_lines_up_in_lava_fixed_point():
    """in -> w1 -> if1 -> w2 -> lif2 <- wskip <- in: the skip's block waits one step in Lava (a DelaySparse or
    DelayDense), and the spikes equal the fast fixed mode's."""
    rng = np.random.default_rng(7)
    w = lambda o, i: (rng.integers(-2, 7, (o, i)) / 4).astype(np.float32)  # noqa: E731
    ones = lambda n: np.ones(n, np.float32)  # noqa: E731
    g = nir.NIRGraph(nodes={
        "in": nir.Input(np.array([8])), "w1": nir.Linear(w(10, 8)),
        "if1": nir.IF(r=ones(10), v_threshold=ones(10), v_reset=ones(10) * 0), "w2": nir.Linear(w(4, 10)),
        "wskip": nir.Linear(w(4, 8)), "lif2": nir.LIF(tau=np.full(4, 2 * DT), r=np.full(4, 2.0), v_leak=np.zeros(4),
                                                     v_threshold=np.ones(4), v_reset=np.zeros(4)),
        "out": nir.Output(np.array([4]))},
        edges=[("in", "w1"), ("w1", "if1"), ("if1", "w2"), ("w2", "lif2"), ("in", "wskip"), ("wskip", "lif2"),
               ("lif2", "out")], type_check=False)
    plan, lava, fast = lava_and_fast(compiled_of(g, tmp_path=None), spikes((8,), steps=12, samples=4))
    assert any(b.delay for b in plan.net.blocks)
    for name in ("if1", "lif2"):
        assert np.array_equal(lava.outputs[name], fast[name].astype(np.uint8)), name
        assert lava.outputs[name].any() and not lava.outputs[name].all(), name


def test_a_recurrent_loop_keeps_no_spike_of_one_sample_in_the_next():
    """Every sample alone gives Lava the spikes it gives in a batch: the recurrent block's buffer is cleared."""
    compiled = compiled_of(branchy_graph())
    x = spikes((12,), steps=16, samples=3, seed=4)
    _, batch, _ = lava_and_fast(compiled, x)
    _, alone, _ = lava_and_fast(compiled, x[:, 2:3])
    assert np.array_equal(batch.outputs["lif2"][:, 2:3], alone.outputs["lif2"])


def test_lava_weights_take_an_exponent_and_refuse_what_8_bits_cannot_hold():
    from scipy import sparse

    from hw_sim.graph.lava_fixed_plan import lava_weights
    held, e = lava_weights(sparse.csr_matrix(np.array([[255.0, 3.0], [0.0, 1.0]])), "b")
    assert e == 0 and held.toarray().tolist() == [[255, 3], [0, 1]]
    held, e = lava_weights(sparse.csr_matrix(np.array([[508.0, -4.0]])), "b")   # mixed: even mantissas
    assert e == 1 and held.toarray().tolist() == [[254, -2]]
    with pytest.raises(LorspError, match="'b' sums weights up to 506"):
        lava_weights(sparse.csr_matrix(np.array([[506.0, -4.0]])), "'b'")
    with pytest.raises(LorspError, match="not integers"):
        lava_weights(sparse.csr_matrix(np.array([[0.5]])), "b")


def test_the_command_runs_pixel_gates_in_lava_fixed_point_and_refuses_a_threshold_in_one_line(tmp_path, capsys):
    nir.write(tmp_path / "gates.nir", gates_graph(side=8, seed=2))
    np.savez(tmp_path / "x.npz", spikes=spikes((3, 8, 8), samples=4, seed=5))
    assert main([str(tmp_path / "gates.nir"), "--input", str(tmp_path / "x.npz"), "--mode", "fixed",
                 "--backend", "lava", "-o", str(tmp_path / "rep"), "--quiet"]) == 0
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    fixed = report["lava"]["fixed"]
    assert fixed["ran"] and fixed["path"] == "general" and "fixed_pt" in fixed["lava"]["run_config"]
    assert [(r["node"], r["exact"]) for r in fixed["per_node"]] == [("gates", True)]
    assert report["runs"]["fixed"]["path"] == "general" and fixed["per_node"][0]["spikes_per_sample"] == \
        report["runs"]["fixed"]["per_node"][0]["spikes_per_sample"]
    assert "lava fixed: agreement" in capsys.readouterr().out
    rng = np.random.default_rng(0)
    bad = nir.NIRGraph(nodes={"in": nir.Input(np.array([6])), "w": nir.Linear(rng.normal(size=(4, 6)).astype(np.float32)),
                              "thr": nir.Threshold(np.full(4, 0.5, np.float32)), "out": nir.Output(np.array([4]))},
                       edges=[("in", "w"), ("w", "thr"), ("thr", "out")], type_check=False)
    nir.write(tmp_path / "bad.nir", bad)
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "bad.nir"), "--input", "random:0.4", "--steps", "8", "--mode", "fixed",
              "--backend", "lava", "-o", str(tmp_path / "rep2")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "Threshold node 'thr' keeps no state" in err and "--backend lava --mode fixed" in err
    assert not (tmp_path / "rep2").exists()


def test_a_snntorch_recurrent_export_with_per_neuron_parameters_runs_as_one_process_per_node(tmp_path):
    """snnTorch ``Linear -> RLeaky`` (per-neuron beta and threshold) ``-> Linear`` (bias) ``-> Synaptic`` (per-neuron
    alpha, beta): neither recurrence nor a bias into a current is a chain, so both backends take the general path;
    Lava holds each node's per-neuron integers in one ``LIFReset`` (plus the always-on one for the bias)."""
    import snntorch as snn
    import torch
    from snntorch.export_nir import export_to_nir
    torch.manual_seed(1)
    zero = {"reset_mechanism": "zero", "reset_delay": False}

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = torch.nn.Linear(10, 24), torch.nn.Linear(24, 6)
            self.rec = snn.RLeaky(beta=0.6 + 0.35 * torch.rand(24), threshold=0.5 + torch.rand(24), linear_features=24,
                                  **zero)
            self.syn = snn.Synaptic(alpha=0.3 + 0.6 * torch.rand(6), beta=0.5 + 0.4 * torch.rand(6),
                                    threshold=torch.ones(6), **zero)
            with torch.no_grad():
                self.fc1.weight.mul_(2.5)
                self.fc2.weight.mul_(3.0)

        def forward(self, x):
            s, _ = self.rec(self.fc1(x))
            return self.syn(self.fc2(s))[0]

    nir.write(tmp_path / "net.nir", export_to_nir(Net(), torch.zeros(1, 10), ignore_dims=[0]))
    compiled = compile_graph(flat_graph(nir.read(tmp_path / "net.nir")), DT)
    x = spikes((10,), steps=30, samples=6, rate=0.3, seed=7)
    plan, lava, fast = lava_and_fast(compiled, x)
    names = [n.name for n in plan.net.neurons if n.recorded]
    assert len(names) == 2 and len(plan.net.neurons) == 3 and len(np.unique(plan.net.neurons[0].dv)) > 10
    for name in names:
        assert np.array_equal(lava.outputs[name], fast[name].astype(np.uint8)), name
        assert lava.outputs[name].any(), name


def parallel_paths(factor: float) -> nir.NIRGraph:
    """The branchy graph with a second weighted node from the input into ``lif1``: ``factor`` times ``w1``."""
    g = branchy_graph()
    nodes = {**g.nodes, "w1b": nir.Linear((np.asarray(g.nodes["w1"].weight) * factor).astype(np.float32))}
    return nir.NIRGraph(nodes=nodes, edges=[*g.edges, ("in", "w1b"), ("w1b", "lif1")], type_check=False)


def test_two_paths_summing_past_8_bits_run_with_a_weight_exponent_or_are_refused_naming_the_block():
    """Twice ``w1`` into ``lif1``: one Lava block of even sums up to 504, held as mantissas with ``weight_exp = 1``,
    and Lava's spikes still equal; ``1.75 w1`` sums odd multiples of 2 past 254 and is refused in one line."""
    from hw_sim.graph.lava_check import check_lava_fixed
    compiled = compile_graph(flat_graph(parallel_paths(1.0)), DT)
    x = spikes((12,), steps=16, samples=4, seed=9)
    plan, lava, fast = lava_and_fast(compiled, x)
    block = next(b for b in plan.net.blocks if (b.source, b.target) == ("in", "lif1"))
    assert block.weight_exp == 1 and np.abs(block.weight.data).max() > 127
    for name in ("lif1", "lif2", "lif4"):
        assert np.array_equal(lava.outputs[name], fast[name].astype(np.uint8)), name
    with pytest.raises(LorspError) as exc:
        check_lava_fixed(compile_graph(flat_graph(parallel_paths(0.75)), DT), x)
    message = str(exc.value)
    assert "\n" not in message and "the block from 'in' to 'lif1' sums weights up to" in message
