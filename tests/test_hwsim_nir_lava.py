"""``lorsp-hwsim MODEL.nir --backend lava`` on general graphs: Lava against the graph interpreter, per node type.

Every test builds a graph, runs the same input through lava-nc 0.10.0 (:mod:`hw_sim.graph.lava_check`:
Lava's ``floating_pt`` models, float64) and through the graph interpreter (PyTorch float32), and compares
every compartment node step by step. Hand-built graphs have dyadic parameters (beta 0.5, weights in
eighths), so both sums are exact and the spikes must be 100% equal; snnTorch exports (random weights)
differ only by float32 against float64 rounding, which can move a voltage across its threshold: the
bound asserted there is 99%, and every node must spike.
"""
from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import torch

from deploy.nir_graph import flat_graph
from hw_sim.cli import main
from hw_sim.graph.runner import compile_graph
from lorsp.plumbing.errors import LorspError

pytestmark = pytest.mark.lava

DT = 1e-4
TAU = 2e-4          # beta = 1 - dt / tau = 0.5 exactly
T, N = 12, 4
ZERO = {"reset_mechanism": "zero", "reset_delay": False}


def rng(seed=0):
    return np.random.default_rng(seed)


def weights(n_out, n_in, seed=0):
    return (rng(seed).integers(-4, 12, size=(n_out, n_in)) / 8).astype(np.float32)


def spikes(shape, seed=1, rate=0.5):
    return (rng(seed).random((T, N, *shape)) < rate).astype(np.float32)


def full(n, v):
    return np.full(n, v, dtype=np.float32)


def graph(nodes: dict, edges: list) -> nir.NIRGraph:
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def lif(n, **extra):
    args = {"tau": full(n, TAU), "r": full(n, 2.0), "v_leak": full(n, 0.0), "v_threshold": full(n, 1.0),
            "v_reset": full(n, 0.0)}
    return nir.LIF(**{**args, **extra})


def neuron(kind: str, n: int) -> nir.NIRNode:
    """One node of each kind, dyadic: beta 0.5, gain 2 (IF/I: r 0.5), leak 0.25 per step, alpha 0.5, g_syn 1."""
    if kind in ("I", "IF"):
        extra = {"v_threshold": full(n, 1.0), "v_reset": full(n, 0.0)} if kind == "IF" else {}
        return getattr(nir, kind)(r=full(n, 0.5), **extra)
    common = {"r": full(n, 4.0), "v_leak": full(n, 0.5)}
    if kind in ("CubaLI", "CubaLIF"):
        extra = {"v_threshold": full(n, 1.0), "v_reset": full(n, 0.0)} if kind == "CubaLIF" else {}
        return getattr(nir, kind)(tau_mem=full(n, TAU), tau_syn=full(n, TAU), w_in=full(n, 2.0), **common, **extra)
    extra = {"v_threshold": full(n, 1.0), "v_reset": full(n, 0.0)} if kind == "LIF" else {}
    return getattr(nir, kind)(tau=full(n, TAU), **common, **extra)


def compiled_of(g: nir.NIRGraph):
    return compile_graph(flat_graph(g), DT)


def lava_float(g: nir.NIRGraph, x: np.ndarray) -> dict:
    """Lava's float block for ``g`` on ``x``: per node rows, keyed by node."""
    from hw_sim.graph.lava_check import check_lava, float_run
    compiled = compiled_of(g)
    block = float_run(compiled, check_lava(compiled, x), x, timeout=300)
    return block


def assert_exact(block: dict, nodes: set[str]) -> None:
    rows = {r["node"]: r for r in block["per_node"]}
    assert set(rows) == nodes
    for name, row in rows.items():
        assert row["exact"], (name, row)
        if row.get("kind") != "voltage":
            assert row["spikes_per_sample"] > 0, f"{name} never spikes: the comparison would prove nothing"


