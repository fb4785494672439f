"""lorsp's simulator against SANA-FE (benchmarks/sanafe_check.py) on a tiny snnTorch Linear -> Leaky chain.

SANA-FE (GPL-3.0) is a test and benchmark dependency only; skipped where it is not installed. Its
Loihi LIF is Lava's bit-accurate one in units of 2^6, so with lorsp's fixed-point form of the graph
every layer's spikes must equal lorsp's fixed-point spikes (shifted by SANA-FE's one step per layer)
and its synapse events must equal lorsp's synaptic-operation count on those spikes, sample by sample.
Energy is not the same model (docs/hwsim-nir.md); only SANA-FE's synapse energy, 35.5 pJ per event,
is asserted, and that its packets are lorsp's plus the input spikes.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sanafe")
from benchmarks.sanafe_check import compare, export_chain  # noqa: E402


def test_sanafe_spikes_and_synops_equal_lorsp_fixed_point(tmp_path):
    path = export_chain(tmp_path / "chain.nir", [12, 8, 4], seed=0)
    x = (np.random.default_rng(0).random((20, 4, 12)) < 0.25).astype(np.float32)
    result = compare(path, x)
    spikes, synops, energy = result["spikes"], result["synops_per_sample"], result["energy_per_sample_pj"]
    assert spikes["per_sample"]["sanafe"] > 0
    assert spikes["sanafe_equals_lorsp_fixed"] and spikes["spikes_outside_window"] == 0
    assert synops["equal_every_sample"] and synops["sanafe"] > 0
    assert energy["sanafe_synapse_over_synops"] == pytest.approx(35.5)
    rec = energy["reconciliation"]
    assert rec["sanafe_lif_updates_from_soma_energy"] == pytest.approx(rec["sanafe_updated_less_input_spikes"])
    assert rec["network_pj_less_packets"] == pytest.approx(0.0, abs=1e-6)
