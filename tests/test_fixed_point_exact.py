"""Band gating's start is exact on the chip: fixed point gives the float network's spikes for every input.

deploy.fixed_point.exactness states the conditions (integers without rounding, a dyadic decay
that drops no bit within T steps); these tests check it on a trained model's bundle, with
random spike trains on the fast simulator and a real Lava fixed-point run, and check that it
says why when a condition fails.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from deploy.bundle import open_bundle
from deploy.fixed_point import exactness, quantise
from deploy.network import SpikingNetwork
from hw_sim.backends import get_backend
from tests.test_export_loihi import shared_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return open_bundle(shared_bundle(tmp_path_factory))


def random_trains(network: SpikingNetwork, time_steps: int, samples: int, seed: int = 0) -> np.ndarray:
    """``(T, N, D)`` binary spike trains of every density from 0 to 1: inputs no image encoding would give."""
    rng = np.random.default_rng(seed)
    density = np.linspace(0.0, 1.0, samples)[None, :, None]
    return (rng.random((time_steps, samples, network.input_size)) < density).astype(np.uint8)


def test_the_exported_default_model_is_declared_exact(bundle):
    report = bundle.manifest["fixed_point_exact"]
    assert report["exact"] is True, report
    assert report["time_steps"] == bundle.host.time_steps
    for row in report["layers"]:
        assert row["scale"] == 2.0 ** round(np.log2(row["scale"]))  # a power of two: nothing rounded
        assert row["decay_bits_per_step"] * (report["time_steps"] - 1) <= row["headroom_bits"]


@pytest.mark.slow
def test_fixed_point_equals_float_on_any_spike_train(bundle):
    """Fast simulator, 512 random trains of every density: every layer's spikes equal in the two modes."""
    trains = random_trains(bundle.network, bundle.host.time_steps, 512)
    fast = get_backend("fast")
    got = fast(bundle.network, trains, mode="fixed", timeout=120).layer_spikes
    want = fast(bundle.network, trains, mode="float", timeout=120).layer_spikes
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    assert 0 < sum(int(s.sum()) for s in want) < sum(s.size for s in want)  # neither silent nor saturated


@pytest.mark.lava
@pytest.mark.slow
def test_a_real_lava_fixed_point_run_equals_the_float_network(bundle):
    trains = random_trains(bundle.network, bundle.host.time_steps, 24, seed=1)
    lava = get_backend("lava")(bundle.network, trains, mode="fixed", timeout=300).layer_spikes
    want = get_backend("fast")(bundle.network, trains, mode="float", timeout=120).layer_spikes
    assert all(np.array_equal(a, b) for a, b in zip(lava, want))


def _with(network: SpikingNetwork, layer: int, **change) -> SpikingNetwork:
    layers = list(network.layers)
    layers[layer] = dataclasses.replace(layers[layer], **change)
    return dataclasses.replace(network, layers=tuple(layers))


@pytest.mark.parametrize("change,reason", [
    (lambda l: {"beta": np.full_like(l.beta, 0.9)}, "beta is not a multiple of 1/4096"),
    (lambda l: {"beta": np.full_like(l.beta, 0.75)}, "the decay drops 2 bit(s) a step"),
    (lambda l: {"weight": (l.weight + np.float32(1e-3)).astype(np.float32)}, "weights rounded"),
    (lambda l: {"alpha": np.full_like(l.alpha, 0.5)}, "synaptic current decays"),
])
def test_exactness_names_the_condition_that_fails(bundle, change, reason):
    network = _with(bundle.network, 1, **change(bundle.network.layers[1]))
    report = exactness(network, quantise(network), bundle.host.time_steps)
    assert report["exact"] is False
    assert report["layers"][0]["exact"] is True
    assert any(reason in why for why in report["layers"][1]["why_not"]), report["layers"][1]["why_not"]
