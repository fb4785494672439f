"""lorsp's simulator against SANA-FE (benchmarks/sanafe_check.py) on small snnTorch networks.

SANA-FE (GPL-3.0) is a test and benchmark dependency only; skipped where it is not installed. Its
Loihi LIF is Lava's bit-accurate one in units of 2^6, so with lorsp's fixed-point form of the graph
(the general path, hw_sim/graph/fixed_graph.py) every group's spikes must equal lorsp's fixed-point
spikes, shifted by SANA-FE's one step per connection from the input, and its synapse events and
packets must equal lorsp's rule on those spikes, sample by sample: on a dense chain, on a conv net
with pools and a bias in every layer, and on a recurrent (RLeaky) net, whose recurrence is one step
in both. Energy is not the same model (docs/hwsim-nir.md); SANA-FE's synapse energy, 35.5 pJ per
event, and the soma and network reconciliation are asserted.
"""
from __future__ import annotations

import nir
import numpy as np
import pytest

pytest.importorskip("sanafe")
from benchmarks.sanafe_check import compare  # noqa: E402
from benchmarks.sanafe_graph import loihi_groups  # noqa: E402
from benchmarks.sanafe_nets import export, export_chain, snntorch_conv, snntorch_recurrent  # noqa: E402
from deploy.nir_graph import flat_graph  # noqa: E402
from hw_sim.graph.fixed_graph import compile_fixed  # noqa: E402
from hw_sim.graph.runner import compile_graph  # noqa: E402
from lorsp.plumbing.errors import LorspError  # noqa: E402


def spikes(shape, steps=20, samples=3, rate=0.3):
    return (np.random.default_rng(0).random((steps, samples, *shape)) < rate).astype(np.float32)


def assert_exact(result):
    """Spikes, synapse events and packets equal; the energy parts reconciled."""
    s, synops, energy = result["spikes"], result["synops_per_sample"], result["energy_per_sample_pj"]
    assert s["per_sample"]["sanafe"] > 0 and all(a > 0.5 for a in s["sanafe_vs_lorsp_fixed_agreement"])
    assert s["sanafe_equals_lorsp_fixed"] and s["spikes_outside_window"] == 0
    assert synops["equal_every_sample"] and synops["sanafe"] > 0
    assert energy["sanafe_synapse_over_synops"] == pytest.approx(35.5)
    rec = energy["reconciliation"]
    assert rec["packets_equal_every_sample"]
    assert rec["sanafe_lif_updates_from_soma_energy"] == pytest.approx(rec["sanafe_updated_less_input_spikes"])
    assert rec["network_pj_less_packets"] == pytest.approx(0.0, abs=1e-6)


def test_sanafe_spikes_and_synops_equal_lorsp_fixed_point(tmp_path):
    path = export_chain(tmp_path / "chain.nir", [12, 8, 4], seed=0)
    x = (np.random.default_rng(0).random((20, 4, 12)) < 0.25).astype(np.float32)
    result = compare(path, x)
    assert_exact(result)
    assert result["spikes"]["shift_steps"] == [1, 2]


def test_a_conv_net_with_biases_equals_lorsp_fixed_point_and_the_plain_bias_mapping_does_not(tmp_path):
    image = (1, 10, 10)
    path = export(snntorch_conv(image, [4, 6], 5, seed=0), image, tmp_path / "conv.nir")
    result = compare(path, spikes(image), naive=True)
    assert_exact(result)
    groups = result["network"]["groups"]
    assert [g["depth"] for g in groups] == [1, 2, 3] and all(g["nonzero_biases"] > 0 for g in groups)
    assert [c["via"][0] != c["node"] for c in result["network"]["connections"]] == [False, True, True]  # pools
    conv = result["network"]["conv2d_through_connect_neurons_conv2d"]
    assert conv[0]["expressible"] and conv[0]["nonzero_edges_equal_multiplied_out"]
    assert not conv[1]["expressible"]  # padded: SANA-FE's conv2d has no padding
    # biases on from SANA-FE's step 0: the pipeline-filling steps integrate them alone, so spikes differ
    assert min(result["naive_bias_from_step_0"]["sanafe_vs_lorsp_fixed_agreement"]) < 1.0


def test_a_recurrent_net_equals_lorsp_fixed_point_with_one_step_of_recurrence_in_both(tmp_path):
    path = export(snntorch_recurrent([10, 24, 6], seed=0), (10,), tmp_path / "rec.nir")
    result = compare(path, spikes((10,)))
    assert_exact(result)
    loops = [c for c in result["network"]["connections"] if c["recurrent"]]
    assert len(loops) == 1 and loops[0]["source"] == loops[0]["target"] == "rec.lif"
    assert result["spikes"]["shift_steps"] == [1, 2]
    assert result["synops_per_sample"]["last_step_recurrent_events_on_lorsp_fixed_spikes"] > 0


def test_paths_of_different_lengths_are_refused():
    w = lambda n, m: np.ones((n, m), np.float32)  # noqa: E731

    def lif(n):
        return nir.LIF(tau=np.full(n, 1e-3), r=np.full(n, 10.0), v_leak=np.zeros(n), v_threshold=np.ones(n),
                       v_reset=np.zeros(n))

    g = nir.NIRGraph(nodes={"in": nir.Input(np.array([3])), "a": nir.Linear(w(4, 3)), "la": lif(4),
                            "b": nir.Linear(w(2, 4)), "skip": nir.Linear(w(2, 3)), "lb": lif(2),
                            "out": nir.Output(np.array([2]))},
                     edges=[("in", "a"), ("a", "la"), ("la", "b"), ("b", "lb"), ("in", "skip"), ("skip", "lb"),
                            ("lb", "out")], type_check=False)
    fixed = compile_fixed(compile_graph(flat_graph(g), 1e-4))
    with pytest.raises(LorspError, match="feed-forward paths of lengths"):
        loihi_groups(fixed)