# --------------------------------------------------------------------------- every neuron node type
@pytest.mark.parametrize("kind", ["LIF", "IF", "CubaLIF", "LI", "I", "CubaLI"])
def test_every_neuron_type_equals_the_interpreter(kind):
    """Affine (with a bias) -> the node: the bias is Lava's neuron bias, or, into a synaptic current, the weights
    from an always-on neuron."""
    g = graph({"in": nir.Input(np.array([3])), "w": nir.Affine(weights(4, 3), full(4, 0.125)), "n": neuron(kind, 4),
               "out": nir.Output(np.array([4]))}, [("in", "w"), ("w", "n"), ("n", "out")])
    block = lava_float(g, spikes((3,)))
    assert_exact(block, {"n"})
    if kind in ("LI", "I", "CubaLI"):
        assert block["per_node"][0]["kind"] == "voltage"
    assert block["lava"]["processes"]["LIFReset"] == (2 if kind.startswith("Cuba") else 1)


def test_threshold_scale_and_pools_equal_the_interpreter():
    """Input (1, 4, 4) -> SumPool2d 2 -> Flatten -> Scale -> Threshold; -> AvgPool2d 2 -> Flatten -> Linear -> LIF."""
    g = graph({"in": nir.Input(np.array([1, 4, 4])),
               "sum": nir.SumPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])),
               "f1": nir.Flatten({"input": np.array([1, 2, 2])}), "s": nir.Scale(np.array([0.5, 1, 0.75, 0.25])),
               "thr": nir.Threshold(full(4, 0.5)),
               "avg": nir.AvgPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])),
               "f2": nir.Flatten({"input": np.array([1, 2, 2])}), "w": nir.Linear(weights(3, 4) * 2),
               "lif": lif(3), "o1": nir.Output(np.array([4])), "o2": nir.Output(np.array([3]))},
              [("in", "sum"), ("sum", "f1"), ("f1", "s"), ("s", "thr"), ("thr", "o1"),
               ("in", "avg"), ("avg", "f2"), ("f2", "w"), ("w", "lif"), ("lif", "o2")])
    assert_exact(lava_float(g, spikes((1, 4, 4), rate=0.6)), {"thr", "lif"})


def test_conv1d_equals_the_interpreter():
    """Input (1, 8) -> Conv1d (2 channels, kernel 3, padding 1, a bias) -> LIF (2, 8): multiplied out into one
    block, the bias Lava's neuron bias."""
    kernel = (rng(7).integers(-4, 12, size=(2, 1, 3)) / 4).astype(np.float32)
    g = graph({"in": nir.Input(np.array([1, 8])), "c": nir.Conv1d(8, kernel, 1, 1, 1, 1, full(2, 0.125)),
               "lif": nir.LIF(tau=np.full((2, 8), TAU), r=np.full((2, 8), 2.0), v_leak=np.zeros((2, 8)),
                              v_threshold=np.ones((2, 8)), v_reset=np.zeros((2, 8))),
               "out": nir.Output(np.array([2, 8]))}, [("in", "c"), ("c", "lif"), ("lif", "out")])
    assert_exact(lava_float(g, spikes((1, 8))), {"lif"})


def test_broadcast_parameters_equal_the_interpreter():
    """A LIF and an IF whose parameters are one value for all their neurons (NumPy's broadcast)."""
    one = lambda v: np.array([v], np.float32)  # noqa: E731
    g = graph({"in": nir.Input(np.array([3])), "w": nir.Affine(weights(4, 3), full(4, 0.125)),
               "lif": nir.LIF(tau=one(TAU), r=one(2.0), v_leak=one(0.25), v_threshold=one(1.0), v_reset=one(0.0)),
               "w2": nir.Linear(weights(2, 4, 3)), "if": nir.IF(r=one(0.5), v_threshold=one(1.0), v_reset=one(0.0)),
               "out": nir.Output(np.array([2]))},
              [("in", "w"), ("w", "lif"), ("lif", "w2"), ("w2", "if"), ("if", "out")])
    assert_exact(lava_float(g, spikes((3,))), {"lif", "if"})


