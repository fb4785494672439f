"""LoRSP's defining properties, on real images."""
import numpy as np
import pytest
import snntorch as snn
import torch

import lorsp
from lorsp.data import create_splits
from lorsp.encoding import Encoding, latency_train, spike_train
from lorsp.plumbing.errors import LorspError
from lorsp.model import build_model
from lorsp.prompts import create_prompt
from lorsp.prompts.lorsp import BAND_DEFAULTS, run_generator
from tests.conftest import assert_one_line_error, run_cli

L, R = 32, 4


def band_prompt(image_size: int, **options):
    """A band-gated LoRSP prompt as band gating was measured (:data:`BAND_DEFAULTS`), ``options`` on top."""
    return create_prompt("lorsp", image_size=image_size, **{**BAND_DEFAULTS, **options})


@pytest.fixture(scope="module")
def images():
    splits = create_splits("mnist-5k", L, limit_test=16)
    return torch.stack([splits.test[i][0] for i in range(16)])


@pytest.fixture()
def trained_like_prompt(images):
    """The band-gated LoRSP prompt (the default until b567904) as after its start and some training: gates calibrated
    on real images (part of every image closed) and nonzero factors (B = 0 at init gives an all-zero prompt)."""
    torch.manual_seed(0)
    p = band_prompt(L, rank=R).eval()
    p.calibrate(images)
    with torch.no_grad():
        p.B.normal_()
    return p


@pytest.fixture()
def rowcol_prompt():
    """The row/column-gating ablation as after training (some gates silent on part of each image)."""
    torch.manual_seed(0)
    p = create_prompt("lorsp", image_size=L, rank=R, gate="rowcol", gates=16, encoding="pool",
                      factors="per-channel", gate_bias=0.2).eval()
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


def test_exact_zeros_are_where_no_term_has_both_gates_open(trained_like_prompt, images):
    p = trained_like_prompt
    with torch.no_grad():
        out = p(images)
        g = p.gate_rates(images).view(len(images), 2, R, p.num_groups)
    rows, cols = g[:, 0][..., p.group_of_line], g[:, 1][..., p.group_of_line]  # (N, r, L) per term
    closed = ~((rows[:, :, :, None] > 0) & (cols[:, :, None, :] > 0)).any(1)  # (N, L, L)
    assert 0.3 < closed.float().mean() < 0.9  # the calibrated start closes a large share
    assert torch.all(out.abs().amax(1)[closed] == 0)
    assert torch.all(out.abs().amax(1)[~closed] > 0)


def test_rowcol_zeros_follow_silent_rows_and_columns(rowcol_prompt, images):
    with torch.no_grad():
        out = rowcol_prompt(images)
        g = rowcol_prompt.gate_rates(images)
    assert (out == 0).float().mean() > 0.2  # a large share of exact zeros
    rows = g[:, :16][:, rowcol_prompt.group_of_line]
    cols = g[:, 16:][:, rowcol_prompt.group_of_line]
    silent = (rows[:, :, None] == 0) | (cols[:, None, :] == 0)  # (N, L, L)
    assert torch.all(out.abs().amax(1)[silent] == 0)
    assert torch.all(out.abs().amax(1)[~silent] > 0)


def test_calibrated_start_closes_the_target_share_and_follows_each_image():
    """The start the sparsity figure relies on: at least the target share closed before the first step, on the
    calibration batch and on images it never saw, with a zero mask of its own for (nearly) every image."""
    from lorsp.metrics import instance_figures, zero_masks

    splits = create_splits("mnist-5k", 128, limit_train=64, limit_test=200)
    train = torch.stack([splits.train[i][0] for i in range(64)])
    test = torch.stack([splits.test[i][0] for i in range(200)])
    torch.manual_seed(0)
    p = band_prompt(128, sparsity_target=0.6).eval()
    reached = p.calibrate(train)
    assert 0.55 <= reached <= 0.65
    with torch.no_grad():
        p.B.normal_()
        masks = zero_masks(p(test))
    assert 0.5 <= float(masks.float().mean()) <= 0.7
    figures = instance_figures(masks)
    assert figures["prompt_unique_mask_share"] >= 0.5 and figures["prompt_mask_flip_share"] >= 0.1


