"""The fast backend against Lava: equal spikes at every step and neuron, in float and fixed mode.

The fast tests check fast's arithmetic against Lava's own model classes and weight
utilities; they do not start the Lava runtime. The slow ones run Lava itself, through the
Lava backend or its child-process runner (about 1.5 s a run): on an exported LoRSP
generator, on random small networks, and on the cases where Lava's behaviour is
surprising, each named in the test's name.
"""
from __future__ import annotations

import inspect
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import torch

from hw_sim.backends import get_backend, list_backends
from hw_sim.backends.fast import chain_graph, lava_timeline, run_chain
from hw_sim.backends.lava_dense import dense_weights, exact_sum_rows, fixed_dense
from hw_sim.backends.lava_lif import lava_lif
from hw_sim.backends.processes import LavaLayer, NeuronGroup, lava_layers
from deploy.bundle import open_bundle
from hw_sim.cli import build_parser
from deploy.fixed_point import quantise
from deploy.network import Layer, SpikingNetwork
from hw_sim.simulate import simulate
from lorsp.data import load_split_images
from lorsp.plumbing.errors import LorspError
from tests.conftest import run_cli
from tests.test_export_loihi import shared_bundle

M = 2 ** 23            # Lava's max_uv_val: u and v are 24-bit
TIMEOUT = 120.0


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    return shared_bundle(tmp_path_factory)


# --------------------------------------------------------------------------- helpers
def make_layer(name: str, weight, *, bias=0.0, beta=0.9, threshold=1.0, alpha=0.0, dtype=np.float32) -> Layer:
    """A layer with per-neuron parameters broadcast from scalars or lists."""
    weight = np.asarray(weight, dtype=dtype)
    n = weight.shape[0]
    per_neuron = lambda x: np.array(np.broadcast_to(np.asarray(x, dtype=dtype), (n,)))  # noqa: E731
    return Layer(name, weight, per_neuron(bias), per_neuron(beta), per_neuron(threshold), per_neuron(alpha))


def fast_and_lava(network: SpikingNetwork, spikes: np.ndarray, mode: str) -> tuple[list, list]:
    fast = get_backend("fast")(network, spikes, mode=mode, timeout=TIMEOUT).layer_spikes
    lava = get_backend("lava")(network, spikes, mode=mode, timeout=TIMEOUT).layer_spikes
    return fast, lava


def assert_identical(fast: list[np.ndarray], lava: list[np.ndarray], what: str = "") -> None:
    """Every layer, step, sample and neuron equal; otherwise name the first difference."""
    assert len(fast) == len(lava)
    for k, (f, r) in enumerate(zip(fast, lava)):
        assert f.shape == r.shape and f.dtype == r.dtype, (what, k, f.shape, r.shape, f.dtype, r.dtype)
        wrong = np.argwhere(f != r)
        assert wrong.size == 0, (f"{what} layer {k}: {len(wrong)} of {f.size} spikes differ; first at "
                                 f"(step, sample, neuron) = {tuple(int(i) for i in wrong[0])}")


def lava_sinks(layers: list[LavaLayer], spikes: np.ndarray, tag: str) -> list[list[np.ndarray]]:
    """Lava's raw sink records (one per neuron group) for ``layers`` as given, bypassing quantisation."""
    from hw_sim.backends.lava import _simulate
    from lorsp.plumbing.deadline import run_with_deadline

    T, N, D = spikes.shape
    data = np.concatenate([spikes.transpose(2, 1, 0).reshape(D, N * T), np.zeros((D, len(layers)), spikes.dtype)], 1)
    data = data.astype(np.float64 if tag == "floating_pt" else np.int32)
    recorded, _ = run_with_deadline(_simulate, (layers, data, T, N, N, tag), timeout=TIMEOUT, what="a Lava run")
    return recorded


def lava_window(layers: list[LavaLayer], recorded: list[list[np.ndarray]], columns: int) -> list[np.ndarray]:
    """Lava's sink records as ``(neurons, N T + L)`` per layer, kept only where the samples are (layer ``k``:
    indices ``k + 1 .. k + N T``); the pipeline filling and draining around them are zeroed."""
    out = []
    for k, (layer, sinks) in enumerate(zip(layers, recorded)):
        spikes = np.zeros((len(layer.bias_mant), sinks[0].shape[1]), np.uint8)
        for group, sink in zip(layer.groups, sinks):
            spikes[group.index, k + 1: k + 1 + columns] = sink[:, k + 1: k + 1 + columns] != 0
        out.append(spikes)
    return out


