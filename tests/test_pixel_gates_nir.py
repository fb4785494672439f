"""LoRSP's pixel gates as a NIR graph (export/nir_pixel.py) on lorsp's graph simulator, float and fixed point.

A pixel-gated LoRSP prompt (``gate="pixel"``, ``train_generator="all"``, so every value is on the
grid 2^-5) with random factors, its drive lowered until about half the gates fire on real
sklearn-digits test images, is written with ``nir.write`` and read back with ``nir.read``:
``Input -> Conv2d (bias 0) -> LIF (per-neuron v_leak) -> Output``. The float graph interpreter gives
PyTorch's gate spikes (``prompt.run_generator(x).gate_spikes``) on every step, neuron and sample; the
general fixed-point path carries the drive as each compartment's bias and gives the same spikes bit
for bit, and its integers step as Lava's bit-accurate LIF in numpy int32. Nothing here trains.
"""
from __future__ import annotations

import json
import subprocess
import sys

import nir
import numpy as np
import pytest
import torch

from deploy.fixed_point import BIAS_EXP, integer_bias
from deploy.nir_graph import flat_graph
from export.nir_pixel import encoded_input, pixel_gate_parameters, pixel_gates_graph, write_pixel_gates_nir
from hw_sim.graph.fixed import fixed_run
from hw_sim.graph.fixed_graph import compile_fixed
from hw_sim.graph.fixed_neurons import scaled_bias
from hw_sim.graph.runner import compile_graph, run_graph
from hw_sim.graph.simulate import load_graph
from lorsp.data import load_split_images
from lorsp.plumbing.errors import LorspError
from lorsp.prompts.grid import GRID_STEP
from lorsp.prompts.lorsp import LowRankSpikePrompt
from tests.conftest import ROOT, assert_one_line_error, run_cli
from tests.test_hwsim_nir_fixed import lava_int32_step

SIDE, SAMPLES = 16, 8


