"""lorsp-hwsim on general NIR graphs: every node type against its documented update, structures, refusals, CLI.

Graphs are built with NIR's own classes and, for the command, written with ``nir.write``. The
references below are plain numpy loops of the updates docs/hwsim-nir.md states; parameters are
dyadic (beta 0.5, weights in eighths) so float32 and float64 agree exactly and spikes compare
element for element.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import nir
import numpy as np
import pytest

from deploy.nir_graph import flat_graph
from hw_sim.cli import main
from hw_sim.graph.chip_fit import CHIPS, chip_fit
from hw_sim.graph.counts import connections
from hw_sim.graph.fixed_graph import compile_fixed
from hw_sim.graph.runner import compile_graph, run_graph
from lorsp.plumbing.errors import LorspError
from tests.conftest import assert_one_line_error, run_cli

DT = 1e-4
TAU = 2e-4          # beta = 1 - dt / tau = 0.5 exactly
T, N = 12, 5


def rng(seed=0):
    return np.random.default_rng(seed)


def weights(n_out, n_in, seed=0):
    return (rng(seed).integers(-6, 12, size=(n_out, n_in)) / 8).astype(np.float32)


def spikes(shape, seed=1, rate=0.5):
    return (rng(seed).random((T, N, *shape)) < rate).astype(np.float32)


def graph(nodes: dict, edges: list) -> nir.NIRGraph:
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def run(g: nir.NIRGraph, x: np.ndarray, record=()):
    return run_graph(compile_graph(flat_graph(g), DT), x, record=record)


def full(n, v):
    return np.full(n, v, dtype=np.float32)


# --------------------------------------------------------------------------- neurons
def neuron(kind: str, n: int) -> nir.NIRNode:
    """One node of each kind: gain 2, leak 0.25 per step, v_reset 0.25, alpha 0.5, g_syn 2."""
    if kind in ("I", "IF"):
        extra = {"v_threshold": full(n, 1.0), "v_reset": full(n, 0.25)} if kind == "IF" else {}
        return getattr(nir, kind)(r=full(n, 0.5), **extra)
    common = {"r": full(n, 4.0), "v_leak": full(n, 0.5)}
    spiking = {"v_threshold": full(n, 1.0), "v_reset": full(n, 0.25)} if kind.endswith("F") else {}
    if kind.startswith("Cuba"):
        return getattr(nir, kind)(tau_syn=full(n, TAU), tau_mem=full(n, TAU), w_in=full(n, 4.0), **common, **spiking)
    return getattr(nir, kind)(tau=full(n, TAU), **common, **spiking)


def reference(kind: str, current: np.ndarray) -> np.ndarray:
    """The documented update of ``kind`` for input current ``(T, N, n)``, float64."""
    v, i, out = np.zeros(current.shape[1:]), np.zeros(current.shape[1:]), []
    for x in current:
        if kind in ("I", "IF"):
            v = v + 0.5 * x
        elif kind.startswith("Cuba"):
            i = 0.5 * i + 2.0 * x
            v = 0.5 * v + 0.25 + 2.0 * i
        else:
            v = 0.5 * v + 0.25 + 2.0 * x
        if kind.endswith("F"):
            s = v > 1.0
            v = np.where(s, 0.25, v)
            out.append(s.astype(np.float32))
        else:
            out.append(v.copy())
    return np.stack(out)


@pytest.mark.parametrize("kind", ["I", "LI", "IF", "LIF", "CubaLI", "CubaLIF"])
def test_every_neuron_type_follows_its_documented_update(kind):
    w = weights(4, 3)
    g = graph({"in": nir.Input(np.array([3])), "w": nir.Linear(w), "n": neuron(kind, 4), "out": nir.Output(np.array([4]))},
              [("in", "w"), ("w", "n"), ("n", "out")])
    x = spikes((3,))
    got = run(g, x).outputs["out"]
    want = reference(kind, np.einsum("tni,oi->tno", x.astype(np.float64), w))
    if kind.endswith("F"):
        assert want.sum() > 0 and np.array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["I", "IF"])
def test_the_euler_if_input_integrates_r_dt_x(kind):
    """``if_input="euler"`` (SpikingJelly's export): ``v += r dt x``; here ``r = 0.5 / dt``, so the default's update."""
    w = weights(4, 3)
    node = neuron(kind, 4)
    node.r = node.r / DT
    g = graph({"in": nir.Input(np.array([3])), "w": nir.Linear(w), "n": node, "out": nir.Output(np.array([4]))},
              [("in", "w"), ("w", "n"), ("n", "out")])
    x = spikes((3,))
    want = reference(kind, np.einsum("tni,oi->tno", x.astype(np.float64), w))
    got = run_graph(compile_graph(flat_graph(g), DT, if_input="euler"), x).outputs["out"]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert not np.allclose(run(g, x).outputs["out"], want)  # the default reads v += r x: 10,000 times the gain
    with pytest.raises(LorspError, match="unknown IF input reading 'exp'"):
        compile_graph(flat_graph(g), DT, if_input="exp")


def test_broadcast_parameters_and_a_shape_that_does_not_broadcast():
    lif = nir.LIF(tau=np.array([TAU]), r=np.array([2.0]), v_leak=np.array([0.0]), v_threshold=np.array([1.0]))
    g = graph({"in": nir.Input(np.array([3])), "w": nir.Linear(weights(4, 3)), "n": lif, "out": nir.Output(np.array([4]))},
              [("in", "w"), ("w", "n"), ("n", "out")])
    assert run(g, spikes((3,))).outputs["out"].shape == (T, N, 4)
    g.nodes["n"] = neuron("LIF", 5)
    with pytest.raises(LorspError, match="does not broadcast"):
        compile_graph(flat_graph(g), DT)


# --------------------------------------------------------------------------- stateless nodes
def test_scale_threshold_delay_and_flatten():
    g = graph({"in": nir.Input(np.array([2, 3])), "f": nir.Flatten(np.array([2, 3]), 0, -1),
               "s": nir.Scale(np.array([1, -2, 0.5, 0, 3, 1], dtype=np.float32)),
               "d": nir.Delay(np.array([0, 1, 2, 3, 0, 2], dtype=np.float64) * DT),
               "th": nir.Threshold(full(6, 0.75)), "out": nir.Output(np.array([6]))},
              [("in", "f"), ("f", "s"), ("s", "d"), ("d", "th"), ("th", "out")])
    x = spikes((2, 3))
    scaled = x.reshape(T, N, 6) * np.array([1, -2, 0.5, 0, 3, 1])
    delayed = np.zeros_like(scaled)
    for j, lag in enumerate([0, 1, 2, 3, 0, 2]):
        delayed[lag:, :, j] = scaled[:T - lag, :, j]
    result = run(g, x)
    assert np.array_equal(result.outputs["out"], (delayed > 0.75).astype(np.float32))
    assert result.stats["s"].pairs.tolist() == (x.reshape(T, N, 6)[:, :, [0, 1, 2, 4, 5]].sum((0, 2))).tolist()


def test_a_delay_longer_than_the_run_gives_zeros_without_a_buffer_of_its_length():
    g = graph({"in": nir.Input(np.array([2])), "d": nir.Delay(np.array([1e9 * DT, 3 * DT])),
               "out": nir.Output(np.array([2]))}, [("in", "d"), ("d", "out")])
    x = spikes((2,))
    y = run(g, x).outputs["out"]
    assert not y[:, :, 0].any() and np.array_equal(y[3:, :, 1], x[:-3, :, 1]) and not y[:3, :, 1].any()


def test_delay_not_a_whole_number_of_steps_is_refused():
    g = graph({"in": nir.Input(np.array([2])), "d": nir.Delay(np.array([1.5 * DT, DT])), "out": nir.Output(np.array([2]))},
              [("in", "d"), ("d", "out")])
    with pytest.raises(LorspError, match="whole"):
        compile_graph(flat_graph(g), DT)


def test_sum_and_average_pooling_and_conv1d_count_their_synapses():
    k = np.array([[[1.0, 0.0, -0.5]]], dtype=np.float32)  # 1 -> 1 channel, one zero tap
    g = graph({"in": nir.Input(np.array([1, 4, 4])), "sp": nir.SumPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])),
               "ap": nir.AvgPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])),
               "o1": nir.Output(np.array([1, 2, 2])), "o2": nir.Output(np.array([1, 2, 2]))},
              [("in", "sp"), ("in", "ap"), ("sp", "o1"), ("ap", "o2")])
    x = spikes((1, 4, 4))
    result = run(g, x)
    sums = x.reshape(T, N, 1, 2, 2, 2, 2).sum((4, 6))
    assert np.array_equal(result.outputs["o1"], sums)
    assert np.array_equal(result.outputs["o2"], sums / 4)
    assert result.stats["sp"].pairs.tolist() == x.sum((0, 2, 3, 4)).tolist()   # each input lies in one window
    c1 = graph({"in": nir.Input(np.array([1, 6])), "c": nir.Conv1d(6, k, 1, 0, 1, 1, np.zeros(1, np.float32)),
                "out": nir.Output(np.array([1, 4]))}, [("in", "c"), ("c", "out")])
    compiled = compile_graph(flat_graph(c1), DT)
    assert compiled["c"].out_shape == (1, 4) and connections(compiled)["c"] == 8   # 4 outputs x 2 nonzero taps
    y = run(c1, spikes((1, 6))).outputs["out"]
    xs = spikes((1, 6))[:, :, 0]
    assert np.array_equal(y[:, :, 0], xs[:, :, 0:4] - 0.5 * xs[:, :, 2:6])


def test_overlapping_and_padded_pools_follow_their_windows():
    """SumPool2d 3x3 stride 1 and AvgPool2d 2x2 stride 1 padding 1 (the padding counted in the mean, PyTorch's
    default), against window sums written out by hand; each input's pairs are the windows it lies in."""
    g = graph({"in": nir.Input(np.array([1, 4, 4])),
               "sp": nir.SumPool2d(np.array([3, 3]), np.array([1, 1]), np.array([0, 0])),
               "ap": nir.AvgPool2d(np.array([2, 2]), np.array([1, 1]), np.array([1, 1])),
               "o1": nir.Output(np.array([1, 2, 2])), "o2": nir.Output(np.array([1, 5, 5]))},
              [("in", "sp"), ("in", "ap"), ("sp", "o1"), ("ap", "o2")])
    x = spikes((1, 4, 4))
    result = run(g, x)
    img = x[:, :, 0]
    sums = np.stack([np.stack([img[:, :, i:i + 3, j:j + 3].sum((2, 3)) for j in range(2)], -1) for i in range(2)], -2)
    padded = np.pad(img, ((0, 0), (0, 0), (1, 1), (1, 1)))
    means = np.stack([np.stack([padded[:, :, i:i + 2, j:j + 2].sum((2, 3)) / 4 for j in range(5)], -1)
                      for i in range(5)], -2)
    assert np.array_equal(result.outputs["o1"][:, :, 0], sums) and np.array_equal(result.outputs["o2"][:, :, 0], means)
    windows = np.array([[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])   # 3x3 windows at stride 1 on 4x4
    assert result.stats["sp"].pairs.tolist() == (img * windows).sum((0, 2, 3)).tolist()
    assert result.stats["ap"].pairs.tolist() == (4 * img).sum((0, 2, 3)).tolist()  # every input in 4 windows


# --------------------------------------------------------------------------- structure
def lif_graph_node(n):
    return nir.NIRGraph(nodes={"i": nir.Input(np.array([n])), "lif": neuron("LIF", n), "o": nir.Output(np.array([n]))},
                        edges=[("i", "lif"), ("lif", "o")], type_check=False)


def test_branches_merges_skip_connections_and_nested_graphs():
    """in -> w1 -> [nested: LIF] -> w3 -> LIF2 <- w2 <- in (skip); LIF2 sums both, this step's values."""
    w1, w2, w3 = weights(5, 3, 1), weights(4, 3, 2), weights(4, 5, 3)
    g = graph({"in": nir.Input(np.array([3])), "w1": nir.Linear(w1), "sub": lif_graph_node(5), "w2": nir.Linear(w2),
               "w3": nir.Linear(w3), "lif2": neuron("LIF", 4), "out": nir.Output(np.array([4]))},
              [("in", "w1"), ("w1", "sub"), ("sub", "w3"), ("in", "w2"), ("w3", "lif2"), ("w2", "lif2"),
               ("lif2", "out")])
    flat = flat_graph(g)
    assert "sub.lif" in [n.name for n in flat.nodes] and flat.node("lif2").inputs == ("w3", "w2")
    x = spikes((3,))
    hidden = reference("LIF", np.einsum("tni,oi->tno", x, w1))
    want = reference("LIF", np.einsum("tni,oi->tno", hidden, w3) + np.einsum("tni,oi->tno", x, w2))
    got = run(g, x, record=["sub.lif"])
    assert np.array_equal(got.outputs["sub.lif"], hidden) and want.sum() > 0
    assert np.array_equal(got.outputs["out"], want)


def test_a_recurrent_edge_carries_the_previous_step():
    w, r = weights(4, 3, 4), weights(4, 4, 5)
    g = graph({"in": nir.Input(np.array([3])), "w": nir.Linear(w), "lif": neuron("LIF", 4), "rec": nir.Linear(r),
               "out": nir.Output(np.array([4]))},
              [("in", "w"), ("w", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out")])
    x = spikes((3,))
    v, prev, want = np.zeros((N, 4)), np.zeros((N, 4)), []
    for t in range(T):
        v = 0.5 * v + 0.25 + 2.0 * (x[t] @ w.T) + 2.0 * (prev @ r.T)
        prev = (v > 1.0).astype(np.float64)
        v = np.where(prev > 0, 0.25, v)
        want.append(prev)
    assert np.array_equal(run(g, x).outputs["out"], np.stack(want))


def test_node_by_node_equals_step_by_step_in_outputs_and_counts_with_branches_loops_and_delays():
    """run_graph's default schedule (each node outside a cycle on a block of steps at once, a recurrent loop
    stepped on its precomputed input, a Delay inside and outside the loop) gives every node's output and every
    count of the whole graph stepped at once (by_node=False), in blocks of 1, 3 and all steps. Dyadic weights:
    float32 products of several rows at once may round differently from a few (the library picks its kernel
    by the number of rows, as in the exporting framework, whose batch size does the same), so exact outputs
    are promised where sums are exact; counts are sums of integers, equal always."""
    seeds = iter(range(10, 20))
    w = lambda o, i: weights(o, i, next(seeds))  # noqa: E731
    g = graph({"in": nir.Input(np.array([6])), "w1": nir.Affine(w(5, 6), full(5, -0.125)),
               "lif1": neuron("CubaLIF", 5), "w2": nir.Linear(w(4, 6)), "d0": nir.Delay(np.array([2 * DT] * 4)),
               "w3": nir.Linear(w(4, 5)), "lif2": neuron("LIF", 4), "rec": nir.Linear(w(4, 4)),
               "d1": nir.Delay(np.array([1, 0, 2, 1], dtype=np.float64) * DT), "w4": nir.Linear(w(3, 4)),
               "lif3": neuron("LIF", 3), "out": nir.Output(np.array([3]))},
              [("in", "w1"), ("w1", "lif1"), ("lif1", "w3"), ("in", "w2"), ("w2", "d0"), ("d0", "lif2"),
               ("w3", "lif2"), ("lif2", "rec"), ("rec", "d1"), ("d1", "lif2"), ("lif2", "w4"), ("w4", "lif3"),
               ("lif3", "out")])
    compiled = compile_graph(flat_graph(g), DT)
    x = spikes((6,), rate=0.4)
    x[:, 0, 0] = 0.5  # one graded sample input: counted as nonzero, not as its value
    names = [c.name for c in compiled.nodes]
    step = run_graph(compiled, x, record=names, by_node=False, chunk=2)
    assert 0 < step.outputs["out"].sum() < step.outputs["out"].size and step.outputs["lif2"].sum() > 0
    for block in (None, 1, 3, x.shape[0]):
        node = run_graph(compiled, x, record=names, chunk=3, block=block)
        for n in names:
            assert np.array_equal(step.outputs[n], node.outputs[n]), (block, n)
            for field in ("spikes", "pairs", "active_updates"):
                assert np.array_equal(getattr(step.stats[n], field), getattr(node.stats[n], field)), (block, n, field)
            assert step.stats[n].binary_input == node.stats[n].binary_input
    assert step.stats["w1"].pairs.sum() > 0 and step.stats["rec"].pairs.sum() > 0


def test_a_cycle_without_a_neuron_is_refused_in_one_line():
    g = graph({"in": nir.Input(np.array([3])), "a": nir.Linear(weights(3, 3)), "b": nir.Linear(weights(3, 3)),
               "lif": neuron("LIF", 3), "out": nir.Output(np.array([3]))},
              [("in", "a"), ("a", "b"), ("b", "a"), ("b", "lif"), ("lif", "out")])
    with pytest.raises(LorspError, match=r"cycle through a, b has no neuron node") as exc:
        flat_graph(g)
    assert "\n" not in str(exc.value)


@dataclass(eq=False)
class Mystery(nir.NIRNode):
    gain: np.ndarray

    def __post_init__(self):
        self.input_type = {"input": np.array(self.gain.shape)}
        self.output_type = {"output": np.array(self.gain.shape)}


def test_unknown_node_types_and_bad_shapes_are_refused_by_name():
    g = graph({"in": nir.Input(np.array([3])), "odd": Mystery(np.ones(3)), "out": nir.Output(np.array([3]))},
              [("in", "odd"), ("odd", "out")])
    with pytest.raises(LorspError, match="'odd' is a Mystery, which hw_sim cannot run"):
        flat_graph(g)
    bad = graph({"in": nir.Input(np.array([3])), "w": nir.Linear(weights(4, 5)), "out": nir.Output(np.array([4]))},
                [("in", "w"), ("w", "out")])
    with pytest.raises(LorspError, match="node 'w' \\(Linear\\) does not fit its input of shape \\(3,\\)"):
        compile_graph(flat_graph(bad), DT)
    kernel = np.ones((3, 2, 3, 3), np.float32)
    for stride, message in ((0, "non-positive stride"), (1.5, "must be whole numbers")):
        conv = graph({"in": nir.Input(np.array([2, 6, 6])), "c": nir.Conv2d(None, kernel, stride, 0, 1, 1, full(3, 0)),
                      "out": nir.Output(np.array([3, 4, 4]))}, [("in", "c"), ("c", "out")])
        with pytest.raises(LorspError, match=f"node 'c' \\(Conv2d\\) does not fit .*{message}"):
            compile_graph(flat_graph(conv), DT)


def test_non_finite_parameters_and_an_oversized_input_are_refused_by_name():
    w = weights(4, 3)
    w[1, 2] = np.nan
    g = graph({"in": nir.Input(np.array([3])), "sub": graph({"i": nir.Input(np.array([3])), "w": nir.Linear(w),
                                                              "o": nir.Output(np.array([4]))}, [("i", "w"), ("w", "o")]),
               "out": nir.Output(np.array([4]))}, [("in", "sub"), ("sub", "out")])
    with pytest.raises(LorspError, match="Linear node 'sub.w' field 'weight' holds NaN or infinite values"):
        flat_graph(g)
    huge = graph({"in": nir.Input(np.array([1 << 13, 1 << 12])), "out": nir.Output(np.array([1 << 13, 1 << 12]))},
                 [("in", "out")])
    with pytest.raises(LorspError, match="is not a list of positive integers with at most"):
        flat_graph(huge)


# --------------------------------------------------------------------------- chip fit
def test_chip_fit_counts_cores_by_the_documented_rule():
    n = 140_000   # > 128 x 1,024 neurons (Loihi), < 128 x 8,192 (Loihi 2)
    g = graph({"in": nir.Input(np.array([n])), "s": nir.Scale(np.ones(n, np.float32)),
               "lif": nir.LIF(tau=np.array([TAU]), r=np.array([2.0]), v_leak=np.array([0.0]), v_threshold=np.array([1.0])),
               "out": nir.Output(np.array([n]))}, [("in", "s"), ("s", "lif"), ("lif", "out")])
    compiled = compile_graph(flat_graph(g), DT)
    loihi, loihi2 = (chip_fit(compiled, CHIPS.get(c)) for c in ("loihi", "loihi2"))
    assert loihi["nodes"][0]["cores"] == 137 and not loihi["fits"] and loihi["does_not_fit"]
    assert loihi2["nodes"][0]["cores"] == 18 and loihi2["fits"]
    assert loihi["nodes"][0]["synapses"] == n and loihi["nodes"][0]["synaptic_memory_bytes"] == n


def test_chip_fit_multiplies_out_synapse_nodes_with_no_neuron_between_them():
    """SumPool 2x2 (stride 2) -> Flatten -> Linear -> LIF is one block on a chip: every nonzero weight of the
    Linear reaches the 4 inputs of its window (4 x nnz(W) synapses), not 16 + nnz(W)."""
    w = weights(3, 4, 8)
    w[0, 1] = 0.0
    g = graph({"in": nir.Input(np.array([1, 4, 4])),
               "p": nir.SumPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])),
               "f": nir.Flatten(np.array([1, 2, 2]), 0, -1), "w": nir.Linear(w), "lif": neuron("LIF", 3),
               "out": nir.Output(np.array([3]))}, [("in", "p"), ("p", "f"), ("f", "w"), ("w", "lif"), ("lif", "out")])
    fit = chip_fit(compile_graph(flat_graph(g), DT), CHIPS.get("loihi"))
    assert fit["nodes"][0]["synapses_from"] == {"in": 4 * int(np.count_nonzero(w))}
    assert fit["off_chip_synapse_nodes"] == []


# --------------------------------------------------------------------------- the command
def write(tmp_path, g, name="model.nir"):
    path = tmp_path / name
    nir.write(path, g)
    return path


def readout_graph():
    w = weights(4, 3)
    return graph({"in": nir.Input(np.array([3])), "w": nir.Affine(w, full(4, 0.125)), "lif": neuron("LIF", 4),
                  "w2": nir.Linear(weights(2, 4, 7)), "li": neuron("LI", 2), "spk": nir.Output(np.array([4])),
                  "mem": nir.Output(np.array([2]))},
                 [("in", "w"), ("w", "lif"), ("lif", "spk"), ("lif", "w2"), ("w2", "li"), ("li", "mem")])


def test_command_runs_a_graph_from_an_npz_and_writes_report_and_outputs(tmp_path, capsys):
    model = write(tmp_path, readout_graph())
    x = spikes((3,))
    np.savez(tmp_path / "in.npz", spikes=x)
    assert main([str(model), "--input", str(tmp_path / "in.npz"), "-o", str(tmp_path / "rep"), "--quiet"]) == 0
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["input"]["steps"] == T and report["input"]["samples"] == N and report["input"]["binary"]
    assert report["outputs"]["spk"]["kind"] == "spikes" and report["outputs"]["mem"]["kind"] == "voltage"
    assert report["dt_source"].startswith("default")
    assert {e["table"] for e in report["energy"]} >= {"loihi-davies2018", "loihi-sanafe"}
    assert set(report["chip_fit"]) == {"loihi", "loihi2"} and report["chip_fit"]["loihi"]["fits"]
    arrays = np.load(tmp_path / "rep" / "outputs.npz")
    want = run(readout_graph(), x).outputs
    assert np.array_equal(arrays["spk"], want["spk"]) and np.array_equal(arrays["spk.counts"], want["spk"].sum(0))
    assert np.array_equal(arrays["mem"], want["mem"]) and arrays["spikes_per_sample.lif"].shape == (N,)
    assert np.array_equal(arrays["synops_per_sample.w"], (x @ (weights(4, 3) != 0).T).sum((0, 2)))
    assert arrays["active_updates_per_sample.li"].shape == (N,)
    rows = {r["name"]: r for r in report["nodes"]}
    assert rows["lif"]["spikes_per_sample"]["mean"] == pytest.approx(want["spk"].sum() / N)
    assert rows["w"]["synops_per_sample"]["mean"] == pytest.approx(
        (x @ (weights(4, 3) != 0).T).sum() / N) and rows["w"]["synop_kind"] == "AC"
    assert "Chip fit: Loihi 2" in (tmp_path / "rep" / "report.md").read_text()
    assert (tmp_path / "rep" / "firing_rates.png").is_file() and (tmp_path / "rep" / "energy.png").is_file()
    assert "report ->" in capsys.readouterr().out


def test_command_reads_input_in_nir_data_format(tmp_path, capsys):
    """NIR's own data format (nir.write_data): time-gridded spikes or events for the Input node, on the run's dt."""
    model = write(tmp_path, readout_graph())
    x = spikes((3,)).astype(bool)
    gridded = nir.NIRGraphData({"in": nir.NIRNodeData({"spikes": nir.TimeGriddedData(x.transpose(1, 0, 2), DT)})})
    nir.write_data(str(tmp_path / "in.h5"), gridded)
    assert main([str(model), "--input", str(tmp_path / "in.h5"), "-o", str(tmp_path / "rep"), "--quiet"]) == 0
    assert np.array_equal(np.load(tmp_path / "rep" / "outputs.npz")["spk"], run(readout_graph(), x.astype(np.float32)).outputs["spk"])
    events = gridded.nodes["in"].observables["spikes"].to_event(n_events=T * 3, time_shift=DT / 2)
    nir.write_data(str(tmp_path / "ev.h5"), nir.NIRGraphData({"in": nir.NIRNodeData({"spikes": events})}))
    assert main([str(model), "--input", str(tmp_path / "ev.h5"), "-o", str(tmp_path / "rep2"), "--quiet"]) == 0
    assert np.array_equal(np.load(tmp_path / "rep2" / "outputs.npz")["spk"], np.load(tmp_path / "rep" / "outputs.npz")["spk"])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([str(model), "--input", str(tmp_path / "in.h5"), "--dt", "1e-3", "-o", str(tmp_path / "rep3")])
    assert "its time grid is dt = 0.0001 s, the run's is 0.001 s" in capsys.readouterr().err
    assert not (tmp_path / "rep3").exists()


def exact_lif(n: int) -> nir.LIF:
    """A LIF of beta 0.5, gain 1 and threshold 1, resetting to 0: Loihi's integers round nothing on dyadic weights."""
    return nir.LIF(tau=full(n, TAU), r=full(n, 2.0), v_leak=full(n, 0.0), v_threshold=full(n, 1.0),
                   v_reset=full(n, 0.0))


def exact_chain(w: np.ndarray) -> nir.NIRGraph:
    """``Input -> Linear(w) -> exact LIF -> Output``."""
    n_out, n_in = w.shape
    return graph({"in": nir.Input(np.array([n_in])), "w": nir.Linear(w), "lif": exact_lif(n_out),
                  "out": nir.Output(np.array([n_out]))}, [("in", "w"), ("w", "lif"), ("lif", "out")])


def test_fixed_mode_agrees_on_an_exact_chain_and_is_refused_where_it_cannot_run(tmp_path, capsys):
    w = weights(4, 3)
    chain, lif = exact_chain(w), exact_lif(4)
    assert main([str(write(tmp_path, chain)), "--input", "random:0.5", "--steps", "16", "--mode", "both",
                 "-o", str(tmp_path / "rep"), "--quiet"]) == 0
    fixed = json.loads((tmp_path / "rep" / "report.json").read_text())["runs"]["fixed"]
    assert fixed["ran"] and fixed["path"] == "chain" and fixed["per_node"][0]["node"] == "lif" and fixed["overall"] == 1.0
    arrays = np.load(tmp_path / "rep" / "outputs.npz")
    assert np.array_equal(arrays["fixed.out"], arrays["out"]) and arrays["out"].sum() > 0
    nested = graph({"in": nir.Input(np.array([3])), "w": nir.Linear(w),
                    "sub": graph({"i": nir.Input(np.array([4])), "lif": lif, "o": nir.Output(np.array([4]))},
                                 [("i", "lif"), ("lif", "o")]), "out": nir.Output(np.array([4]))},
                   [("in", "w"), ("w", "sub"), ("sub", "out")])
    assert main([str(write(tmp_path, nested, "nested.nir")), "--input", "random:0.5", "--steps", "16", "--mode",
                 "fixed", "-o", str(tmp_path / "rep-nested"), "--quiet"]) == 0
    fixed = json.loads((tmp_path / "rep-nested" / "report.json").read_text())["runs"]["fixed"]
    assert [n["node"] for n in fixed["per_node"]] == ["sub.lif"] and fixed["overall"] == 1.0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main([str(write(tmp_path, readout_graph(), "r.nir")), "--input", "random:0.5", "--mode", "fixed",
              "-o", str(tmp_path / "rep2")])
    assert exc.value.code == 2 and "--mode fixed:" in capsys.readouterr().err
    assert not (tmp_path / "rep2").exists()


@pytest.mark.lava
def test_lava_runs_a_chain_graph_and_agrees_with_the_interpreter_and_the_fast_fixed_path(tmp_path, capsys):
    chain = exact_chain(weights(4, 3))
    assert main([str(write(tmp_path, chain)), "--input", "random:0.5", "--steps", "12", "--samples", "3",
                 "--mode", "both", "--backend", "lava", "-o", str(tmp_path / "rep"), "--quiet"]) == 0
    lava = json.loads((tmp_path / "rep" / "report.json").read_text())["lava"]
    assert set(lava) == {"float", "fixed"}
    assert all(n["exact"] and n["spikes_per_sample"] > 0 for block in lava.values() for n in block["per_node"])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([str(write(tmp_path, readout_graph(), "r.nir")), "--input", "random:0.5", "--backend", "lava",
              "-o", str(tmp_path / "rep2")])
    assert "--backend lava: node 'lif' (LIF) resets to v_reset != 0" in capsys.readouterr().err  # more: test_hwsim_nir_lava.py
    assert not (tmp_path / "rep2").exists()


@pytest.mark.parametrize("case, fragment", [
    ("shape", "is not (T, N, 3)"), ("garbage", "not a readable NIR graph"), ("missing", "not found"),
    ("cycle", "has no neuron node"), ("rate", "random:RATE needs a rate between 0 and 1"),
    ("graph-shape", "node 'w' (Linear) does not fit its input of shape (3,)"), ("nan", "holds NaN or infinite values"),
    ("unknown-type", "NIR node 'lif' has type 'Mystery', which NIR "),
    ("unknown-nested-type", "NIR node 'sub.lif' has type 'Odd\\nline', which NIR "),
    ("numeric-type", "not a readable NIR graph"),
])
def test_command_refusals_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, case, fragment):
    model = write(tmp_path, readout_graph())
    args = ["--input", "random:0.2"]
    if case == "shape":
        np.savez(tmp_path / "in.npz", spikes=spikes((4,)))
        args = ["--input", str(tmp_path / "in.npz")]
    elif case == "garbage":
        model = tmp_path / "bad.nir"
        model.write_bytes(b"not hdf5 at all")
    elif case == "missing":
        model = tmp_path / "nothing.nir"
    elif case == "cycle":
        g = graph({"in": nir.Input(np.array([3])), "a": nir.Linear(weights(3, 3)), "b": nir.Linear(weights(3, 3)),
                   "out": nir.Output(np.array([3]))}, [("in", "a"), ("a", "b"), ("b", "a"), ("b", "out")])
        model = write(tmp_path, g, "cycle.nir")
    elif case == "rate":
        args = ["--input", "random:1.5"]
    elif case == "graph-shape":
        g = graph({"in": nir.Input(np.array([3])), "w": nir.Linear(weights(4, 5)), "lif": neuron("LIF", 4),
                   "out": nir.Output(np.array([4]))}, [("in", "w"), ("w", "lif"), ("lif", "out")])
        model = write(tmp_path, g, "shapes.nir")
    elif case == "nan":
        x = spikes((3,))
        x[2, 1, 0] = np.nan
        np.savez(tmp_path / "in.npz", spikes=x)
        args = ["--input", str(tmp_path / "in.npz")]
    elif case.startswith("unknown"):  # a node type NIR 1.0.8 does not know: nir.read refuses, lorsp names it
        import h5py
        field = "node/nodes/lif/type"
        if case == "unknown-nested-type":  # in a nested graph, with a line break in the type (the error stays one line)
            g = graph({"in": nir.Input(np.array([3])), "w": nir.Linear(weights(5, 3)), "sub": lif_graph_node(5),
                       "out": nir.Output(np.array([5]))}, [("in", "w"), ("w", "sub"), ("sub", "out")])
            model, field = write(tmp_path, g, "nested.nir"), "node/nodes/sub/nodes/lif/type"
        with h5py.File(model, "r+") as f:
            del f[field]
            f[field] = np.bytes_("Mystery" if case == "unknown-type" else "Odd\nline")
    elif case == "numeric-type":  # a type field that is no string names nothing: the file is just unreadable
        import h5py
        with h5py.File(model, "r+") as f:
            del f["node/nodes/lif/type"]
            f["node/nodes/lif/type"] = 7
    with pytest.raises(SystemExit) as exc:
        main([str(model), *args, "-o", str(tmp_path / "rep")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and err[0].startswith("error: ") and fragment in err[0], err
    assert not (tmp_path / "rep").exists()


def test_a_run_past_its_time_limit_stops_in_one_line(tmp_path, capsys):
    model = write(tmp_path, readout_graph())
    with pytest.raises(SystemExit) as exc:
        main([str(model), "--input", "random:0.5", "--steps", "1000000", "--samples", "1", "--timeout", "0.5",
              "-o", str(tmp_path / "rep")])
    assert exc.value.code == 2 and "exceeded --timeout" in capsys.readouterr().err
    assert not (tmp_path / "rep").exists()


def test_console_script_routes_a_graph_file_and_keeps_the_bundle_path(tmp_path):
    model = write(tmp_path, readout_graph())
    proc = run_cli("hw_sim.cli", str(model), "--input", "random:0.3", "--steps", "8", "--samples", "2",
                   "-o", str(tmp_path / "rep"), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Loihi 2:" in proc.stdout and (tmp_path / "rep" / "outputs.npz").is_file()
    assert_one_line_error(run_cli("hw_sim.cli", str(tmp_path), "-o", str(tmp_path / "rep2"), timeout=300))


def test_a_neuron_with_a_constant_drive_is_an_active_update_every_step():
    # v_leak is the chip's bias: it changes the state every step, input or not (as hw_sim.energy counts the chain)
    leak = np.array([0.0, 0.5, 0.0, -0.25], np.float32)
    g = graph({"in": nir.Input(input_type=np.array([3])), "w": nir.Linear(weight=weights(4, 3)),
               "lif": nir.LIF(tau=full(4, TAU), r=full(4, 2.0), v_leak=leak * 2, v_threshold=full(4, 1.0),
                              v_reset=full(4, 0.0)),
               "out": nir.Output(output_type=np.array([4]))},
              [("in", "w"), ("w", "lif"), ("lif", "out")])
    x = spikes((3,), rate=0.3)
    stats = run(g, x).stats["lif"]
    reached = (x @ (weights(4, 3) != 0).T) > 0                 # (T, N, 4): a synaptic event this step
    expected = (reached | (leak != 0)).sum((0, 2))
    assert np.array_equal(stats.active_updates, expected) and expected.max() > (reached.sum((0, 2))).max()
    fixed = run_graph(compile_fixed(compile_graph(flat_graph(g), DT)), x).stats["lif"]  # the integer twin: its bias
    assert np.array_equal(fixed.active_updates, expected)