def fast_timeline(layers: list[LavaLayer], spikes: np.ndarray, mode: str, input_size: int) -> list[np.ndarray]:
    """fast's spikes of ``layers`` on Lava's step index (``(neurons, N T + L)`` per layer)."""
    out = run_chain(chain_graph(layers, mode, input_size), spikes)
    return [lava_timeline(s, k, len(layers)) for k, s in enumerate(out)]


def fixed_trace(network: SpikingNetwork, spikes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``u`` and ``v`` of fast's fixed-point first layer after every step, ``(T, N, n)`` each: its two nodes of the
    compiled chain stepped by hand."""
    compiled = chain_graph(lava_layers(network, "fixed"), "fixed", network.input_size)
    dense, neuron = compiled["layer0.dense"].op, compiled["layer0"].op
    state = neuron.initial_state(spikes.shape[1])
    us, vs = [], []
    for t in range(spikes.shape[0]):
        neuron.step([dense(torch.from_numpy(spikes[t].astype(np.float32)))], state)
        us.append(state["u"].numpy().copy())
        vs.append(state["v"].numpy().copy())
    return np.stack(us), np.stack(vs)


# --------------------------------------------------------------------------- random networks
RANDOM_NETWORKS = [  # (seed, depth, sign of the first layer's weights, weight dtype)
    (0, 1, "mixed", np.float32),
    (1, 2, "excitatory", np.float32),
    (2, 3, "mixed", np.float32),
    (3, 1, "inhibitory", np.float32),
    (4, 2, "mixed", np.float64),     # float64 weights: float sums inexact, fast takes Lava's order
    (5, 3, "excitatory", np.float32),
]


def random_network(seed: int, depth: int, sign: str, dtype) -> SpikingNetwork:
    """Widths 1-12, 1-3 neuron groups per layer (beta 0 / 0.5 / 0.9 / 1 / random, thresholds 0.25-2.5,
    some CubaLIF alpha), biases from none to strong (above threshold under inhibitory weights), 20% absent
    synapses."""
    rng = np.random.default_rng(seed)
    width = int(rng.integers(3, 13))
    layers, fan_in = [], width
    for k in range(depth):
        n = int(rng.integers(1, 13))
        w = rng.normal(size=(n, fan_in)) * rng.choice([0.5, 1.0, 2.0])
        if sign == "excitatory" or (sign == "inhibitory" and k > 0):
            w = np.abs(w)
        elif sign == "inhibitory":
            w = -np.abs(w)
        w[rng.random(w.shape) < 0.2] = 0.0
        groups = rng.integers(0, int(rng.integers(1, 4)), size=n)
        beta = rng.choice([0.0, 0.5, 0.9, 1.0, float(rng.uniform(0.05, 0.95))], size=3)[groups]
        threshold = rng.choice([0.25, 1.0, 2.5], size=3)[groups]
        alpha = (rng.choice([0.0, 0.0, 0.6, 0.95], size=3) if k == depth - 1 else np.zeros(3))[groups]
        bias = rng.normal(size=n) * rng.choice([0.0, 0.2, 1.5])
        if sign == "inhibitory" and k == 0:  # bias drives these neurons, inhibitory inputs silence them
            bias = np.abs(bias) + threshold
        layers.append(make_layer(str(k), w, bias=bias, beta=beta, threshold=threshold, alpha=alpha, dtype=dtype))
        fan_in = n
    return SpikingNetwork(width, tuple(layers))


def random_inputs(seed: int, network: SpikingNetwork) -> np.ndarray:
    """``(T, 6, D)``: sample 0 has every input on every step, sample 1 none, the others random densities."""
    rng = np.random.default_rng(seed + 100)
    T, N = int(rng.integers(3, 9)), 6
    x = rng.random((T, N, network.input_size)) < rng.uniform(0.05, 0.9, size=(1, N, 1))
    x[:, 0], x[:, 1] = True, False
    return x.astype(np.uint8)


def test_random_networks_cover_depths_signs_groups_limits_and_firing_extremes():
    """The corpus the slow tests compare with Lava holds what it should (checked with fast alone)."""
    seen: dict[str, set] = {"depth": set(), "sign": set(), "beta": set(), "groups": set(), "alpha": set(),
                            "bias": set(), "fires": set(), "weight_max": set()}
    for seed, depth, sign, dtype in RANDOM_NETWORKS:
        net = random_network(seed, depth, sign, dtype)
        spikes = random_inputs(seed, net)
        seen["depth"].add(depth)
        for layer, fx in zip(net.layers, quantise(net)):
            seen["sign"].add(fx.sign_mode)
            seen["beta"] |= {float(b) for b in layer.beta if b in (0.0, 1.0)}
            seen["groups"].add(len({(float(b), float(t), float(a)) for b, t, a in
                                    zip(layer.beta, layer.threshold, layer.alpha)}) > 1)
            seen["alpha"].add(bool((layer.alpha > 0).any()))
            seen["bias"].add(bool(np.abs(layer.bias).max() > 0))
            seen["weight_max"].add(int(np.abs(fx.weight).max()) >= 250)
        for mode in ("float", "fixed"):
            for out in get_backend("fast")(net, spikes, mode=mode, timeout=TIMEOUT).layer_spikes:
                per_neuron = out.sum(axis=0)  # (samples, neurons): steps with a spike
                seen["fires"] |= {"every step"} if (per_neuron == len(out)).any() else set()
                seen["fires"] |= {"never"} if (per_neuron == 0).any() else set()
                seen["fires"] |= {"sometimes"} if ((per_neuron > 0) & (per_neuron < len(out))).any() else set()
    assert seen["depth"] == {1, 2, 3} and seen["sign"] == {"mixed", "excitatory", "inhibitory"}
    assert seen["beta"] == {0.0, 1.0} and seen["groups"] == seen["alpha"] == seen["bias"] == {True, False}
    assert seen["fires"] == {"every step", "never", "sometimes"} and True in seen["weight_max"]


# --------------------------------------------------------------------------- arithmetic against Lava's classes
@pytest.mark.lava
def test_dense_weight_rule_is_lavas_clip_and_truncate_with_the_even_rule_for_mixed_signs():
    """Mixed sign: the lowest bit dropped towards minus infinity (255 -> 254, -255 -> -256); one sign: odd kept."""
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

    rng = np.random.default_rng(0)
    blocks = [rng.integers(-400, 400, size=(5, 7)), rng.integers(0, 400, size=(5, 7)),
              rng.integers(-400, 1, size=(5, 7)), np.zeros((3, 2), int), np.array([[255, -255, 3, -3, 1, -1]])]
    for block in blocks:
        mode = determine_sign_mode(block)
        lava = truncate_weights(clip_weights(block, mode, num_bits=8), mode, num_weight_bits=8)
        assert np.array_equal(dense_weights(block), lava), block
    assert dense_weights(np.array([[255, -255, 3, -3]])).tolist() == [[254, -256, 2, -4]]
    assert dense_weights(np.array([[255, 3, 300]])).tolist() == [[255, 3, 255]]
    assert dense_weights(np.array([[-255, -3, -300]])).tolist() == [[-255, -3, -255]]


def lava_fixed_neuron(du: int, dv: int, vth: int, bias_mant: int, bias_exp: int, n: int):
    from lava.proc.lif.models import PyLifResetModelBitAcc

    m = PyLifResetModelBitAcc({"reset_interval": 2 ** 30, "reset_offset": 0})
    m.du, m.dv, m.vth = du, dv, vth
    m.bias_mant, m.bias_exp = np.full(n, bias_mant, np.int16), np.full(n, bias_exp, np.int16)
    return m


def one_neuron(du, dv, vth, bias_mant, bias_exp, mode: str):
    """fast's neuron node of one Lava process, and a step of it on numpy ``u, v, a`` ``(n, 1)`` (in place on
    ``u, v``; returns the bool spikes), as the chain steps it (integers held in float64 in fixed mode)."""
    layer = LavaLayer(np.zeros((1, 1)), np.array([bias_mant]), np.array([bias_exp]),
                      (NeuronGroup(np.array([0]), du, dv, vth),))
    neuron = lava_lif(layer, mode)

    as_state = torch.from_numpy if mode == "fixed" else np.asarray  # FixedNeuron: tensors; FloatLif: numpy arrays

    def step(u: np.ndarray, v: np.ndarray, a: np.ndarray) -> np.ndarray:
        state = {"u": as_state(u.astype(np.float64)), "v": as_state(v.astype(np.float64))}
        spikes = neuron.step([torch.from_numpy(a.astype(np.float64))], state).numpy().astype(bool)
        for name, x in (("u", u), ("v", v)):
            got = np.asarray(state[name])
            assert np.array_equal(got, got.astype(x.dtype)), name  # fixed: integers, no fraction
            x[:] = got
        return spikes

    return step


@pytest.mark.lava
def test_fixed_neuron_step_equals_lavas_bit_accurate_model_at_the_register_limits():
    """u wraps, v saturates, decays round towards zero, vth << 6, bias_mant << bias_exp: every
    du, dv edge, every u, v edge, inputs beyond 16 bits (Lava's CPU model does not cut them)."""
    u_edges = np.array([-(M - 1), -M + 77, -4097, -1, 0, 1, 4097, M - 77, M - 1, M])
    v_edges = np.array([-(M - 1), -M + 77, -4097, -1, 0, 1, 4097, 28160, 28161, M - 77, M - 1])
    a_edges = np.array([-2 ** 17, -2 ** 15, -1000, -1, 0, 1, 440, 2 ** 15 - 1, 2 ** 17, 2 ** 17 + 1])
    u0, v0, a = (x.reshape(-1).astype(np.int32) for x in np.meshgrid(u_edges, v_edges, a_edges, indexing="ij"))
    for du in (0, 1, 410, 4094, 4095):
        for dv in (0, 1, 410, 4095):
            for vth in (0, 440, 2 ** 17 - 1):
                for bias_mant, bias_exp in ((0, 6), (4095, 6), (-4096, 6), (-7, 0), (100, 7), (-9, -2)):
                    lava = lava_fixed_neuron(du, dv, vth, bias_mant, bias_exp, len(a))
                    lava.u, lava.v = u0.copy(), v0.copy()
                    lava.scale_bias()
                    lava.scale_threshold()
                    lava.subthr_dynamics(activation_in=a.copy())
                    s_lava = lava.spiking_activation()
                    lava.reset_voltage(s_lava)
                    step = one_neuron(du, dv, vth, bias_mant, bias_exp, "fixed")
                    u, v = u0[:, None].copy(), v0[:, None].copy()
                    s_fast = step(u, v, a[:, None])
                    assert np.array_equal(u[:, 0], lava.u) and np.array_equal(v[:, 0], lava.v), (du, dv, vth)
                    assert np.array_equal(s_fast[:, 0], s_lava)


def test_fixed_current_register_keeps_plus_2_to_23_and_wraps_minus_2_to_23_to_plus():
    """Lava's wrap: above 2^23 subtract 2^24, at or below -2^23 add it: u lies in (-2^23, 2^23], one value more
    than a 24-bit register; the voltage saturates at +-(2^23 - 1) instead."""
    step = one_neuron(4095, 0, 2 ** 17 - 1, 0, 6, "fixed")  # du = 4095: u = a << 6, nothing kept
    a = np.array([[2 ** 17], [-2 ** 17], [2 ** 17 + 1], [-(2 ** 17) - 1]], np.int32)
    u, v = np.zeros((4, 1), np.int32), np.zeros((4, 1), np.int32)
    step(u, v, a)
    assert u[:, 0].tolist() == [M, M, -M + 64, M - 64]
    # M saturates to M - 1 > vth << 6 = M - 64: spike and reset; M - 64 equals it: no spike (the compare is >)
    assert v[:, 0].tolist() == [0, 0, -M + 64, M - 64]


@pytest.mark.lava
def test_float_neuron_step_equals_lavas_float_model():
    from lava.proc.lif.models import PyLifResetModelFloat

    rng = np.random.default_rng(1)
    u0, v0, a = rng.normal(size=(3, 500)) * 3
    for alpha, beta, vth, bias in ((0.0, 0.9, 1.0, 0.1), (0.6, 0.85, 0.7, -0.3), (0.0, 1.0, 2.5, 0.0),
                                   (0.3, 0.0, 0.25, 1.5)):
        du, dv = 1.0 - float(np.float32(alpha)), 1.0 - float(np.float32(beta))
        lava = PyLifResetModelFloat({"reset_interval": 2 ** 30, "reset_offset": 0})
        lava.du, lava.dv, lava.vth, lava.bias_mant = du, dv, float(np.float32(vth)), np.full(500, bias)
        lava.u, lava.v = u0.copy(), v0.copy()
        lava.subthr_dynamics(activation_in=a)
        s_lava = lava.spiking_activation()
        lava.reset_voltage(s_lava)
        step = one_neuron(du, dv, float(np.float32(vth)), bias, 0, "float")
        u, v = u0[:, None].copy(), v0[:, None].copy()
        s_fast = step(u, v, a[:, None])
        assert np.array_equal(u[:, 0], lava.u) and np.array_equal(v[:, 0], lava.v)
        assert np.array_equal(s_fast[:, 0], s_lava)


def test_exact_float_sums_are_recognised():
    rng = np.random.default_rng(2)
    assert exact_sum_rows(rng.normal(size=(4, 48)).astype(np.float32)).all()
    assert exact_sum_rows(np.zeros((2, 3))).all()
    assert not exact_sum_rows(np.array([[1.0] + [2.0 ** -53] * 15]))[0]
    assert not exact_sum_rows(rng.normal(size=(1, 48)))[0]  # random float64 values


@pytest.mark.lava
def test_fast_is_the_default_backend_and_lava_one_flag_away():
    assert list_backends() == ["fast", "lava"]
    assert build_parser().parse_args(["d", "-o", "o"]).backend == "fast"
    assert build_parser().parse_args(["d", "-o", "o", "--backend", "lava"]).backend == "lava"
    assert inspect.signature(simulate).parameters["backend"].default == "fast"
    fast, lava = (inspect.signature(get_backend(n)) for n in ("fast", "lava"))
    assert list(fast.parameters) == list(lava.parameters)


def test_fast_stops_a_run_past_its_timeout_with_the_lava_backends_message():
    """What both backends refuse before a run is tested once for both (tests/test_backends.py); the deadline is each
    backend's own: fast checks it between chunks, with the message of Lava's child-process deadline."""
    net = random_network(0, 1, "mixed", np.float32)
    with pytest.raises(LorspError, match=r"^the fast fixed run exceeded --timeout 1e-09 s and was stopped") as info:
        get_backend("fast")(net, np.zeros((2, 1, net.input_size), np.uint8), mode="fixed", timeout=1e-9)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- against Lava runs
@pytest.mark.lava
@pytest.mark.slow
def test_generator_bundle_fast_equals_lava_in_both_modes(bundle):
    b = open_bundle(bundle)
    x, _ = load_split_images("sklearn-digits", 32, 12)
    spikes = b.host.encoding(x).numpy().astype(np.uint8)
    for mode in ("float", "fixed"):
        fast, lava = fast_and_lava(b.network, spikes, mode)
        assert_identical(fast, lava, mode)
        assert all(0 < s.sum() < s.size for s in fast)


@pytest.mark.lava
@pytest.mark.slow
def test_both_backends_report_steps_per_sample_and_lava_its_simulated_steps_apart():
    """``SimResult.steps`` is ``T`` for every backend (one report column); the Lava backend's own ``N T + L`` steps
    (samples back to back, one step of delay per layer) are ``details["simulated_steps"]``."""
    net = random_network(2, 3, "mixed", np.float32)
    spikes = random_inputs(2, net)
    T, N, _ = spikes.shape
    results = {name: get_backend(name)(net, spikes, mode="fixed", timeout=TIMEOUT) for name in ("fast", "lava")}
    assert {name: r.steps for name, r in results.items()} == {"fast": T, "lava": T}
    assert results["lava"].details["simulated_steps"] == N * T + 3 and T != N * T + 3
    assert_identical(results["fast"].layer_spikes, results["lava"].layer_spikes, "fixed")


@pytest.mark.lava
@pytest.mark.slow
@pytest.mark.parametrize("seed,depth,sign,dtype", RANDOM_NETWORKS,
                         ids=[f"seed{s}-depth{d}-{g}-{np.dtype(t).name}" for s, d, g, t in RANDOM_NETWORKS])
def test_random_network_fast_equals_lava_in_both_modes(seed, depth, sign, dtype):
    net = random_network(seed, depth, sign, dtype)
    spikes = random_inputs(seed, net)
    for mode in ("float", "fixed"):
        fast, lava = fast_and_lava(net, spikes, mode)
        assert_identical(fast, lava, f"{mode}, seed {seed}")
    assert sum(int(s.sum()) for s in fast) > 0


@pytest.mark.lava
@pytest.mark.slow
def test_threshold_compare_is_strict_v_equal_to_vth_does_not_spike():
    """8 inputs of weight 0.25, threshold 1 (fixed, at the exact scale 512: w = 128, vth = 512): 4 spiking inputs
    put v exactly on the threshold and do not fire; 5 do. One step per sample, so nothing is carried over."""
    net = SpikingNetwork(8, (make_layer("0", np.full((1, 8), 0.25), beta=0.0, threshold=1.0),))
    spikes = (np.arange(8)[None, None, :] < np.arange(9)[None, :, None]).astype(np.uint8)  # sample k: k inputs
    fx = quantise(net)[0]
    assert fx.scale == 512 and fx.weight.max() == 128 and fx.vth[0] == 4 * 128
    for mode in ("float", "fixed"):
        fast, lava = fast_and_lava(net, spikes, mode)
        assert_identical(fast, lava, mode)
        assert fast[0][0, :, 0].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1], mode


