"""LoRSP's defining properties, on real images."""
import pytest
import snntorch as snn
import torch

import lorsp
from lorsp.data import create_splits
from lorsp.encoding import encode, spike_counts, spike_train
from lorsp.errors import LorspError
from lorsp.model import build_model
from lorsp.prompts import create_prompt
from lorsp.prompts.lorsp import run_generator
from tests.conftest import assert_one_line_error, run_cli

L, R = 32, 4


@pytest.fixture(scope="module")
def images():
    splits = create_splits("mnist-5k", L, limit_test=16)
    return torch.stack([splits.test[i][0] for i in range(16)])


@pytest.fixture()
def trained_like_prompt():
    """A LoRSP prompt as after training: nonzero factors (B = 0 at init gives an all-zero prompt) and gates
    that stay silent on part of each image (every gate fires at init, before the sparsity term acts)."""
    torch.manual_seed(0)
    p = create_prompt("lorsp", image_size=L, rank=R, gate_bias=0.2).eval()
    with torch.no_grad():
        p.B.normal_()
    return p


def test_rank_is_at_most_r_for_every_image_and_channel(trained_like_prompt, images):
    with torch.no_grad():
        out = trained_like_prompt(images)
    assert out.shape == images.shape
    for n in range(len(images)):
        for c in range(3):
            assert torch.linalg.matrix_rank(out[n, c]) <= R


def test_exact_zeros_follow_silent_gates(trained_like_prompt, images):
    with torch.no_grad():
        out = trained_like_prompt(images)
        g = trained_like_prompt.gate_rates(images)
    assert (out == 0).float().mean() > 0.2  # a large share of exact zeros
    rows = g[:, :16][:, trained_like_prompt.group_of_line]
    cols = g[:, 16:][:, trained_like_prompt.group_of_line]
    silent = (rows[:, :, None] == 0) | (cols[:, None, :] == 0)  # (N, L, L)
    assert torch.all(out.abs().amax(1)[silent] == 0)
    assert torch.all(out.abs().amax(1)[~silent] > 0)


def test_prompts_differ_across_images_and_eval_is_deterministic(trained_like_prompt, images):
    with torch.no_grad():
        a, b = trained_like_prompt(images), trained_like_prompt(images)
    assert torch.equal(a, b)
    distinct = {tuple(a[n].flatten()[::97].tolist()) for n in range(len(images))}
    assert len(distinct) > len(images) // 2


def test_generator_spikes_are_binary_and_inputs_too(trained_like_prompt, images):
    spikes_in = encode(images, trained_like_prompt.pool, trained_like_prompt.time_steps)
    assert set(spikes_in.unique().tolist()) <= {0.0, 1.0}
    with torch.no_grad():
        layers = run_generator(trained_like_prompt.spiking_generator, spikes_in)
    for s in layers:
        assert set(s.unique().tolist()) <= {0.0, 1.0}


def test_generator_is_in_the_exportable_form(trained_like_prompt):
    gen = trained_like_prompt.spiking_generator
    kinds = [type(m) for m in gen]
    assert kinds == [torch.nn.Linear, snn.Leaky, torch.nn.Linear, snn.Leaky]
    for m in gen:
        if isinstance(m, snn.Leaky):
            assert m.reset_mechanism == "zero" and not m.reset_delay
            assert m.beta.shape == m.threshold.shape == (m.beta.numel(),) and m.beta.numel() > 1


@pytest.mark.parametrize("gate,quota", [("rowcol", 6), ("rank", 8)])
def test_sparsity_target_pushes_only_the_weakest_gates(gate, quota, images):
    prompt = create_prompt("lorsp", image_size=L, rank=R, gate=gate, sparsity_target=0.6).train()
    assert prompt.closing_quota() == quota
    if gate == "rowcol":  # closing 6 of 16 row and column groups zeroes 1 - (10/16)^2 >= 60% of the pixels
        assert 1 - (1 - quota / prompt.num_groups) ** 2 >= 0.6 > 1 - (1 - (quota - 1) / prompt.num_groups) ** 2
    _, trace = prompt.trace(images)
    rho = trace.rates
    rho.retain_grad()
    reg = prompt.regularizer()
    sides = [rho] if gate == "rank" else [rho[:, : prompt.num_groups], rho[:, prompt.num_groups:]]
    expected = torch.stack([s.sort(1).values[:, :quota].mean() for s in sides]).mean()
    assert torch.allclose(reg, expected)
    reg.backward()
    pushed = (rho.grad != 0).sum(1)  # per image: exactly the quota of weakest gates, per side
    assert torch.equal(pushed, torch.full_like(pushed, quota * len(sides)))


def test_encoding_fires_exactly_k_times():
    counts = spike_counts(torch.rand(5, 3, 16, 16), pool=4, time_steps=8)
    assert torch.equal(spike_train(counts, 8).sum(0).long(), counts)