def test_content_relay_prompts_where_the_content_is():
    """The band start on real images: the pixels it leaves open hold more of the image's deviation from its mean
    grey than the pixels it closes."""
    splits = create_splits("sklearn-digits", 64, limit_train=64)
    x = torch.stack([splits.train[i][0] for i in range(64)])
    grey = x.mean(1)
    deviation = (grey - grey.mean((1, 2), keepdim=True)).abs()  # (N, L, L), what the bands encoding averages
    for relay, sign in (("content", 1),):
        torch.manual_seed(0)
        p = band_prompt(64, relay=relay, sparsity_target=0.5)
        p.calibrate(x)
        with torch.no_grad():
            p.B.normal_()
            open_ = (p(x) != 0).any(1)
        assert 0.2 < open_.float().mean() < 0.8
        assert sign * (deviation[open_].mean() - deviation[~open_].mean()) > 0
    with pytest.raises(LorspError, match="--relay"):
        band_prompt(32, relay="edges")
    with pytest.raises(LorspError, match="--relay 'frame' was removed from lorsp after commit 567fd19"):
        band_prompt(32, relay="frame")


@pytest.mark.parametrize("kw,match", [({"gates": 8}, "--hidden 2 x --gates"), ({"gates": 12, "hidden": 24}, "divide")])
def test_band_start_refuses_shapes_it_cannot_relay(kw, match):
    with pytest.raises(LorspError, match=match):
        band_prompt(128, **kw)


def test_an_image_without_content_encodes_as_zeros():
    for value in (0.1, 0.3, 0.7):
        x = torch.full((2, 3, 32, 32), value)
        assert torch.equal(Encoding("bands", 16, 8).counts(x), torch.zeros(2, 32, dtype=torch.int64))


def test_relay_noise_zero_is_an_exact_sparse_relay():
    p = band_prompt(64, relay_noise=0.0)
    first, second = p.spiking_generator[0].weight, p.spiking_generator[2].weight
    g, r = p.num_groups, p.rank
    assert torch.equal(first, 1.5 * torch.eye(2 * g))  # every input relayed by its own hidden neuron
    assert int((second != 0).sum()) == 2 * g * r and set(second[second != 0].tolist()) == {0.5}
    with pytest.raises(LorspError, match="--relay-noise"):
        band_prompt(32, relay_noise=-0.1)


@pytest.mark.parametrize("target", [0.3, 0.6])
def test_band_sparsity_term_pulls_each_image_to_the_target(target, images):
    frozen = band_prompt(L, rank=R, sparsity_target=target).train()
    assert frozen.regularizer(frozen.trace(images)[1]) is None  # the measured band generator does not learn: nothing for the term to move
    p = band_prompt(L, rank=R, sparsity_target=target, train_generator="all").train()
    _, trace = p.trace(images)
    closed = p.closed_share(p.gates_open(trace.rates))
    assert torch.allclose(p.regularizer(trace), (closed - target).abs().mean())
    g = (trace.rates > 0).float().view(len(images), 2, R, -1)
    rows, cols = g[:, 0][..., p.group_of_line], g[:, 1][..., p.group_of_line]
    open_px = ((rows[:, :, :, None] > 0) & (cols[:, :, None, :] > 0)).any(1).float().mean((1, 2))
    assert torch.allclose(closed.detach(), 1 - open_px)  # the band-level formula is the pixel share


def test_prompts_differ_across_images_and_eval_is_deterministic(trained_like_prompt, images):
    with torch.no_grad():
        a, b = trained_like_prompt(images), trained_like_prompt(images)
    assert torch.equal(a, b)
    distinct = {tuple(a[n].flatten()[::97].tolist()) for n in range(len(images))}
    assert len(distinct) > len(images) // 2


def test_generator_spikes_are_binary_and_inputs_too(trained_like_prompt, images):
    spikes_in = trained_like_prompt.encode(images)
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