@pytest.mark.lava
@pytest.mark.slow
def test_fixed_current_wraps_around_at_24_bits_like_lava():
    """CubaLIF with alpha = 0.999 (du = 3) and 100 excitatory inputs: u grows past 2^23 and turns negative
    (Lava wraps the current, it does not saturate it); the float model never does."""
    net = SpikingNetwork(100, (make_layer("0", np.ones((1, 100)), alpha=0.999, beta=0.9, threshold=500.0),))
    spikes = np.ones((24, 2, 100), np.uint8)
    spikes[:, 1, 50:] = 0
    fast, lava = fast_and_lava(net, spikes, "fixed")
    assert_identical(fast, lava, "fixed")
    u, _ = fixed_trace(net, spikes)
    assert u.min() < 0 < u.max()  # only a wrap makes u negative under excitatory input
    float_spikes = get_backend("fast")(net, spikes, mode="float", timeout=TIMEOUT).layer_spikes[0]
    assert not np.array_equal(float_spikes, fast[0])


@pytest.mark.lava
@pytest.mark.slow
def test_fixed_voltage_saturates_at_24_bits_like_lava():
    """beta = 1 (dv = 0) and 30 steps of 50 inhibitory inputs (fixed, scale 128: -409,600 a step): v stops at
    -(2^23 - 1); 50 excitatory inputs then reach the threshold sooner than in the float model, which has no floor."""
    weight = np.concatenate([-np.ones((1, 50)), np.ones((1, 50))], axis=1)
    net = SpikingNetwork(100, (make_layer("0", weight, beta=1.0, threshold=100.0),))
    spikes = np.zeros((70, 1, 100), np.uint8)
    spikes[:30, :, :50] = 1
    spikes[30:, :, 50:] = 1
    fast, lava = fast_and_lava(net, spikes, "fixed")
    assert_identical(fast, lava, "fixed")
    _, v = fixed_trace(net, spikes)
    assert v.min() == -(M - 1)
    float_spikes = get_backend("fast")(net, spikes, mode="float", timeout=TIMEOUT).layer_spikes[0]
    assert np.argmax(fast[0][:, 0, 0]) < np.argmax(float_spikes[:, 0, 0])


