"""LoRSP's pixel gating (``--gate pixel``): one spiking gate per pixel, fed by the image and the prompt's magnitude."""
import pytest
import torch
import torch.nn.functional as F

from lorsp.data import create_splits
from lorsp.metrics import spiking_layer_stats, unique_mask_share, zero_masks
from lorsp.prompts import create_prompt
from lorsp.prompts.grid import GRID_STEP
from lorsp.prompts.pixel_gates import OPEN_DRIVE, run_zero_reset
from tests.conftest import assert_one_line_error, run_cli

L, R = 32, 4


@pytest.fixture(scope="module")
def images():
    splits = create_splits("mnist-5k", L, limit_test=16)
    return torch.stack([splits.test[i][0] for i in range(16)])


def pixel_prompt(bias: float | None = None, **options) -> torch.nn.Module:
    """A pixel-gated prompt with nonzero factors (as after training); ``bias`` lowers the gates' drive."""
    torch.manual_seed(0)
    p = create_prompt("lorsp", image_size=L, rank=R, gate="pixel", train_generator="all", **options)
    with torch.no_grad():
        p.B.normal_()
        p.spiking_generator.conv.weight.mul_(4.0)
        if bias is not None:
            p.spiking_generator.conv.bias.fill_(bias)
    return p.eval()


@pytest.mark.parametrize("beta, threshold", [(0.5, 1.0), (0.9, 0.25), (0.0, 2.0)])
def test_the_gates_lean_steps_equal_the_snntorch_module_forward_and_backward(beta, threshold):
    torch.manual_seed(0)
    gates = pixel_prompt(beta=beta, threshold=threshold).spiking_generator
    currents = torch.randn(8, 4, 64) * threshold
    currents[:, 0, :8] = threshold   # at the threshold exactly: no spike
    currents[0, 1, :8] = threshold * (1 + 2 ** -20)
    lean_in, module_in = currents.clone().requires_grad_(), currents.clone().requires_grad_()
    lean = run_zero_reset(gates.neurons, lean_in)
    gates.neurons.reset_mem()
    stepped = torch.stack([gates.neurons(c) for c in module_in.unbind(0)])
    assert torch.equal(lean, stepped) and 0 < float(lean.detach().mean()) < 1
    weights = torch.randn_like(currents)
    (lean * weights).sum().backward()
    (stepped * weights).sum().backward()
    assert torch.equal(lean_in.grad, module_in.grad) and float(lean_in.grad.abs().sum()) > 0


def test_the_gates_start_open_so_the_prompt_starts_as_its_dense_twin(images):
    closed = []
    for seed in range(12):  # the start's weights are random: nearly every draw opens every gate (docs/method.md)
        torch.manual_seed(seed)
        p = create_prompt("lorsp", image_size=L, rank=R, gate="pixel", train_generator="all").eval()
        with torch.no_grad():
            p.B.normal_()  # a trained-like prompt, the generator at its start
            assert float(p.spiking_generator.conv.bias) == OPEN_DRIVE
            if seed == 0:
                assert torch.equal(p(images), p.low_rank_prompt().expand_as(images))
            closed.append(float((p.run_generator(images).rates == 0).float().mean()))
    assert max(closed) <= 0.005


def test_zeros_are_exactly_the_silent_gates_and_the_closed_share_counts_them(images):
    p = pixel_prompt(bias=-0.5)
    with torch.no_grad():
        trace = p.run_generator(images)
        out = p.prompt_from_rates(trace.rates)
    silent = (trace.rates == 0).view(-1, L, L)
    assert silent.any() and (~silent).any()
    assert torch.equal(zero_masks(out), silent)  # the dense prompt has no exact zero of its own here
    assert torch.allclose(p.closed_share(p.gates_open(trace.rates)), silent.flatten(1).float().mean(1))
    assert torch.equal(p.open_pixels(trace.gate_spikes), ~silent)


def test_each_image_gets_a_mask_of_its_own_from_its_own_content(images):
    p = pixel_prompt(bias=-0.5)
    with torch.no_grad():
        masks = zero_masks(p(images))
        assert unique_mask_share(masks) == 1.0
        p.spiking_generator.conv.weight.zero_()  # without the image's part, every image gets the same mask
        assert unique_mask_share(zero_masks(p(images))) == 0.0


def test_the_drive_follows_the_prompt_magnitude(images):
    """With the image's part off, the gates that fire are those where the prompt is strongest."""
    p = pixel_prompt(bias=-1.0)
    with torch.no_grad():
        p.spiking_generator.conv.weight.zero_()
        p.spiking_generator.kappa.fill_(1.0)
        open_ = ~zero_masks(p(images[:1]))[0]
        m = p.magnitude()
    assert open_.any() and (~open_).any()
    assert m[open_].min() >= m[~open_].max()


def test_a_learning_generator_computes_on_the_grid(images):
    p = pixel_prompt(bias=-0.3)
    with torch.no_grad():
        p.spiking_generator.kappa.fill_(0.7)  # off the grid: the forward pass snaps it (and the drive)
        drive = p.spiking_generator.drive(p.magnitude(), grid=True)
    assert torch.equal(torch.round(drive / GRID_STEP) * GRID_STEP, drive)
    p.settle()
    assert (k := float(p.spiking_generator.kappa.detach())) / GRID_STEP == round(k / GRID_STEP)


