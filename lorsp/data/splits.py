"""Fixed, seeded train / val / test splits.

The split seed is a constant, apart from the training seed: every run, method
and seed sees the same test images, and model selection only ever looks at
val. Where a source has an official test split it is kept; val is then drawn
from the official train split. Limits take the first K items of a seeded
permutation of each split, so ``--limit-test 500`` is the same 500 images for
every method.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from lorsp.data.base import SourceData
from lorsp.data.registry import load_source
from lorsp.data.transforms import ToModelInput
from lorsp.plumbing.errors import LorspError

SPLIT_SEED = 0
VAL_FRACTION = 0.1
TEST_FRACTION = 0.2
SPLITS = ("test", "val", "train")


class SplitView(Dataset):
    """Items ``indices`` of ``source``, passed through ``transform``."""

    def __init__(self, source: Any, indices: Sequence[int], transform: ToModelInput):
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform
        all_targets = source.targets
        self.targets = [int(all_targets[i]) for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        image, label = self.source[int(self.indices[i])]
        return self.transform(image), int(label)


@dataclass
class Splits:
    train: SplitView
    val: SplitView
    test: SplitView
    classes: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _limit(idx: np.ndarray, k: int | None) -> np.ndarray:
    if k is None or k <= 0:
        return idx
    return idx[:k]


def few_shot_indices(indices: np.ndarray, targets: Sequence[int], shots: int, seed: int) -> np.ndarray:
    """``shots`` items of every class, drawn from ``indices`` by a permutation seeded with ``seed``.

    ``targets[i]`` is the label of item ``i`` of the source. Raises LorspError when a class
    has fewer than ``shots`` items (or none).
    """
    if not isinstance(shots, int) or shots < 1:
        raise LorspError(f"--shots must be a positive integer, got {shots}")
    targets = np.asarray(targets)
    order = np.random.default_rng(seed).permutation(indices)
    labels = targets[order]
    chosen, short = [], []
    for c in np.unique(targets):
        of_class = order[labels == c][:shots]
        if len(of_class) < shots:
            short.append(f"class {c} has {len(of_class)}")
        chosen.append(of_class)
    if short:
        raise LorspError(f"--shots {shots} needs {shots} training images per class: {', '.join(short[:3])}")
    return np.sort(np.concatenate(chosen))


def make_splits(source: SourceData, image_size: int, *, limit_train: int | None = None,
                limit_val: int | None = None, limit_test: int | None = None,
                split_seed: int = SPLIT_SEED, shots: int | None = None, shot_seed: int = 0) -> Splits:
    """Turn a :class:`SourceData` into seeded train / val / test views at ``image_size``.

    ``shots``: keep ``shots`` training images per class (after ``limit_train``), drawn with
    ``shot_seed`` (training uses its run seed, so each seed sees its own support set).
    """
    rng = np.random.default_rng(split_seed)
    n_train = len(source.train)
    perm = rng.permutation(n_train)
    pool = source.train
    if source.test is None:
        n_test = int(round(TEST_FRACTION * n_train))
        test_src, test_idx = pool, perm[:n_test]
        perm = perm[n_test:]
    else:
        test_src, test_idx = source.test, rng.permutation(len(source.test))
    if source.val is None:
        n_val = max(1, int(round(VAL_FRACTION * n_train)))
        val_src, val_idx = pool, perm[:n_val]
        perm = perm[n_val:]
    else:
        val_src, val_idx = source.val, rng.permutation(len(source.val))
    train_idx = perm
    if len(train_idx) == 0 or len(val_idx) == 0 or len(test_idx) == 0:
        raise LorspError(f"dataset too small to split: {n_train} training items")
    train_idx = _limit(train_idx, limit_train)
    if shots is not None:
        train_idx = few_shot_indices(train_idx, pool.targets, shots, shot_seed)
    tf = ToModelInput(image_size)
    return Splits(
        train=SplitView(pool, train_idx, tf),
        val=SplitView(val_src, _limit(val_idx, limit_val), tf),
        test=SplitView(test_src, _limit(test_idx, limit_test), tf),
        classes=list(source.classes),
    )


def create_splits(name: str, image_size: int, *, root: str | Path | None = None,
                  download: bool = False, limit_train: int | None = None,
                  limit_val: int | None = None, limit_test: int | None = None,
                  shots: int | None = None, shot_seed: int = 0) -> Splits:
    """Load dataset ``name`` and split it; the one entry point training uses."""
    source = load_source(name, root=root, download=download)
    return make_splits(source, image_size, limit_train=limit_train, limit_val=limit_val,
                       limit_test=limit_test, shots=shots, shot_seed=shot_seed)


def load_split_images(dataset: str, image_size: int, samples: int, root: str | Path | None = None,
                      split: str = "test", classes: Sequence[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``samples`` images of the seeded ``split`` (:data:`SPLITS`), ``(N, 3, L, L)``, and their labels.

    The images every evaluation outside training reads: the export checks, the chip
    simulation and the co-simulation all take the same first ``N`` of a split. ``classes``: the
    model's class names, when the labels are scored against its predictions (:func:`check_same_classes`).
    """
    x, y, _ = load_split_images_indexed(dataset, image_size, samples, root, split, classes)
    return x, y


def check_same_classes(dataset: str, found: Sequence[str], expected: Sequence[str]) -> None:
    """Refuse (one line) a data set whose class names are not the model's, in order: its labels would not name the
    classes the model predicts, and its accuracy would mean nothing."""
    if list(found) != list(expected):
        raise LorspError(f"dataset {dataset} has classes {', '.join(map(str, found[:4]))}"
                         f"{'...' if len(found) > 4 else ''} ({len(found)}), the model "
                         f"{', '.join(map(str, expected[:4]))}{'...' if len(expected) > 4 else ''} ({len(expected)}): "
                         f"its labels do not name the model's classes")


def load_split_images_indexed(dataset: str, image_size: int, samples: int, root: str | Path | None = None,
                              split: str = "test", classes: Sequence[str] | None = None
                              ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """:func:`load_split_images` and the images' indices in the dataset (int64), to name them to others."""
    if samples < 1:
        raise LorspError(f"--samples must be at least 1, got {samples}")
    if split not in SPLITS:
        raise LorspError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    splits = create_splits(dataset, image_size, root=root, **{f"limit_{split}": samples})
    if classes is not None:
        check_same_classes(dataset, splits.classes, classes)
    part = getattr(splits, split)
    items = [part[i] for i in range(len(part))]
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items]), part.indices.copy()
