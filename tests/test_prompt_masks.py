"""benchmarks/prompt_masks.py: each mask zeroes what it names, and is scored with the model's own head."""
from __future__ import annotations

import torch

from benchmarks.prompt_masks import content_masks, masks, score_masks
from lorsp.data import load_split_images
from tests.test_prompt_diagnostics import static_prompt_model


def test_masks_keep_their_share_and_content_masks_follow_each_image():
    x, _ = load_split_images("sklearn-digits", 32, 12)
    m = masks(x, keep=0.4, seed=0)
    assert bool((m["dense"] == 1).all()) and bool((m["none"] == 0).all()) and bool((m["scaled"] == 0.4).all())
    for name in ("random blocks 4", "random blocks 16", "random pixels"):
        assert m[name].shape == (12, 1, 32, 32) and 0.2 < float(m[name].mean()) < 0.6
        assert not torch.equal(m[name][0], m[name][1])  # per image
    assert m["static blocks 4"].shape[0] == 1
    own, other = m["content 0.1"], m["content 0.1, other image"]
    assert torch.equal(own, content_masks(x, 0.1)) and not torch.equal(own, other)
    assert sorted(map(tuple, other.flatten(1).tolist())) == sorted(map(tuple, own.flatten(1).tolist()))
    assert torch.equal(masks(x, 0.4, seed=0)["random pixels"], m["random pixels"])  # seeded


def test_scores_are_the_masked_prompts_with_the_models_own_head():
    model = static_prompt_model()
    x, y = load_split_images("sklearn-digits", 32, 20)
    rows = {r["mask"]: r for r in score_masks(model, x, y, keep=0.4, seed=0)}
    with torch.no_grad():
        dense = float((model.classify(x + model.prompt(x)).argmax(1) == y).float().mean())
        bare = float((model.classify(x).argmax(1) == y).float().mean())
    assert rows["dense"]["accuracy"] == dense and rows["dense"]["zero_share"] == 0.0
    assert rows["none"]["accuracy"] == bare and rows["none"]["zero_share"] == 1.0
    assert rows["scaled"]["zero_share"] == 0.0 and 0.0 < rows["random pixels"]["zero_share"] < 1.0