@pytest.mark.lava
@pytest.mark.slow
def test_float_sums_follow_lavas_pairwise_order_not_a_matrix_product():
    """Lava's float Dense adds the weights of the spiking inputs with numpy's pairwise sum; a BLAS product adds in
    another order. For 1 and k times 2^-53 the two differ (which k, and which is larger, depends on the BLAS
    kernel: 1 + 16 ulp against 1 + 12 ulp for k = 15 on one machine, equal on another, so the test finds its k).
    With the threshold at the smaller sum exactly one order fires: fast sees the inexact row and fires as Lava."""
    for k in range(3, 64):
        weight = np.array([[1.0] + [2.0 ** -53] * k])
        product = (np.ones((1, k + 1)) @ weight.T)[0, 0]
        pairwise = weight[:, np.ones(k + 1, bool)].sum(axis=1)[0]  # PyDenseModelFloat's expression
        if product != pairwise:
            break
    else:
        pytest.skip("this BLAS sums 1 + k 2^-53 in numpy's pairwise order for every k < 64")
    threshold = min(product, pairwise)
    assert not exact_sum_rows(weight)[0]  # so fast takes the per-step path in Lava's order
    net = SpikingNetwork(k + 1, (make_layer("0", weight, threshold=threshold, dtype=np.float64),))
    spikes = np.ones((3, 2, k + 1), np.uint8)
    spikes[:, 1, 3] = 0
    fast, lava = fast_and_lava(net, spikes, "float")
    assert_identical(fast, lava, "float")
    assert fast[0][0, 0, 0] == int(pairwise > threshold) != int(product > threshold)