def test_sparsity_target_pushes_only_the_weakest_gates(images):
    quota = 6
    prompt = create_prompt("lorsp", image_size=L, rank=R, gate="rowcol", sparsity_target=0.6, gates=16,
                           encoding="pool", factors="per-channel", train_generator="all").train()
    assert prompt.closing_quota() == quota
    # closing 6 of 16 row and column groups zeroes 1 - (10/16)^2 >= 60% of the pixels
    assert 1 - (1 - quota / prompt.num_groups) ** 2 >= 0.6 > 1 - (1 - (quota - 1) / prompt.num_groups) ** 2
    _, trace = prompt.trace(images)
    rho = trace.rates
    rho.retain_grad()
    reg = prompt.regularizer(trace)
    sides = [rho[:, : prompt.num_groups], rho[:, prompt.num_groups:]]
    expected = torch.stack([s.sort(1).values[:, :quota].mean() for s in sides]).mean()
    assert torch.allclose(reg, expected)
    reg.backward()
    pushed = (rho.grad != 0).sum(1)  # per image: exactly the quota of weakest gates, per side
    assert torch.equal(pushed, torch.full_like(pushed, quota * len(sides)))


def test_encoding_fires_exactly_k_times():
    counts = Encoding("pool", 4, 8).counts(torch.rand(5, 3, 16, 16))
    assert torch.equal(spike_train(counts, 8).sum(0).long(), counts)


@pytest.mark.parametrize("steps", [1, 3, 8, 13])
def test_spike_train_is_the_accumulator_step_by_step(steps):
    # the module docstring's integer accumulator, run literally, against the lookup spike_train uses
    counts = np.arange(steps + 1).repeat(2).reshape(1, -1)
    acc, expected = np.zeros_like(counts), []
    for _ in range(steps):
        acc = acc + counts
        fired = acc >= steps
        acc = acc - steps * fired
        expected.append(fired.astype(np.float32))
    assert np.array_equal(spike_train(counts, steps), np.stack(expected))
    assert torch.equal(spike_train(torch.from_numpy(counts), steps), torch.from_numpy(np.stack(expected)))


@pytest.mark.parametrize("train", [spike_train, latency_train])
@pytest.mark.parametrize("bad", [-1, 9])
def test_spike_counts_outside_0_to_t_are_refused(train, bad):
    with pytest.raises(LorspError, match="spike counts must lie in 0..8"):
        train(torch.tensor([[0, bad]]), 8)