def fired_share(prompt: LowRankSpikePrompt, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float(prompt.run_generator(x).gate_spikes.any(0).float().mean())


def pixel_prompt(x: torch.Tensor, seed: int = 0) -> LowRankSpikePrompt:
    """Random factors, a convolution four times the start's, ``kappa = 1/4``, and the convolution's bias lowered on
    the grid (bisection) until about half the gates fire on ``x``."""
    torch.manual_seed(seed)
    prompt = LowRankSpikePrompt(SIDE, gate="pixel", train_generator="all")
    gates = prompt.spiking_generator
    with torch.no_grad():
        prompt.B.normal_(0.0, 0.1)
        gates.conv.weight.mul_(4.0)
        gates.kappa.fill_(0.25)
        low, high = -64, 64  # the bias in grid steps: all closed at low, all open at high
        while high - low > 1:
            mid = (low + high) // 2
            gates.conv.bias.fill_(mid * GRID_STEP)
            low, high = (mid, high) if fired_share(prompt, x) < 0.5 else (low, mid)
        gates.conv.bias.fill_(high * GRID_STEP)
        prompt.settle()
    return prompt


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The prompt, the images' input spikes ``(T, N, 3, L, L)``, PyTorch's gate spikes ``(T, N, 1, L, L)`` and the
    written graph's path."""
    x, _ = load_split_images("sklearn-digits", SIDE, SAMPLES)
    prompt = pixel_prompt(x)
    with torch.no_grad():
        reference = prompt.run_generator(x).gate_spikes.numpy()
    steps = reference.shape[0]
    path = tmp_path_factory.mktemp("pixel") / "gates.nir"
    write_pixel_gates_nir(prompt, path)
    return prompt, encoded_input(prompt, x), reference.reshape(steps, SAMPLES, 1, SIDE, SIDE), path


def test_about_half_of_the_gates_fire_and_each_image_has_its_own_mask(setup):
    prompt, x, reference, _ = setup
    fired = reference.any(0)  # (N, 1, L, L)
    assert prompt.learns and x.shape == (8, SAMPLES, 3, SIDE, SIDE)
    assert 0.35 <= fired.mean() <= 0.65, fired.mean()
    assert len({m.tobytes() for m in fired}) == SAMPLES  # the image part of the current matters
    assert 0 < reference.mean() < fired.mean()  # not every fired gate fires every step


def test_the_file_holds_conv_and_lif_with_the_drive_as_v_leak(setup):
    prompt, _, _, path = setup
    graph = nir.read(path)
    params = pixel_gate_parameters(prompt)
    assert [type(graph.nodes[n]).__name__ for n in ("input", "conv", "gates", "output")] == \
        ["Input", "Conv2d", "LIF", "Output"]
    assert sorted(graph.edges) == sorted([("input", "conv"), ("conv", "gates"), ("gates", "output")])
    conv, lif = graph.nodes["conv"], graph.nodes["gates"]
    dt = float(graph.metadata["dt"])
    assert np.array_equal(conv.weight, params.weight) and not np.any(conv.bias)
    assert lif.tau.shape == (1, SIDE, SIDE) and np.all(lif.tau == 2 * dt) and np.all(lif.r == 2.0)
    assert np.array_equal(lif.v_leak, 2.0 * params.drive.astype(np.float64)) and not np.any(lif.v_reset)
    # the drive is per neuron, on the grid, and not one value: the magnitude map differs between pixels
    assert np.all(params.drive / GRID_STEP == np.round(params.drive / GRID_STEP)) and np.unique(params.drive).size > 4


def test_the_float_run_gives_pytorchs_gate_spikes_on_every_step_neuron_and_sample(setup):
    _, x, reference, path = setup
    compiled, dt, origin = load_graph(path, None)
    assert dt == 1e-4 and origin == "graph metadata"
    got = run_graph(compiled, x, record=["gates"]).outputs["gates"]
    assert got.shape == reference.shape and np.array_equal(got, reference)
    # the drive is read: without the leak the same graph gives other spikes
    graph = nir.read(path)
    graph.nodes["gates"].v_leak = np.zeros_like(graph.nodes["gates"].v_leak)
    without = run_graph(compile_graph(flat_graph(graph), dt), x, record=["gates"]).outputs["gates"]
    assert not np.array_equal(without, reference)


def test_norse_reads_the_leak_per_step_alike_but_starts_at_v_leak_and_drops_r(setup):
    """Norse 1.1.0 (``from_nir``: ``LIFBoxCell``, ``v += dt/tau (x + v_leak - v)``) reads ``v_leak`` as lorsp's runner
    does, step for step: from rest, with the input times ``r``, its step gives PyTorch's spikes. Its import runs
    another model of the file: it starts each neuron at ``v_leak`` and drops ``r`` (with a warning)."""
    norse_lif = pytest.importorskip("norse.torch.functional.lif_box")
    _, x, reference, path = setup
    graph = nir.read(path)
    conv, lif = graph.nodes["conv"], graph.nodes["gates"]
    dt = float(graph.metadata["dt"])
    params = norse_lif.LIFBoxParameters(tau_mem_inv=torch.as_tensor(1.0 / lif.tau, dtype=torch.float32),
                                        v_leak=torch.as_tensor(lif.v_leak, dtype=torch.float32),
                                        v_th=torch.as_tensor(lif.v_threshold, dtype=torch.float32),
                                        v_reset=torch.as_tensor(lif.v_reset, dtype=torch.float32))
    r = torch.as_tensor(lif.r, dtype=torch.float32)
    weight = torch.as_tensor(conv.weight)

    def norse_run(v0: torch.Tensor, gain: torch.Tensor | float) -> np.ndarray:
        state, out = norse_lif.LIFBoxFeedForwardState(v=v0), []
        for st in torch.from_numpy(x):
            z, state = norse_lif.lif_box_feed_forward_step(
                gain * torch.nn.functional.conv2d(st, weight, padding=1), state, params, dt)
            out.append(z)
        return torch.stack(out).numpy()

    rest = torch.zeros(SAMPLES, 1, SIDE, SIDE)
    assert np.array_equal(norse_run(rest, r), reference)
    assert not np.array_equal(norse_run(params.v_leak.expand(SAMPLES, -1, -1, -1).clone(), r), reference)
    assert not np.array_equal(norse_run(rest, 1.0), reference)


def test_fixed_point_carries_the_drive_as_each_compartments_bias_and_equals_float(setup):
    _, x, reference, path = setup
    compiled, _, _ = load_graph(path, None)
    run = fixed_run(compiled, x, timeout=120, required=True)
    assert run.block["path"] == "general"
    (row,) = run.block["per_node"]
    assert row["node"] == "gates" and row["exact"] and row["agreement"] == 1.0
    assert np.array_equal(run.outputs["output"], reference)
    op = compile_fixed(compiled)["gates"].op
    scale = op.scale
    drive = compiled["gates"].op.leak.double().numpy().reshape(-1)
    assert scale == 2.0 ** round(np.log2(scale)) and scale * GRID_STEP >= 2  # power of two: even integers
    assert np.array_equal(op.bias.numpy(), scaled_bias(scale * drive, np.full(drive.size, BIAS_EXP)))


@pytest.mark.parametrize("on_grid", [True, False])
def test_the_fixed_gates_step_as_lavas_bit_accurate_lif_in_numpy_int32(setup, on_grid):
    """The integer dendrite input (the fixed ``Conv2d``'s output) through Lava's bit-accurate step in numpy int32
    with each neuron's bias ``round(s drive) << 6``: the same spikes bit for bit, on the grid and with a drive off
    it (which rounds)."""
    prompt, x, _, path = setup
    graph = nir.read(path)
    if not on_grid:
        graph.nodes["gates"].v_leak = graph.nodes["gates"].v_leak + np.random.default_rng(3).uniform(
            -0.01, 0.01, graph.nodes["gates"].v_leak.shape)
    compiled = compile_graph(flat_graph(graph), 1e-4)
    fixed = compile_fixed(compiled)
    op = fixed["gates"].op
    drive = compiled["gates"].op.leak.double().numpy().reshape(-1)
    bias = scaled_bias(integer_bias(drive, op.scale), np.full(drive.size, BIAS_EXP))
    assert np.array_equal(op.bias.numpy(), bias)
    assert np.array_equal(bias / 64 / op.scale, drive) == on_grid  # off the grid the bias rounds
    got = run_graph(fixed, x, record=["conv", "gates"]).outputs
    steps, n = x.shape[:2]
    size = SIDE * SIDE
    v_factor = np.full(size, 4096, np.int64) if op.v_factor is None else (op.v_factor.numpy() * 4096).astype(np.int64)
    assert np.all(v_factor == 2048)  # beta = 1/2
    u, v = np.zeros((n, size), np.int32), np.zeros((n, size), np.int32)
    for t in range(steps):
        a = got["conv"][t].reshape(n, size)
        assert np.array_equal(a, np.round(a))  # integers
        expected = lava_int32_step(u, v, a.astype(np.int64), np.zeros(size, np.int64), v_factor,
                                   bias.astype(np.int32), op.vth.numpy().astype(np.int64))
        assert np.array_equal(got["gates"][t].reshape(n, size).astype(bool), expected), t
    assert got["gates"].sum() > 0


def test_a_leak_on_a_node_whose_gain_differs_between_neurons_is_divided_by_each_neurons_share():
    """``LIF`` with ``r`` of 2, 1, 1/2 per neuron (``beta = 1/2``, so gains 1, 1/2, 1/4) and a dyadic ``v_leak`` of
    both signs: each neuron's voltage over its share ``h`` takes ``l / h`` a step, so fixed equals float spike
    for spike; adding ``l`` undivided would not."""
    rng = np.random.default_rng(21)
    n, dt = 12, 1e-4
    shape = (n,)
    lif = nir.LIF(tau=np.full(shape, 2 * dt), r=np.tile([2.0, 1.0, 0.5], n // 3), v_threshold=np.ones(shape),
                  v_leak=rng.integers(-4, 9, n) / 16, v_reset=np.zeros(shape))
    graph = nir.NIRGraph(nodes={"in": nir.Input(np.array([6])),
                                "w": nir.Linear((rng.integers(-6, 10, (n, 6)) / 8).astype(np.float32)),
                                "lif": lif, "out": nir.Output(np.array([n]))},
                         edges=[("in", "w"), ("w", "lif"), ("lif", "out")], type_check=False)
    compiled = compile_graph(flat_graph(graph), dt)
    x = (np.random.default_rng(22).random((8, 16, 6)) < 0.4).astype(np.float32)
    run = fixed_run(compiled, x, timeout=60, required=True)
    (row,) = run.block["per_node"]
    assert run.block["path"] == "general" and row["exact"] and row["spikes_per_sample"] > 4, row
    op = compile_fixed(compiled)["lif"].op
    share = np.tile([1.0, 0.5, 0.25], n // 3)
    assert np.array_equal(op.bias.numpy(), 64 * op.scale * (lif.v_leak / 2) / share)


def test_a_nonzero_v_reset_is_still_refused_in_one_line(setup):
    _, _, _, path = setup
    graph = nir.read(path)
    graph.nodes["gates"].v_reset = np.full_like(graph.nodes["gates"].v_reset, 0.25)
    with pytest.raises(LorspError, match=r"^LIF node 'gates' has a nonzero v_reset; Loihi's LIF resets to 0$"):
        compile_fixed(compile_graph(flat_graph(graph), 1e-4))


def test_only_a_pixel_gated_prompt_has_this_graph(setup):
    prompt, _, _, _ = setup
    with pytest.raises(LorspError, match=r"^the pixel gates' NIR graph needs a LoRSP prompt with --gate pixel, "
                                         r"got 'band'$"):
        pixel_gate_parameters(LowRankSpikePrompt(SIDE, gate="band"))
    params = pixel_gate_parameters(prompt)
    with pytest.raises(LorspError, match=r"^the gates' beta is 1; NIR's LIF needs a finite tau"):
        pixel_gates_graph(type(params)(**{**params.__dict__, "beta": 1.0}))


def test_lorsp_hwsim_runs_the_written_graph_and_writes_its_report(setup, tmp_path):
    _, x, reference, path = setup
    np.savez(tmp_path / "spikes.npz", spikes=x)
    out = tmp_path / "report"
    proc = run_cli("hw_sim.cli", str(path), "--input", str(tmp_path / "spikes.npz"), "--mode", "both", "-o",
                   str(out), "--quiet", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["input"]["steps"] == x.shape[0] and report["input"]["samples"] == SAMPLES
    assert report["runs"]["fixed"]["path"] == "general" and report["runs"]["fixed"]["overall"] == 1.0
    with np.load(out / "outputs.npz") as arrays:
        assert np.array_equal(arrays["output"], reference) and np.array_equal(arrays["fixed.output"], reference)
    assert (out / "report.md").is_file() and (out / "report.html").is_file()


@pytest.mark.slow
def test_the_example_runs_a_trained_pixel_checkpoint_and_refuses_a_band_one(tmp_path):
    """examples/nir_pixel_gates.py on a tiny trained checkpoint (sklearn-digits, 32 x 32, one epoch of 64 images,
    the generator learning): the simulator's float and fixed-point gate spikes equal PyTorch's; a band-gated
    checkpoint is refused in one line."""
    tiny = ["--prompt", "lorsp", "--dataset", "sklearn-digits", "--image-size", "32", "--epochs", "1",
            "--limit-train", "64", "--limit-test", "16", "--batch-size", "16", "--quiet"]
    for gate in ("pixel", "band"):
        proc = run_cli("lorsp.train", *tiny, "--gate", gate, "--train-generator", "all",
                       "--out", str(tmp_path / gate))
        assert proc.returncode == 0, proc.stderr[-2000:]
    example = [sys.executable, str(ROOT / "examples" / "nir_pixel_gates.py")]
    done = subprocess.run([*example, str(tmp_path / "pixel" / "model.pt"), "-o", str(tmp_path / "out"),
                           "--samples", "16"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["float_equal_pytorch"] and summary["fixed_equal_pytorch"] and summary["fixed_path"] == "general"
    assert 0 < summary["gates_fired_share"] and summary["samples"] == 16 and summary["image_size"] == 32
    with np.load(tmp_path / "out" / "pytorch_gate_spikes.npz") as arrays:
        assert arrays["gate_spikes"].shape == (summary["steps"], 16, 1, 32, 32)
    refused = subprocess.run([*example, str(tmp_path / "band" / "model.pt"), "-o", str(tmp_path / "no")],
                             capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert_one_line_error(refused, "the pixel gates' NIR graph needs a LoRSP prompt with --gate pixel, got 'band'")
    assert not (tmp_path / "no").exists()