@pytest.mark.lava
@pytest.mark.slow
def test_lava_layer_k_lags_k_plus_1_steps_and_fires_on_bias_while_the_pipeline_fills():
    """On Lava's own step index: layer k's spikes of column c are at sink index c + k + 1 (one step of Dense
    delay per layer). Before the first column arrives (indices 0 .. k) and after the last (the L drain steps),
    a layer with a strong bias fires on its bias alone; the pipelined reset discards the first, the backends
    never read the second, and fast, which starts every sample from rest, agrees on everything between."""
    rng = np.random.default_rng(3)
    net = SpikingNetwork(6, (make_layer("0", rng.normal(size=(5, 6)), bias=[3.0, 0, 0, 0, -1], beta=0.9),
                             make_layer("1", np.abs(rng.normal(size=(3, 5))), bias=0.2, beta=0.8)))
    spikes = (rng.random((5, 3, 6)) < 0.5).astype(np.uint8)
    layers = lava_layers(net, "fixed")
    recorded = lava_sinks(layers, spikes, "fixed_pt")
    expected = fast_timeline(layers, spikes, "fixed", net.input_size)
    got = lava_window(layers, recorded, spikes.shape[0] * spikes.shape[1])
    assert all(np.array_equal(g, e) for g, e in zip(got, expected))
    assert recorded[0][0][0, 0] != 0 and expected[0][0, 0] == 0  # layer 0, neuron 0, Lava step 1: bias only
    assert recorded[0][0][0, -1] != 0  # and on the last drain step


