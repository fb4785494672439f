"""The one image transform: any source image -> float ``3 x L x L`` in [0, 1].

Grayscale is repeated to three channels, RGBA drops alpha, and the image is
resized to ``L x L`` with antialiased bilinear interpolation. Normalisation is
not done here: it belongs to the backbone, after the prompt is added.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

RESIZE = {"mode": "bilinear", "align_corners": False, "antialias": True}
"""How every image is resized to ``L x L``: the options of ``torch.nn.functional.interpolate`` (named by the spec)."""


def to_tensor_image(image: object) -> torch.Tensor:
    """PIL image, uint8 array (H x W [x C]) or tensor -> float tensor ``C x H x W`` in [0, 1]."""
    if isinstance(image, Image.Image):
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        image = np.asarray(image)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"expected uint8 image array, got {image.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(image)).float().div_(255.0)
        t = t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)
    elif isinstance(image, torch.Tensor):
        t = image.float()
        if t.ndim == 2:
            t = t.unsqueeze(0)
    else:
        raise TypeError(f"cannot make an image of {type(image).__name__}")
    return t


class ToModelInput:
    """Callable transform to ``3 x size x size`` float in [0, 1]."""

    def __init__(self, size: int):
        if size < 8:
            raise ValueError(f"image size must be >= 8, got {size}")
        self.size = int(size)

    def __call__(self, image: object) -> torch.Tensor:
        t = to_tensor_image(image)
        if t.shape[0] == 1:
            t = t.expand(3, -1, -1)
        elif t.shape[0] == 4:
            t = t[:3]
        elif t.shape[0] != 3:
            raise ValueError(f"expected 1, 3 or 4 channels, got {t.shape[0]}")
        if t.shape[-2:] != (self.size, self.size):
            t = F.interpolate(t.unsqueeze(0), size=(self.size, self.size), **RESIZE).squeeze(0).clamp_(0.0, 1.0)
        return t.contiguous()

    def __repr__(self) -> str:
        return f"ToModelInput(size={self.size})"
