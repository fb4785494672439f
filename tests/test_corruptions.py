"""Seeded corruptions and few-shot splits: the inputs of the robustness and few-shot tables."""
import numpy as np
import pytest
import torch

from lorsp.data import create_splits
from lorsp.data.corruptions import CORRUPTIONS, SEVERITIES, CorruptedView, corrupt
from lorsp.data.splits import few_shot_indices
from lorsp.plumbing.errors import LorspError


@pytest.fixture(scope="module")
def digits():
    return create_splits("sklearn-digits", 32, limit_test=16)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corruptions_stay_in_range_and_grow_with_severity(digits, name):
    x = digits.test[3][0]
    distances = []
    for severity in SEVERITIES:
        y = corrupt(x, name, severity, seed=0, index=3)
        assert y.shape == x.shape and y.dtype == x.dtype
        assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
        distances.append(float((y - x).abs().mean()))
    assert 0 < distances[0] < distances[1] < distances[2]


def test_noise_is_seeded_per_item_and_seed(digits):
    x = digits.test[0][0]
    a = corrupt(x, "gaussian_noise", 2, seed=0, index=5)
    assert torch.equal(a, corrupt(x, "gaussian_noise", 2, seed=0, index=5))
    assert not torch.equal(a, corrupt(x, "gaussian_noise", 2, seed=0, index=6))
    assert not torch.equal(a, corrupt(x, "gaussian_noise", 2, seed=1, index=5))


def test_blur_keeps_a_constant_image_and_contrast_keeps_the_mean():
    flat = torch.full((3, 32, 32), 0.3)
    assert torch.allclose(corrupt(flat, "gaussian_blur", 3), flat, atol=1e-6)
    x = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    assert torch.isclose(corrupt(x, "contrast", 1).mean(), x.mean(), atol=1e-6)


def test_corrupted_view_matches_corrupt(digits):
    view = CorruptedView(digits.test, "gaussian_noise", 1, seed=7)
    assert len(view) == len(digits.test)
    x, y = view[2]
    assert y == digits.test[2][1]
    assert torch.equal(x, corrupt(digits.test[2][0], "gaussian_noise", 1, seed=7, index=2))


@pytest.mark.parametrize("name,severity", [("fog", 1), ("contrast", 0), ("contrast", 4)])
def test_unknown_corruption_or_severity_is_refused(digits, name, severity):
    with pytest.raises(LorspError):
        CorruptedView(digits.test, name, severity)


def test_few_shot_takes_k_per_class_and_depends_on_the_seed(digits):
    pool = digits.train.source
    a = create_splits("sklearn-digits", 32, shots=4, shot_seed=0).train
    b = create_splits("sklearn-digits", 32, shots=4, shot_seed=1).train
    counts = np.bincount(a.targets)
    assert len(a) == 40 and (counts == 4).all()
    assert set(a.indices) <= set(digits.train.indices)
    assert set(a.indices) != set(b.indices)
    assert list(create_splits("sklearn-digits", 32, shots=4, shot_seed=0).train.indices) == list(a.indices)
    with pytest.raises(LorspError, match="per class"):
        few_shot_indices(np.arange(20), pool.targets, 16, seed=0)
    with pytest.raises(LorspError, match="--shots"):
        few_shot_indices(np.arange(20), pool.targets, 0, seed=0)
