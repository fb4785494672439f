"""The data contract every dataset loader fulfils.

A loader turns files on disk into a :class:`SourceData`: torchvision-style
datasets whose items are ``(image, label)`` with ``image`` a PIL image or a
uint8 numpy array (``H x W`` grayscale or ``H x W x C``), plus the class names.
Where the source has no official test (or val) split, the field is ``None``
and :mod:`lorsp.data.splits` draws one with a fixed seed.

Every source dataset exposes ``targets`` (one int per item, in order) so that
splits never need to decode an image.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from torch.utils.data import Dataset


class ArrayDataset(Dataset):
    """An in-memory dataset of uint8 images, torchvision style.

    Args:
        data: ``(N, H, W)`` or ``(N, H, W, C)`` uint8 array.
        targets: ``(N,)`` integer labels.
        classes: class names, index = label.
    """

    def __init__(self, data: np.ndarray, targets: Sequence[int], classes: Sequence[str]):
        data = np.asarray(data)
        if data.dtype != np.uint8:
            raise ValueError(f"ArrayDataset wants uint8 images, got {data.dtype}")
        if data.ndim not in (3, 4):
            raise ValueError(f"ArrayDataset wants (N,H,W) or (N,H,W,C) images, got shape {data.shape}")
        self.data = data
        self.targets = [int(t) for t in targets]
        if len(self.targets) != len(data):
            raise ValueError(f"{len(data)} images but {len(self.targets)} labels")
        self.classes = list(classes)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.data[index], self.targets[index]


@dataclass
class SourceData:
    """What a loader returns: the splits the source itself defines.

    ``val`` and ``test`` are ``None`` when the source does not define them.
    """

    train: Any
    classes: list[str]
    test: Any | None = None
    val: Any | None = None