def test_the_sparsity_term_pulls_each_image_to_the_target(images):
    p = pixel_prompt(sparsity_target=0.5, sparsity_weight=1.0)
    p.train()
    out = p.output(images)
    closed = float(p.closed_share(p.gates_open(out.trace.rates)).mean())
    assert closed < 0.5  # the start: every gate open
    term = p.loss_terms(out, epoch=10.0)
    term.backward()
    assert p.spiking_generator.conv.bias.grad > 0  # a lower drive closes gates: gradient descent lowers it


def test_synops_count_every_input_spike_times_the_gates_it_reaches(images):
    p = pixel_prompt(bias=-0.5)
    with torch.no_grad():
        p.spiking_generator.conv.weight[0, 1, 0, 2] = 0.0  # one zero weight: fewer synapses from channel 1
        trace = p.run_generator(images[:3])
    w = p.spiking_generator.conv.weight[0]
    s = trace.input_spikes.view(-1, 3, 3, L, L)  # (T, N, 3, L, L)
    brute = torch.zeros(3, dtype=torch.float64)
    for c in range(3):
        for dy in range(3):
            for dx in range(3):
                if w[c, dy, dx] == 0:
                    continue
                # input pixel (i, j) reaches gate (i - dy + 1, j - dx + 1) when that gate is inside the image
                reach = F.pad(torch.ones(L, L), (1, 1, 1, 1))[2 - dy: 2 - dy + L, 2 - dx: 2 - dx + L]
                brute += (s[:, :, c] * reach).sum(dim=(0, 2, 3)).double()
    assert torch.equal(p.spiking_generator.synops_per_sample(trace.input_spikes), brute)
    stats = spiking_layer_stats(p.spiking_generator, trace.input_spikes, list(trace.layer_spikes))
    assert float(stats["synops/0"]) == float(brute.sum())


def test_the_host_file_carries_the_gates_and_their_spike_code(images):
    # pixel gating has a chip export now (tests/test_pixel_bundle.py): the host file holds what rebuilds its gates
    p = pixel_prompt(bias=-0.5, pixel_code="latency")
    tensors, metadata = p.host_state()
    gates = p.spiking_generator
    assert metadata == {"gate": "pixel", "encoding": "pool", "factors": p.factors, "code": "latency"}
    assert tensors["prompt.spiking_generator.conv.weight"] is gates.conv.weight
    assert tensors["prompt.spiking_generator.conv.bias"] is gates.conv.bias
    assert tensors["prompt.spiking_generator.kappa"] is gates.kappa
    assert p.chip_refusal() is None


def test_options_of_the_line_generators_are_refused_under_pixel_gating(tmp_path):
    r = run_cli("lorsp.train", "--dataset", "sklearn-digits", "--prompt", "lorsp", "--gate", "pixel",
                "--hidden", "8", "--out", str(tmp_path / "x"))
    assert_one_line_error(r, "--hidden does not apply to --gate pixel")


def test_without_the_image_every_image_gets_the_mask_of_the_drive_alone(images):
    p = pixel_prompt(bias=-1.0, pixel_input="none")
    assert not p.spiking_generator.conv.weight.requires_grad and p.spiking_generator.kappa.requires_grad
    with torch.no_grad():
        masks = zero_masks(p(images))
    assert masks[0].any() and (~masks[0]).any() and bool((masks == masks[:1]).all())


def test_the_latency_code_sends_each_pixel_at_most_once_and_the_gates_read_it(images):
    rate, latency = pixel_prompt(bias=-0.5), pixel_prompt(bias=-0.5, pixel_code="latency")
    with torch.no_grad():
        s_rate, s_lat = rate.run_generator(images[:4]), latency.run_generator(images[:4])
    counts = rate.encoding.counts(images[:4])
    assert torch.equal(s_rate.input_spikes.sum(0), counts.float())          # rate: k spikes
    assert torch.equal(s_lat.input_spikes.sum(0), (counts > 0).float())     # latency: one spike when k > 0
    assert s_lat.input_spikes.sum() < s_rate.input_spikes.sum()
    assert not torch.equal(s_lat.gate_spikes, s_rate.gate_spikes)           # the gates read the code they get
    assert latency.encoding.code == "latency" and rate.encoding.code == "rate"


def test_a_wider_kernel_keeps_the_image_size_and_an_even_one_is_refused(images, tmp_path):
    p = pixel_prompt(bias=-0.5, pixel_kernel=5)
    assert tuple(p.spiking_generator.conv.weight.shape) == (1, 3, 5, 5)
    with torch.no_grad():
        assert p(images[:2]).shape == (2, 3, L, L)
    r = run_cli("lorsp.train", "--dataset", "sklearn-digits", "--prompt", "lorsp", "--gate", "pixel",
                "--pixel-kernel", "4", "--out", str(tmp_path / "x"))
    assert_one_line_error(r, "--pixel-kernel must be odd")
    r = run_cli("lorsp.train", "--dataset", "sklearn-digits", "--prompt", "lorsp", "--gate", "band", "--pixel-code",
                "latency", "--out", str(tmp_path / "y"))
    assert_one_line_error(r, "--pixel-code does not apply to --gate band")