# --------------------------------------------------------------------------- structures
def test_branches_merges_and_a_skip_connection_line_up_in_lava():
    """in -> a; in -> b; a + b -> c (merge, with a bias: c integrates it in the steps before its first, and is
    reset there); in -> c (skip over one layer: a DelayDense waits one step); c -> Delay(2 steps) -> d: the
    interpreter's Delay and Lava's block delay agree."""
    g = graph({"in": nir.Input(np.array([3])), "wa": nir.Linear(weights(4, 3, 1)), "a": lif(4),
               "wb": nir.Affine(weights(4, 3, 2), full(4, 0.25)), "b": lif(4),
               "wac": nir.Affine(weights(5, 4, 3), full(5, 0.125)), "wbc": nir.Linear(weights(5, 4, 4)),
               "wskip": nir.Linear(weights(5, 3, 5)), "c": lif(5),
               "delay": nir.Delay(np.full(5, 2 * DT)), "wd": nir.Linear(weights(2, 5, 6) + 0.5), "d": lif(2),
               "out": nir.Output(np.array([2]))},
              [("in", "wa"), ("wa", "a"), ("in", "wb"), ("wb", "b"), ("a", "wac"), ("b", "wbc"), ("wac", "c"),
               ("wbc", "c"), ("in", "wskip"), ("wskip", "c"), ("c", "delay"), ("delay", "wd"), ("wd", "d"),
               ("d", "out")])
    block = lava_float(g, spikes((3,)))
    assert_exact(block, {"a", "b", "c", "d"})
    first = block["lava"]["first_step"]
    assert first["c"] == first["a"] + 1 == first["input"] + 2 and first["d"] == first["c"]
    assert block["lava"]["processes"]["DelayDense"] >= 2   # the skip, and the Delay's two steps
    assert block["lava"]["processes"]["Reset"] == 1         # the Delay's buffer, cleared between samples