@pytest.mark.lava
@pytest.mark.slow
def test_even_weight_rule_and_sign_mode_per_dense_block_in_a_real_lava_run():
    """Odd weights handed to Lava as they are: a mixed-sign Dense block drops the lowest bit (towards minus
    infinity), a one-sign block of the same layer keeps it (each Dense decides its own sign mode), and a
    dendritic sum of 200 x 254 > 2^15 passes whole (no 16-bit cut). fast equals Lava; the raw weights don't."""
    rng = np.random.default_rng(4)
    w0 = np.zeros((4, 200), np.int32)
    w0[0] = 255                                   # with row 1 a mixed block: 254 each, sum 50800 < vth 50900
    w0[1, :8] = [255, -255, 3, -3, 101, -101, 1, -1]
    w0[2, :10] = rng.integers(0, 128, size=10) * 2 + 1  # excitatory block: odd weights kept
    w0[3] = 255                                   # 200 x 255 = 51000 > 2^15: no 16-bit cut of the sum
    w1 = np.array([[3, 1, -3, 7], [255, 5, 5, -255]], np.int32)  # block from group A excitatory, from B mixed
    dense = lambda w, groups: LavaLayer(w, np.zeros(len(w), np.int32), np.full(len(w), 6, np.int32),  # noqa: E731
                                        groups)
    layers = [dense(w0, (NeuronGroup(np.array([0, 1]), 4095, 4095, 50900), NeuronGroup(np.array([2, 3]), 4095, 0,
                                                                                           1000))),
              dense(w1, (NeuronGroup(np.array([0, 1]), 4095, 4095, 3),))]
    spikes = (rng.random((6, 4, 200)) < 0.6).astype(np.uint8)
    spikes[:, 0] = 1
    recorded = lava_sinks(layers, spikes, "fixed_pt")
    expected = fast_timeline(layers, spikes, "fixed", 200)
    chain = chain_graph(layers, "fixed", 200)
    raw = replace(chain, nodes=[replace(c, op=fixed_dense(c.node.node.weight)) if c.node.kind == "Dense" else c
                                for c in chain.nodes])  # Lava's weight rule left out
    naive = [lava_timeline(s, k, 2) for k, s in enumerate(run_chain(raw, spikes))]
    lava = lava_window(layers, recorded, spikes.shape[0] * spikes.shape[1])
    assert all(np.array_equal(a, b) for a, b in zip(lava, expected))
    assert not all(np.array_equal(a, b) for a, b in zip(lava, naive))
    assert lava[0][0].sum() == 0 and naive[0][0].sum() > 0  # 200 x 254 stays below vth, 200 x 255 would not
    assert lava[0][3, 1:7].all() and lava[1].sum() > 0  # sample 0 (steps 1-6, all inputs on): 51000 << 6 fires