def test_parameter_count_matches_the_formula_in_docs():
    # 6 L r + (D H + H) + (2 G H + 2 G), D = 3 p^2  (docs/method.md)
    L_, r, p, H, G = 128, 4, 4, 16, 16
    D = 3 * p * p
    prompt = create_prompt("lorsp", image_size=L_, rank=r, pool=p, hidden=H, gates=G)
    assert prompt.num_params() == 6 * L_ * r + (D * H + H) + (2 * G * H + 2 * G) == 4400
    assert prompt.num_params() <= 1.5 * 6 * L_ * r  # within 1.5x LoR-VP's budget


def test_checkpoint_round_trip_is_bit_identical(lite0, tmp_path, images):
    cfg = {"backbone": "efficientnet_lite0", "prompt": "lorsp", "head": "lp", "rank": R, "image_size": L}
    torch.manual_seed(1)
    model = build_model(cfg, [str(i) for i in range(10)], backbone=lite0).eval()
    with torch.no_grad():
        model.prompt.B.normal_()
    torch.save(model.checkpoint_state(), tmp_path / "m.pt")
    loaded = lorsp.load(tmp_path / "m.pt")
    with torch.no_grad():
        assert torch.equal(loaded.prompt(images), model.prompt(images))
        assert torch.equal(loaded(images), model(images))
    assert loaded.spiking_generator is not None


@pytest.mark.parametrize("kw,match", [({"rank": 0}, "--rank"), ({"rank": -2}, "--rank"),
                                      ({"rank": L + 1}, "--rank"), ({"time_steps": 0}, "--time-steps"),
                                      ({"gate": "pixels"}, "--gate"), ({"sparsity_target": 1.0}, "--sparsity-target"),
                                      ({"sparsity_target": -0.1}, "--sparsity-target"),
                                      ({"surrogate_slope": 0.0}, "--surrogate-slope"),
                                      ({"surrogate_slope": float("nan")}, "--surrogate-slope")])
def test_bad_options(kw, match):
    with pytest.raises(LorspError, match=match):
        create_prompt("lorsp", image_size=L, **kw)


@pytest.mark.slow
@pytest.mark.parametrize("args,fragment", [(["--rank", "0"], "--rank"), (["--rank", "-3"], "--rank"),
                                           (["--rank", "999"], "--rank"), (["--time-steps", "0"], "--time-steps"),
                                           (["--sparsity-target", "1.5"], "--sparsity-target"),
                                           (["--surrogate-slope", "-1"], "--surrogate-slope")])
def test_bad_cli_options_are_one_line(tmp_path, args, fragment):
    proc = run_cli("lorsp.train", "--prompt", "lorsp", "--dataset", "sklearn-digits", "--image-size", "32",
                   "--epochs", "1", "--limit-train", "16", *args, "--out", str(tmp_path / "x"))
    assert_one_line_error(proc, fragment)
    assert not (tmp_path / "x").exists()


def test_evaluation_counts_spikes_and_synops_as_acs_over_several_batches(lite0):
    from lorsp.metrics import evaluate
    from lorsp.snn_stats import synops_per_sample

    cfg = {"backbone": "efficientnet_lite0", "prompt": "lorsp", "head": "lp", "rank": R, "image_size": L}
    torch.manual_seed(2)
    model = build_model(cfg, [str(i) for i in range(10)], backbone=lite0).eval()
    test = create_splits("mnist-5k", L, limit_test=12).test
    m = evaluate(model, test, batch_size=5, progress=False)  # 3 batches
    assert m["snn_synops_kind"] == "AC" and m["n"] == 12
    x = torch.stack([test[i][0] for i in range(12)])
    with torch.no_grad():
        _, trace = model.prompt.trace(x)
    spikes_in, layers = trace.input_spikes, trace.layer_spikes
    gen = model.spiking_generator
    expected = (synops_per_sample(spikes_in, gen[0].weight) + synops_per_sample(layers[0], gen[2].weight)).mean()
    assert m["snn_synops_per_image"] == pytest.approx(float(expected))
    assert m["spikes_per_image"] == pytest.approx(float(sum(s.sum() for s in layers)) / 12)


def test_surrogate_slope_changes_gradients_not_prompts(images):
    """The slope is a training choice only: same weights give the same prompt (and export), other gradients."""
    prompts, grads = [], []
    for slope in (25.0, 2.0):
        torch.manual_seed(5)
        p = create_prompt("lorsp", image_size=L, rank=R, surrogate_slope=slope).train()
        with torch.no_grad():
            p.B.normal_()
        out = p(images)
        out.square().sum().backward()
        prompts.append(out.detach())
        grads.append(p.spiking_generator[0].weight.grad.clone())
    assert torch.equal(prompts[0], prompts[1])
    assert not torch.allclose(grads[0], grads[1])