def test_a_recurrent_loop_carries_the_previous_step_and_no_sample_leaks_into_the_next():
    """in -> w -> lif <-> w_rec (self-loop): Lava's one step on the recurrent Dense is the interpreter's
    previous-step edge; 4 samples back to back, each from rest (a Lava Reset clears the loop's buffer)."""
    w_rec = weights(4, 4, 9) + np.eye(4, dtype=np.float32)
    g = graph({"in": nir.Input(np.array([3])), "w": nir.Linear(weights(4, 3)), "lif": lif(4, r=full(4, 1.0)),
               "rec": nir.Linear(w_rec), "w2": nir.Linear(weights(2, 4, 3)), "lif2": lif(2),
               "out": nir.Output(np.array([2]))},
              [("in", "w"), ("w", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "w2"), ("w2", "lif2"),
               ("lif2", "out")])
    x = spikes((3,), rate=0.3)
    x[T // 2:] = 0              # late steps silent: only the loop keeps the neurons firing, up to the sample's end
    block = lava_float(g, x)
    assert_exact(block, {"lif", "lif2"})
    assert block["lava"]["processes"]["Reset"] == 1


def test_graded_input_reaches_lava_as_numbers():
    """Input values in quarters (not spikes): the blocks from the input take them as graded messages."""
    g = graph({"in": nir.Input(np.array([3])), "w": nir.Linear(weights(4, 3)), "lif": lif(4),
               "skip": nir.Linear(weights(2, 3, 4)), "w2": nir.Linear(weights(2, 4, 5)), "lif2": lif(2),
               "out": nir.Output(np.array([2]))},
              [("in", "w"), ("w", "lif"), ("lif", "w2"), ("w2", "lif2"), ("in", "skip"), ("skip", "lif2"),
               ("lif2", "out")])
    x = (rng(3).integers(0, 5, size=(T, N, 3)) / 4).astype(np.float32)
    block = lava_float(g, x)
    assert_exact(block, {"lif", "lif2"})


# --------------------------------------------------------------------------- snnTorch exports
def snntorch_graph(tmp_path, net: torch.nn.Module, sample: torch.Tensor) -> nir.NIRGraph:
    from snntorch.export_nir import export_to_nir
    path = tmp_path / "net.nir"
    nir.write(path, export_to_nir(net, sample, ignore_dims=[0]))
    return nir.read(path)


def assert_close(block: dict, bound: float = 0.99) -> None:
    for row in block["per_node"]:
        assert row["spikes_per_sample"] > 0, f"{row['node']} never spikes: the comparison would prove nothing"
        assert row["agreement"] >= bound, row


def bernoulli(shape, rate=0.3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand((T, N, *shape), generator=gen) < rate).float().numpy()


def test_snntorch_rleaky_graph_runs_in_lava(tmp_path):
    """Linear -> RLeaky (all to all) -> Linear -> RLeaky (one weight per neuron: a Scale on the loop)."""
    import snntorch as snn
    torch.manual_seed(0)

    class Recurrent(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = torch.nn.Linear(10, 24), torch.nn.Linear(24, 8)
            self.rec1 = snn.RLeaky(beta=torch.full((24,), 0.85), threshold=torch.ones(24), linear_features=24, **ZERO)
            self.rec2 = snn.RLeaky(beta=torch.full((8,), 0.8), threshold=torch.ones(8), all_to_all=False,
                                   V=torch.linspace(-0.5, 0.5, 8), **ZERO)
            with torch.no_grad():
                self.fc1.weight.mul_(2.5)
                self.fc2.weight.mul_(2.5)

        def forward(self, x):
            s1, _ = self.rec1(self.fc1(x))
            return self.rec2(self.fc2(s1))[0]

    g = snntorch_graph(tmp_path, Recurrent(), torch.zeros(1, 10))
    block = lava_float(g, bernoulli((10,)))
    assert {r["node"] for r in block["per_node"]} == {"rec1.lif", "rec2.lif"}
    assert_close(block)
    assert block["lava"]["processes"]["Reset"] == 2      # one per recurrent block


def test_snntorch_conv_graph_runs_in_lava(tmp_path):
    """Conv2d -> Leaky (4, 8, 8) -> AvgPool2d -> Flatten -> Linear -> Leaky: the conv and the pool + linear
    multiplied out into one block each (Sparse where at most a fifth of the weights are nonzero)."""
    import snntorch as snn
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1), snn.Leaky(beta=0.5 + 0.45 * torch.rand(4, 8, 8), threshold=torch.ones(
            4, 8, 8), init_hidden=True, **ZERO), torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(64, 6),
        snn.Leaky(beta=torch.full((6,), 0.8), threshold=torch.ones(6), init_hidden=True, output=True, **ZERO))
    with torch.no_grad():
        net[0].weight.mul_(2.0)
        net[4].weight.mul_(6.0)
    g = snntorch_graph(tmp_path, net, torch.zeros(1, 2, 8, 8))
    block = lava_float(g, bernoulli((2, 8, 8)))
    assert len(block["per_node"]) == 2
    assert_close(block)
    assert block["lava"]["processes"]["Sparse"] == 1 and block["lava"]["processes"]["LIFReset"] == 2


