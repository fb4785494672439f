"""Per-instance prompt figures (issue 16): unique zero masks and zero-mask flips."""
import json

import numpy as np
import pytest
import torch

from lorsp.data import create_splits
from lorsp.metrics import (evaluate, instance_figures, mask_flip_share, mask_pairs, unique_mask_share,
                           zero_masks)
from lorsp.model import build_model
from lorsp.prompts import create_prompt
from lorsp.prompts.lorsp import BAND_DEFAULTS
from tests.conftest import run_cli

L, R = 32, 4
CLASSES = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def images():
    splits = create_splits("mnist-5k", L, limit_test=16)
    return torch.stack([splits.test[i][0] for i in range(16)])


def pattern(rows: slice, cols: slice, size: int = 8) -> torch.Tensor:
    m = torch.zeros(size, size, dtype=torch.bool)
    m[rows, cols] = True
    return m


def test_zero_masks_need_every_channel_zero():
    prompt = torch.ones(2, 3, 4, 4)
    prompt[0, :, 0, 0] = 0          # zero in all channels: a zero pixel
    prompt[0, 1, 2, 2] = 0          # zero in one channel only: not
    prompt[1] = 0                   # all zero
    masks = zero_masks(prompt)
    assert masks.dtype == torch.bool and masks.shape == (2, 4, 4)
    assert masks[0].sum() == 1 and masks[0, 0, 0] and bool(masks[1].all())
    with pytest.raises(ValueError, match=r"\(N, C, L, L\)"):
        zero_masks(torch.zeros(3, 4, 4))


def test_equal_masks_score_zero_on_both():
    masks = pattern(slice(0, 3), slice(None)).expand(10, 8, 8)
    assert unique_mask_share(masks) == 0.0 and mask_flip_share(masks) == 0.0
    dense = torch.zeros(10, 8, 8, dtype=torch.bool)   # no zeros at all
    assert unique_mask_share(dense) == 0.0 and mask_flip_share(dense) == 0.0


def test_all_different_masks_are_all_unique():
    masks = torch.stack([pattern(slice(k, k + 1), slice(None)) for k in range(8)])  # one zero row each
    assert unique_mask_share(masks) == 1.0
    # any two masks differ in exactly 2 rows of 8 pixels: 16 of 64
    assert mask_flip_share(masks) == pytest.approx(16 / 64, abs=1e-12)


def test_two_patterns_half_and_half():
    a, b = pattern(slice(0, 4), slice(None)), pattern(slice(None), slice(0, 2))
    d = float((a != b).float().mean())  # 32 + 16 - 8 - 8 = 32 of 64 pixels differ
    assert d == 0.5
    two = torch.stack([a, b])
    assert unique_mask_share(two) == 1.0 and mask_flip_share(two) == d  # every pair crosses
    masks = torch.stack([a] * 5 + [b] * 5)
    assert unique_mask_share(masks) == 0.0
    i, j = mask_pairs(10, 2000, 0)
    cross = float(np.mean((i < 5) != (j < 5)))
    assert mask_flip_share(masks, 2000, 0) == pytest.approx(d * cross, abs=1e-12)
    assert cross == pytest.approx(5 / 9, abs=0.05)  # 25 of the 45 unordered pairs cross


def test_one_unique_mask_among_repeats():
    masks = torch.stack([pattern(slice(0, 1), slice(None))] * 3 + [pattern(slice(1, 2), slice(None))])
    assert unique_mask_share(masks) == 0.25


def test_pairs_are_distinct_seeded_and_cover_every_image():
    i, j = mask_pairs(7, 2000, 0)
    assert len(i) == len(j) == 2000 and not np.any(i == j)
    assert set(i) == set(j) == set(range(7))
    assert all(np.array_equal(u, v) for u, v in zip((i, j), mask_pairs(7, 2000, 0)))
    assert not np.array_equal(i, mask_pairs(7, 2000, 1)[0])
    with pytest.raises(ValueError):
        mask_pairs(1)


