"""Backbones outside EfficientNet-Lite, end to end: a CNN (resnet18) and a ViT (vit_tiny_patch16_224).

No ResNet or ViT weights exist offline, so each test writes the architecture's own randomly
initialised tensors (seeded) to a safetensors file, as a user would pass a downloaded one, then
runs the whole path in subprocesses: lorsp-train with --backbone/--weights, lorsp-export --target all
(ONNX parity checked against PyTorch, the Loihi bundle), and lorsp-cosim on the fast simulator.
Images are 32 px so that the ViT (16 px patches) sees a 2 x 2 grid.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lorsp.backbones import create_backbone
from tests.conftest import run_cli

ARCHITECTURES = ("resnet18", "vit_tiny_patch16_224")


def write_random_weights(arch: str, path: Path) -> Path:
    """The state dict of a freshly initialised timm ``arch`` (seed 0, its default 224 px input) as safetensors."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = timm.create_model(arch, pretrained=False)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def test_a_224_px_vit_file_trains_at_another_size_with_its_position_embedding_resampled(tmp_path):
    from safetensors.torch import load_file

    path = write_random_weights("vit_tiny_patch16_224", tmp_path / "vit.safetensors")
    backbone = create_backbone("vit_tiny_patch16_224", weights=path, image_size=64)
    state = load_file(str(path))
    pos = backbone.net.pos_embed
    assert tuple(state["pos_embed"].shape) == (1, 1 + 14 * 14, 192) and tuple(pos.shape) == (1, 1 + 4 * 4, 192)
    assert torch.equal(backbone.net.cls_token, state["cls_token"])
    assert torch.equal(backbone.net.blocks[0].attn.qkv.weight, state["blocks.0.attn.qkv.weight"])
    assert backbone.features(torch.rand(2, 3, 64, 64)).shape == (2, 192)
    # an architecture of free input size is built as it always was
    r18 = create_backbone("resnet18", weights=write_random_weights("resnet18", tmp_path / "r18.safetensors"),
                          image_size=64)
    assert not r18.net.pretrained_cfg.get("fixed_input_size", False) and r18.num_features == 512


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_a_timm_backbone_with_a_weights_file_trains_exports_and_co_simulates(arch, tmp_path):
    weights = write_random_weights(arch, tmp_path / f"{arch}.safetensors")
    run, bundle, cosim = tmp_path / "run", tmp_path / "bundle", tmp_path / "cosim"
    trained = run_cli("lorsp.train", "--backbone", arch, "--weights", str(weights), "--prompt", "lorsp",
                      "--dataset", "sklearn-digits", "--image-size", "32", "--epochs", "1", "--limit-train", "32",
                      "--limit-test", "16", "--batch-size", "16", "--quiet", "--out", str(run))
    assert trained.returncode == 0, trained.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["backbone"] == arch and metrics["params"]["head"] == {"resnet18": 512, "vit_tiny_patch16_224": 192}[
        arch] * 10 + 10
    exported = run_cli("pipeline.export_cli", "--target", "all", str(run / "model.pt"), "-o", str(bundle),
                       "--samples", "8", "--quiet", "--weights", str(weights))  # a stored path is read only when named
    assert exported.returncode == 0, exported.stderr[-3000:]
    parity = json.loads((bundle / "manifest.json").read_text())["onnx"]["parity"]["fp32"]
    assert parity["samples"] == 8 and parity["max_abs_logit_diff"] <= parity["tolerance"]
    assert parity["prediction_agreement"] == 1.0
    simulated = run_cli("hw_sim.cosim_cli", str(bundle), "--limit", "8", "--backend", "fast", "--quiet",
                        "--weights", str(weights), "-o", str(cosim))
    assert simulated.returncode == 0, simulated.stderr[-3000:]
    report = json.loads((cosim / "cosim.json").read_text())
    assert report["agreement"] == {"equal": 8, "samples": 8, "share": 1.0}
    assert report["max_abs_logit_diff"] < 1e-4