# --------------------------------------------------------------------------- the command
def test_command_runs_a_recurrent_read_out_graph_in_lava_and_refuses_what_lava_cannot_hold(tmp_path, capsys):
    """A recurrent LIF into an LI read-out, through ``lorsp-hwsim --backend lava --mode both``: the float block
    compares both nodes; Lava's fixed point runs it on the general path, equal to the fast backend's fixed mode
    (tests/test_hwsim_lava_fixed_graph.py). A v_reset Lava cannot hold
    is one line naming the node, exit 2, nothing written."""
    g = graph({"in": nir.Input(np.array([3])), "w": nir.Linear(weights(4, 3)), "lif": lif(4),
               "rec": nir.Linear(weights(4, 4, 5)), "w2": nir.Linear(weights(2, 4, 6)), "li": neuron("LI", 2),
               "out": nir.Output(np.array([2]))},
              [("in", "w"), ("w", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "w2"), ("w2", "li"), ("li", "out")])
    nir.write(tmp_path / "g.nir", g)
    assert main([str(tmp_path / "g.nir"), "--input", "random:0.4", "--steps", "12", "--samples", "3", "--mode", "both",
                 "--backend", "lava", "-o", str(tmp_path / "rep"), "--quiet"]) == 0
    lava = json.loads((tmp_path / "rep" / "report.json").read_text())["lava"]
    assert lava["float"]["ran"] and [r["node"] for r in lava["float"]["per_node"]] == ["lif", "li"]
    assert all(r["exact"] for r in lava["float"]["per_node"])
    assert lava["fixed"]["ran"] and lava["fixed"]["path"] == "general"
    assert [(r["node"], r["exact"]) for r in lava["fixed"]["per_node"]] == [("lif", True), ("li", True)]
    capsys.readouterr()
    bad = graph({"in": nir.Input(np.array([3])), "w": nir.Linear(weights(4, 3)), "odd": lif(4, v_reset=full(4, 0.25)),
                 "out": nir.Output(np.array([4]))}, [("in", "w"), ("w", "odd"), ("odd", "out")])
    nir.write(tmp_path / "bad.nir", bad)
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "bad.nir"), "--input", "random:0.4", "--backend", "lava", "-o", str(tmp_path / "rep2")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1 and "'odd'" in err and "v_reset" in err
    assert not (tmp_path / "rep2").exists()


@pytest.mark.parametrize("case, fragment", [
    ("threshold_loop", "from 'thr' to node 'lif' closes a cycle"),
    ("readout_feeds", "'li' (LI) is a membrane read-out"),
    ("delayed_bias", "a bias passes Delay node 'delay'"), ("uneven_delay", "Delay node 'delay'"),
])
def test_graphs_lava_cannot_express_are_refused_naming_the_node(case, fragment):
    from hw_sim.graph.lava_check import check_lava
    w = nir.Linear(weights(4, 3))
    nodes = {"in": nir.Input(np.array([3])), "w": w, "out": nir.Output(np.array([4]))}
    if case == "threshold_loop":   # lif -> thr (previous step) -> lif (same step): one step round, Lava needs two
        g = graph({**nodes, "lif": lif(4), "wr": nir.Linear(weights(4, 4, 2)), "thr": nir.Threshold(full(4, 0.5)),
                   "wt": nir.Linear(weights(4, 4, 3))},
                  [("in", "w"), ("w", "lif"), ("lif", "wr"), ("wr", "thr"), ("thr", "wt"), ("wt", "lif"),
                   ("lif", "out")])
    elif case == "readout_feeds":
        g = graph({**nodes, "li": neuron("LI", 4), "w2": nir.Linear(weights(4, 4)), "lif": lif(4)},
                  [("in", "w"), ("w", "li"), ("li", "w2"), ("w2", "lif"), ("lif", "out")])
    elif case == "delayed_bias":   # the interpreter's Delay holds the bias back for two steps; Lava's cannot
        g = graph({**nodes, "w": nir.Affine(weights(4, 3), full(4, 0.5)), "delay": nir.Delay(np.full(4, 2 * DT)),
                   "lif": lif(4)}, [("in", "w"), ("w", "delay"), ("delay", "lif"), ("lif", "out")])
    else:
        g = graph({**nodes, "delay": nir.Delay(np.array([DT, 2 * DT, DT])), "lif": lif(4)},
                  [("in", "delay"), ("delay", "w"), ("w", "lif"), ("lif", "out")])
    with pytest.raises(LorspError, match="--backend lava: ") as exc:
        check_lava(compiled_of(g), spikes((3,)))
    assert fragment in str(exc.value) and "\n" not in str(exc.value)
