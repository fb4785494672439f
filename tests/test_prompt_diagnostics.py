"""benchmarks/prompt_diagnostics.py: each variant is the prompt it names, scored with the model's own head."""
from __future__ import annotations

import torch

from benchmarks.prompt_diagnostics import derangement, diagnose
from lorsp.model import build_model, load
from tests.test_export_loihi import shared_checkpoint


def test_the_permutation_moves_every_image_and_is_seeded():
    for n in (2, 3, 10, 359):
        p = derangement(n, seed=0)
        assert sorted(p.tolist()) == list(range(n)) and bool((p != torch.arange(n)).all())
    assert torch.equal(derangement(50, 1), derangement(50, 1)) and not torch.equal(derangement(50, 1), derangement(50, 2))


def static_prompt_model() -> torch.nn.Module:
    """An untrained LoR-VP model at 32 px whose prompt is large enough to change predictions."""
    torch.manual_seed(0)
    model = build_model({"backbone": "efficientnet_lite0", "prompt": "lorvp", "head": "lp", "image_size": 32,
                         "rank": 2}, [str(c) for c in range(10)]).eval()
    with torch.no_grad():
        model.prompt.B.normal_(0, 3.0)
    return model


def test_a_static_prompt_scores_the_same_with_its_own_another_images_and_the_mean_prompt():
    from lorsp.data import load_split_images

    model = static_prompt_model()
    x, y = load_split_images("sklearn-digits", 32, 40)
    scores = diagnose(model, x, y)
    assert scores["own"] == scores["other"] == scores["mean"]
    assert set(scores) == {"own", "none", "other", "mean", "zero_prompt_pixels"}
    with torch.no_grad():
        changed = (model.classify(x + model.prompt(x)).argmax(1) != model.classify(x).argmax(1)).any()
    assert bool(changed)  # so 'none' is a different variant, not the same images


def test_a_generator_that_never_learned_scores_the_same_after_a_reset(tmp_path_factory):
    """The default LoRSP keeps its generator's start, so the reset (the trainer's own build stage: same seed, same
    calibration) gives back exactly the trained model's prompts; its other and mean prompts are other prompts."""
    from lorsp.data import load_split_images

    model = load(shared_checkpoint(tmp_path_factory))
    x, y = load_split_images(model.config["dataset"], model.config["image_size"], 48)
    scores = diagnose(model, x, y)
    assert scores["generator reset"] == scores["own"]
    assert {"gates open", "generator reset"} <= set(scores) and 0 < scores["zero_prompt_pixels"] < 1