@pytest.mark.parametrize("steps", [1, 4, 8, 16])
def test_the_latency_code_sends_one_spike_per_lit_input_brightest_first(steps):
    counts = torch.arange(steps + 1).repeat(3, 1)  # (3, T + 1): every count
    spikes = latency_train(counts, steps)
    assert spikes.shape == (steps, 3, steps + 1) and set(spikes.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(spikes.sum(0), (counts > 0).float())          # one spike for k > 0, none for k = 0
    first = spikes.argmax(0)                                         # 0-based step of the spike
    assert torch.equal(first[:, 1:], steps - counts[:, 1:])          # k fires at step T - k: k = T first
    assert spikes.sum((1, 2)).max() <= 3                             # at most one count level per step
    assert np.array_equal(latency_train(counts.numpy(), steps), spikes.numpy())
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(Encoding("pool", 8, steps, "latency")(x), latency_train(Encoding("pool", 8, steps).counts(x),
                                                                             steps))


def test_parameter_count_matches_the_formula_in_docs():
    # the default, pixel gating: 2 L r + 3 r (shared factors, channel mix) and 3 k^2 + 2 gate parameters (the
    # k x k kernel, its bias, the magnitude's gain), all trained; 2,101 at rank 8 (docs/method.md, README)
    L_, r, k = 128, 4, 3
    assert create_prompt("lorsp", image_size=L_, rank=8).num_params() == 2 * L_ * 8 + 3 * 8 + 3 * k * k + 2 == 2101
    default = create_prompt("lorsp", image_size=L_, rank=r)
    assert default.num_params() == 2 * L_ * r + 3 * r + 3 * k * k + 2 == 1065
    # band gating: 2 L r + 3 r trained; the generator, (D H + H) + (n H + n) with D = 2 G inputs and n = 2 G r
    # gates, keeps its start
    H, G = 32, 16
    D, n = 2 * G, 2 * G * r
    prompt = band_prompt(L_, rank=r)
    assert prompt.num_params() == 2 * L_ * r + 3 * r == 1036
    assert prompt.num_params() <= 6 * L_ * r  # at most LoR-VP's 3,072 at the same L and r
    assert sum(p.numel() for p in prompt.spiking_generator.parameters()) == (D * H + H) + (n * H + n) == 5280
    trained = band_prompt(L_, rank=r, train_generator="all")
    assert trained.num_params() == 1036 + 5280
    # the earlier design: per-channel factors, pooled encoding D = 3 p^2, row/column gates n = 2 G
    p_, G_, H_ = 4, 16, 16
    old = create_prompt("lorsp", image_size=L_, rank=r, pool=p_, hidden=H_, gates=G_, gate="rowcol", encoding="pool",
                        factors="per-channel", train_generator="all")
    assert old.num_params() == 6 * L_ * r + (3 * p_ * p_ * H_ + H_) + (2 * G_ * H_ + 2 * G_) == 4400


@pytest.mark.parametrize("gating", [{}, BAND_DEFAULTS], ids=["default", "band"])
def test_checkpoint_round_trip_is_bit_identical(lite0, tmp_path, images, gating):
    from lorsp.config import TrainConfig

    cfg = TrainConfig(backbone="efficientnet_lite0", prompt="lorsp", head="lp", rank=R, image_size=L,
                      **gating).to_dict()
    torch.manual_seed(1)
    model = build_model(cfg, [str(i) for i in range(10)], backbone=lite0).eval()
    with torch.no_grad():
        model.prompt.B.normal_()
    torch.save(model.checkpoint_state(), tmp_path / "m.pt")
    loaded = lorsp.load(tmp_path / "m.pt")
    assert loaded.prompt.gate == model.prompt.gate == gating.get("gate", "pixel")
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

    cfg = {"backbone": "efficientnet_lite0", "prompt": "lorsp", "head": "lp", "rank": R, "image_size": L, **BAND_DEFAULTS}
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
        p = band_prompt(L, rank=R, surrogate_slope=slope, train_generator="all").train()
        with torch.no_grad():
            p.B.normal_()
        out = p(images)
        out.square().sum().backward()
        prompts.append(out.detach())
        grads.append(p.spiking_generator[0].weight.grad.clone())
    assert torch.equal(prompts[0], prompts[1])
    assert not torch.allclose(grads[0], grads[1])


def test_init_std_sets_the_start_of_the_factors_and_the_prompt_still_starts_at_zero(images):
    for std in (0.01, 0.1):
        torch.manual_seed(0)
        p = create_prompt("lorsp", image_size=L, init_std=std).eval()
        assert abs(float(p.A.std()) / std - 1.0) < 0.2
        assert torch.equal(p(images), torch.zeros(len(images), 3, L, L))  # B = 0
    assert_one_line_error(run_cli("lorsp.train", "--dataset", "mnist-5k", "--prompt", "lorsp", "--init-std", "0"),
                          "--init-std")


def test_the_open_relay_is_the_dense_twin_every_image_gets_the_whole_low_rank_prompt(images):
    """``--relay open``: every gate held open whatever the image (and the calibration leaves them), so the prompt is
    the factors' whole low-rank prompt for every image, with no zero pixel: LoRSP's dense twin."""
    p = band_prompt(L, rank=R, relay="open").eval()
    assert bool(p.held.all())
    p.calibrate(images)
    with torch.no_grad():
        p.B.normal_()
        prompt = p(images)
        whole = p.prompt_from_rates(torch.ones(1, p.held.numel()))
    assert torch.equal(prompt, whole.expand_as(prompt)) and bool((prompt != 0).all())


LEARNING = dict(BAND_DEFAULTS, encoding="pool", pool=4, gates=4, rank=R, hidden=8, train_generator="all",
                surrogate_slope=5.0)


def test_a_learning_generator_trains_on_the_grid_and_settling_keeps_what_it_computes(images):
    """A learning generator computes with its weights on the grid (straight-through: the gradient still reaches the
    values off it), so snapping the stored values there after an epoch (``settle``) changes neither its spikes nor
    the prompt; a generator that does not learn is left as it is."""
    from lorsp.prompts.lorsp import GRID_STEP
    torch.manual_seed(0)
    p = create_prompt("lorsp", image_size=L, **LEARNING)
    with torch.no_grad():
        p.B.normal_()
        for q in p.spiking_generator.parameters():  # trained values off the grid
            q.add_(torch.randn_like(q) * 0.01)
    p.train()
    p(images).square().sum().backward()
    assert all(q.grad is not None for q in p.spiking_generator.parameters())
    p.eval()
    before = p(images)
    p.settle()
    assert torch.equal(p(images), before)
    for q in p.spiking_generator.parameters():
        assert torch.equal(q / GRID_STEP, torch.round(q / GRID_STEP))
    fixed = band_prompt(L, rank=R)
    with torch.no_grad():
        fixed.spiking_generator[0].weight.add_(0.001)
    kept = fixed.spiking_generator[0].weight.clone()
    fixed.settle()
    assert torch.equal(fixed.spiking_generator[0].weight, kept)


def test_only_epochs_after_the_sparsity_ramp_are_selectable():
    """``--sparsity-warmup 3``: the val selection may keep a learned model only once the term has its full weight, so
    a model not yet as sparse as trained is never the one kept. A generator that does not learn is selectable after
    any epoch."""
    p = create_prompt("lorsp", image_size=L, **{**LEARNING, "sparsity_warmup": 3.0})
    full = p.options.sparsity_weight
    assert [p.sparsity_weight_at(e) for e in (0.0, 1.5, 3.0, 5.0)] == [0.0, 0.5 * full, full, full]
    assert [p.selectable(e) for e in (1, 2, 3, 5)] == [False, False, True, True]
    fixed = band_prompt(L, rank=R)
    assert fixed.selectable(1)


def test_the_default_is_learned_pixel_gating_and_an_older_config_keeps_what_its_run_had():
    """LoRSP's defaults are the measured pixel-gating candidate (band gating was until b567904); a stored config holds every
    option (an old band run's reads back as band), and one written before an option existed reads that option as its
    run had it (the declared ``legacy``), never as today's default, in the prompt and in ``TrainConfig.from_stored``."""
    from lorsp.config import TrainConfig
    from lorsp.prompts import options_from_config, prompt_options

    o = create_prompt("lorsp", image_size=L).options
    assert (o.gate, o.train_generator, o.sparsity_target, o.sparsity_warmup, o.surrogate_slope, o.generator_lr_scale,
            o.pixel_code, o.pixel_kernel) == ("pixel", "all", 0.55, 1.0, 5.0, 1.0, "rate", 3)
    assert create_prompt("lorsp", image_size=L).learns and not create_prompt("lorsp", image_size=L).calibrates
    band = TrainConfig(prompt="lorsp", image_size=L, **BAND_DEFAULTS).to_dict()
    assert {k: options_from_config("lorsp", band)[k] for k in BAND_DEFAULTS} == BAND_DEFAULTS
    legacy = {f.name: f.metadata["legacy"] for f in prompt_options("lorsp") if "legacy" in f.metadata}
    legacy = {k: v for k, v in legacy.items() if k in BAND_DEFAULTS}  # --gate: in every LoRSP config since 4fd5180
    assert legacy == {"train_generator": "all", "sparsity_target": None, "sparsity_warmup": 0.0,
                      "surrogate_slope": 25.0, "generator_lr_scale": 1.0}  # what the code did before each option
    # where the run's value differs from today's default, the legacy value is what must be read
    assert {k for k in legacy if legacy[k] != getattr(TrainConfig(), k)} == {"sparsity_target", "sparsity_warmup",
                                                                              "surrogate_slope"}
    for key in legacy:
        older = {k: v for k, v in band.items() if k != key}
        assert options_from_config("lorsp", older)[key] == legacy[key]
        assert getattr(TrainConfig.from_stored(older), key) == legacy[key]
        assert {k: options_from_config("lorsp", older)[k] for k in BAND_DEFAULTS if k != key} == \
            {k: v for k, v in BAND_DEFAULTS.items() if k != key}