@pytest.mark.lava
@pytest.mark.slow
def test_cli_fast_and_lava_reports_have_identical_spike_and_synop_fields(bundle, tmp_path):
    reports = {}
    for backend in ("fast", "lava"):
        out = tmp_path / backend
        extra = [] if backend == "fast" else ["--backend", "lava"]  # fast is the default
        proc = run_cli("hw_sim.cli", str(bundle), "--samples", "6", "-o", str(out), "--quiet", *extra)
        assert proc.returncode == 0, proc.stderr[-2000:]
        reports[backend] = json.loads((out / "report.json").read_text())
    fast, lava = reports["fast"], reports["lava"]
    assert (fast["backend"], lava["backend"]) == ("fast", "lava") and fast["modes"] == lava["modes"] == ["float",
                                                                                                          "fixed"]
    for mode in ("float", "fixed"):
        f, r = fast["runs"][mode], lava["runs"][mode]
        assert f["activity"] == r["activity"], mode  # spikes, firing rates, synops, neuron updates per image
        assert f["fidelity"]["spikes"] == r["fidelity"]["spikes"] and f["energy"] == r["energy"], mode
        assert fast["raster"][mode] == lava["raster"][mode], mode
        assert math.isclose(sum(f["activity"]["synops_per_image"]), f["activity"]["synops_total_per_image"])


