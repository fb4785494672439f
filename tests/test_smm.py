"""SMM (--prompt smm): a sample-specific three-channel mask times one shared pattern; training and export."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

import lorsp
from lorsp.plumbing.errors import LorspError
from lorsp.prompts import create_prompt, list_prompts, option_names
from lorsp.prompts.smm import SampleSpecificMaskPrompt, SmmOptions, generator_params, smm_params
from deploy.manifest import MANIFEST_FILE
from tests.conftest import assert_one_line_error, run_cli

TINY = ["--dataset", "sklearn-digits", "--image-size", "32", "--epochs", "1", "--limit-train", "48",
        "--limit-test", "32", "--batch-size", "16", "--quiet"]


def images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def with_pattern(prompt: SampleSpecificMaskPrompt, seed: int = 1) -> SampleSpecificMaskPrompt:
    """The prompt with a random pattern (it starts at zero, which would hide the mask)."""
    with torch.no_grad():
        prompt.pattern.copy_(torch.randn(prompt.pattern.shape, generator=torch.Generator().manual_seed(seed)))
    return prompt


def test_registered_without_rank_at_the_declared_defaults():
    assert "smm" in list_prompts()
    assert "rank" not in option_names("smm")
    built, defaults = create_prompt("smm", 64), SmmOptions()
    assert (built.patch, built.generator.net[0].out_channels) == (defaults.patch, defaults.mask_width)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in built.generator.modules()) == defaults.mask_layers


@pytest.mark.parametrize("size", [32, 128])
def test_shape_zero_start_and_eval_determinism(size):
    prompt = create_prompt("smm", size).eval()
    x = images(3, size)
    with torch.no_grad():
        assert prompt(x).shape == x.shape
        assert torch.count_nonzero(prompt(x)) == 0  # the pattern starts at zero, as in SMM's code
        with_pattern(prompt)
        a, b = prompt(x), prompt(x)
        alone = prompt(x[1:2])
    assert torch.equal(a, b)
    torch.testing.assert_close(alone, a[1:2], rtol=0, atol=1e-6)  # running statistics: no batch dependence
    out, trace = prompt.trace(x)
    assert trace is None and torch.equal(out.detach(), a)


def test_prompt_differs_between_images_and_is_pattern_times_mask():
    prompt = with_pattern(create_prompt("smm", 32)).eval()
    x = images(2, 32)
    with torch.no_grad():
        p, mask = prompt(x), prompt.mask(x)
    assert not torch.allclose(p[0], p[1])
    assert not torch.allclose(mask[0], mask[1])
    assert torch.equal(p, prompt.pattern * mask)


def test_mask_is_the_raw_generator_output_repeated_over_each_patch():
    prompt = create_prompt("smm", 32).eval()
    assert prompt.patch == 8 and prompt.mask_size == 4
    x = images(4, 32)
    with torch.no_grad():
        cells = prompt.generator(x)
        mask = prompt.mask(x)
        assert cells.shape == (4, 3, 4, 4)
        for i in range(4):
            for j in range(4):
                block = mask[:, :, 8 * i:8 * i + 8, 8 * j:8 * j + 8]
                assert torch.equal(block, cells[:, :, i:i + 1, j:j + 1].expand_as(block))
        # SMM applies no sigmoid or tanh to the mask: any real value, of either sign, beyond [-1, 1]
        assert mask.min() < 0 < mask.max()
        prompt.generator.net[-1].weight.mul_(1000.0)
        assert prompt.mask(x).abs().max() > 1.0


def test_batch_norm_uses_batch_statistics_in_training_and_running_ones_in_eval():
    prompt = create_prompt("smm", 32)
    bn = prompt.generator.net[1]
    assert isinstance(bn, torch.nn.BatchNorm2d)
    before = bn.running_mean.clone()
    prompt.train()(images(4, 32))
    assert not torch.equal(bn.running_mean, before)
    prompt.eval()
    frozen = bn.running_mean.clone()
    prompt(images(4, 32, seed=5))
    assert torch.equal(bn.running_mean, frozen)


@pytest.mark.parametrize("size,width,patch,layers", [(32, 8, 8, 5), (128, 8, 8, 5), (224, 8, 8, 5),
                                                    (64, 4, 16, 5), (64, 8, 32, 6), (48, 16, 1, 6)])
def test_parameter_count_is_the_formula(size, width, patch, layers):
    prompt = SampleSpecificMaskPrompt(size, mask_width=width, patch=patch, mask_layers=layers)
    assert prompt.num_params() == smm_params(size, width, layers) == 3 * size ** 2 + generator_params(width, layers)
    assert prompt(images(2, size)).shape == (2, 3, size, size)


def test_parameter_counts_stated_in_the_docstring():
    assert generator_params() == 26_499
    assert create_prompt("smm", 128).num_params() == 75_651
    assert create_prompt("smm", 32).num_params() == 29_571


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(image_size=100), "multiple of its patch size 8"),
    (dict(image_size=36), "multiple of its patch size 8"),
    (dict(image_size=64, patch=3), "power of two"),
    (dict(image_size=64, patch=32), "power of two from 1 to 16"),
    (dict(image_size=64, mask_layers=4), "--mask-layers 4; choose one of: 5, 6"),
    (dict(image_size=64, mask_width=0), "--mask-width must be an integer from 1 to 256"),
])
def test_sizes_the_design_cannot_take_are_refused(kwargs, fragment):
    with pytest.raises(LorspError, match=fragment):
        SampleSpecificMaskPrompt(**kwargs)


def test_benchmark_plan_builds_a_valid_smm_command():
    from benchmarks.baselines import plan_run

    protocol = argparse.Namespace(backbone="efficientnet_lite0", rank=4, image_size=128, epochs=5, batch_size=32,
                                  lr=0.02, limit_train=1000, limit_test=1000, prompt_lr=0.2, out="runs/x", jobs=2)
    run = plan_run("mnist-5k", "smm", 0, protocol)  # plan_run refuses what lorsp-train would
    assert "--prompt smm" in run.command and "--rank" not in run.argv
    assert "--prompt-lr 0.2" in run.command and str(run.out) == "runs/x/mnist-5k/smm/seed0"


@pytest.mark.slow
def test_rank_is_refused_with_smm(tmp_path):
    proc = run_cli("lorsp.train", *TINY, "--prompt", "smm", "--rank", "4", "--out", str(tmp_path / "run"))
    assert_one_line_error(proc, "--rank does not apply to --prompt smm")
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def smm_checkpoint(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("smm") / "run"
    proc = run_cli("lorsp.train", *TINY, "--prompt", "smm", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out / "model.pt"


@pytest.mark.slow
def test_train_end_to_end(smm_checkpoint):
    metrics = json.loads((smm_checkpoint.parent / "metrics.json").read_text())
    assert metrics["prompt"] == "smm" and metrics["params"]["prompt"] == smm_params(32) == 29_571
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    model = lorsp.load(smm_checkpoint)
    assert model.num_trainable_params() == metrics["params"]
    assert torch.count_nonzero(model.prompt.pattern) > 0  # the pattern was trained
    x = images(2, 32)
    with torch.no_grad():
        assert torch.equal(model.prompt(x), model.prompt(x))


@pytest.mark.slow
@pytest.mark.parametrize("target", ["loihi", "all"])
def test_export_without_a_spiking_generator_is_refused_in_one_line(smm_checkpoint, tmp_path, target):
    out = tmp_path / "out"
    proc = run_cli("pipeline.export_cli", "--target", target, str(smm_checkpoint), "-o", str(out))
    assert_one_line_error(proc, "'smm' checkpoint", f"--target {target} needs one whose prompt has a spiking generator (--prompt lorsp)")
    assert not out.exists() and not out.with_name("out.partial").exists()


@pytest.mark.slow
def test_onnx_export_of_an_smm_checkpoint(smm_checkpoint, tmp_path):
    out = tmp_path / "onnx"
    proc = run_cli("pipeline.export_cli", "--target", "onnx", str(smm_checkpoint), "-o", str(out), "--samples", "8")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert any(line.startswith("ONNX fp32 parity") for line in proc.stdout.splitlines()), proc.stdout
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["target"] == "onnx" and manifest["config"]["prompt"] == "smm"