def test_fewer_than_two_images_score_zero():
    one = pattern(slice(0, 1), slice(None))[None]
    empty = torch.zeros(0, 8, 8, dtype=torch.bool)
    for masks in (one, empty):
        assert instance_figures(masks) == {"prompt_unique_mask_share": 0.0, "prompt_mask_flip_share": 0.0,
                                           "prompt_instance_images": len(masks)}


@pytest.mark.parametrize("name, options", [("lorvp", {"rank": R}), ("vp", {}), ("none", {})])
def test_a_prompt_shared_by_all_images_scores_zero(name, options, images):
    torch.manual_seed(0)
    p = create_prompt(name, image_size=L, **options).eval()
    with torch.no_grad():
        for param in p.parameters():
            param.normal_()   # a trained-like shared prompt (lorvp's B = 0 at init)
        masks = zero_masks(p(images))
    assert unique_mask_share(masks) == 0.0 and mask_flip_share(masks) == 0.0


def test_lorsp_figures_match_a_direct_computation(images):
    torch.manual_seed(0)
    p = create_prompt("lorsp", image_size=L, rank=R, **BAND_DEFAULTS).eval()   # band gating: some gates silent per image
    with torch.no_grad():
        p.B.normal_()
        prompt = p(images)
    masks = zero_masks(prompt)
    assert 0 < int(masks.sum()) < masks.numel()   # the masks have zeros and non-zeros
    n = len(images)
    keys = [tuple(m.flatten().tolist()) for m in masks]
    direct_unique = sum(keys.count(k) == 1 for k in keys) / n
    i, j = mask_pairs(n, 2000, 0)
    direct_flip = float(np.mean([(masks[a] != masks[b]).float().mean().item() for a, b in zip(i, j)]))
    unique, flip = unique_mask_share(masks), mask_flip_share(masks)
    assert 0.0 <= unique <= 1.0 and 0.0 <= flip <= 1.0
    assert unique == direct_unique and flip == pytest.approx(direct_flip, abs=1e-9)
    assert flip > 0   # LoRSP's zeros move from image to image


def test_evaluate_reports_the_figures_of_the_first_images_over_batches(lite0):
    cfg = {"backbone": "efficientnet_lite0", "prompt": "lorsp", "head": "lp", "rank": R, "image_size": L,
           **BAND_DEFAULTS}
    torch.manual_seed(2)
    model = build_model(cfg, CLASSES, backbone=lite0).eval()
    with torch.no_grad():
        model.prompt.B.normal_()
    test = create_splits("mnist-5k", L, limit_test=12).test
    m = evaluate(model, test, batch_size=5, progress=False, instance_images=7)   # 5 + 2 of the second batch
    x = torch.stack([test[i][0] for i in range(7)])
    with torch.no_grad():
        expected = instance_figures(zero_masks(model.prompt(x)))
    assert {k: m[k] for k in expected} == expected and m["prompt_instance_images"] == 7
    everything = evaluate(model, test, batch_size=5, progress=False, instance_images=500)
    assert everything["prompt_instance_images"] == 12
    plain = evaluate(model, test, batch_size=5, progress=False)
    assert "prompt_unique_mask_share" not in plain
    assert {k: v for k, v in everything.items() if k not in expected} == plain   # nothing else changes


@pytest.mark.slow
@pytest.mark.parametrize("prompt", ["lorsp", "vp"])
def test_lorsp_train_writes_the_figures_to_metrics_json(tmp_path, prompt):
    out = tmp_path / "run"
    proc = run_cli("lorsp.train", "--dataset", "sklearn-digits", "--image-size", "32", "--limit-train", "64",
                   "--limit-test", "32", "--batch-size", "16", "--epochs", "1", "--prompt", prompt, "--quiet",
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["prompt_instance_images"] == m["n_test"] == 32
    for key in ("prompt_unique_mask_share", "prompt_mask_flip_share"):
        assert 0.0 <= m[key] <= 1.0, key
    if prompt == "vp":
        assert m["prompt_unique_mask_share"] == 0.0 and m["prompt_mask_flip_share"] == 0.0