@pytest.mark.parametrize("mode", ["float", "fixed"])
def test_the_chain_is_the_graph_runners_compiled_form_and_runs_step_by_step_as_node_by_node(mode):
    """fast compiles a network into the graph interpreter's CompiledGraph (input -> Dense -> LIF -> ...) and runs it
    node by node; hw_sim.graph.runner's step-by-step schedule (the NIR path's) gives every spike the same, on the
    random corpus, the float64 network that sums in Lava's order among them."""
    from hw_sim.graph.runner import CompiledGraph, run_graph

    for seed, depth, sign, dtype in RANDOM_NETWORKS:
        net = random_network(seed, depth, sign, dtype)
        spikes = random_inputs(seed, net)
        compiled = chain_graph(lava_layers(net, mode), mode, net.input_size)
        assert isinstance(compiled, CompiledGraph)
        assert [c.node.kind for c in compiled.nodes] == ["Input"] + ["Dense", "CubaLIF"] * depth
        names = [f"layer{k}" for k in range(depth)]
        step = run_graph(compiled, spikes, record=names, count=False, output_dtype=np.uint8, by_node=False)
        fast = get_backend("fast")(net, spikes, mode=mode, timeout=TIMEOUT)
        for name, got in zip(names, fast.layer_spikes):
            assert np.array_equal(step.outputs[name], got), (seed, name)
        if dtype == np.float64 and mode == "float":
            assert "Lava's order, per step" in fast.details["float_sums"]


def test_the_dense_sum_wraps_through_lavas_int32_channel():
    """A bit-accurate Dense sends its int64 sum through an int32 channel: 3 x 2^30 arrives as -2^30 (Lava's
    ``CspSendPort`` copies into the source port's int32 buffer); a sum within int32 arrives whole."""
    dense = fixed_dense(np.array([[2 ** 30, 2 ** 30, 2 ** 30], [2 ** 20, 1, 0]]))
    a = dense(torch.ones((1, 3)))
    assert a.tolist() == [[-(2 ** 30), 2 ** 20 + 1]]
    assert np.array_equal(a.numpy(), (np.array([[3 * 2 ** 30, 2 ** 20 + 1]]).astype(np.int64).astype(np.int32)))


@pytest.mark.parametrize("mode", ["float", "fixed"])
def test_the_chain_is_compiled_once_per_network_and_gives_the_same_spikes(mode):
    from hw_sim.backends import fast

    network = random_network(7, 2, "mixed", np.float32)
    twin = SpikingNetwork(network.input_size, network.layers)  # equal, but another object
    spikes = random_inputs(7, network)
    run = get_backend("fast")
    first = run(network, spikes, mode=mode, timeout=60)
    again = run(network, spikes, mode=mode, timeout=60)
    assert not first.details["build_reused"] and again.details["build_reused"]
    assert fast.compiled_chain(network, mode) is fast.compiled_chain(network, mode)
    assert fast.compiled_chain(twin, mode) is not fast.compiled_chain(network, mode)
    fresh = run_chain(chain_graph(lava_layers(network, mode), mode, network.input_size), spikes)
    for a, b, c in zip(first.layer_spikes, again.layer_spikes, fresh):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    key = (id(twin), mode)
    del twin
    assert key not in fast._COMPILED  # the entry goes with its network
