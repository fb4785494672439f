"""VP (Bahng et al. 2022, "Exploring Visual Prompts for Adapting Large-Scale Models").

A learnable frame of width ``w`` around the image, zero inside:

    p(x) = M * theta,   M[i, j] = 1 if min(i, j, L-1-i, L-1-j) < w else 0

``w = round(30 * L / 224)`` keeps Bahng et al.'s 30 pixels at 224. Parameters:
``3 * (L^2 - (L - 2w)^2)`` (69,840 at L = 224). The prompt is the same for every
image. Initialised as in the reference code (``torch.randn``).
"""
from __future__ import annotations

import torch
from torch import nn

from lorsp.plumbing.errors import LorspError
from lorsp.prompts.base import NoOptions, VisualPrompt, register_prompt


def border_width(image_size: int) -> int:
    return max(1, round(30 * image_size / 224))


@register_prompt("vp")
class BorderPrompt(VisualPrompt):
    """VP's frame at Bahng et al.'s width (scaled to ``image_size``); takes no options."""

    def __init__(self, image_size: int, options: NoOptions | None = None):
        super().__init__(image_size, options)
        L = image_size
        w = border_width(L)
        if not 0 < 2 * w < L:
            raise LorspError(f"border width {w} does not fit a {L} px image")
        self.width = w
        self.top = nn.Parameter(torch.randn(3, w, L))
        self.bottom = nn.Parameter(torch.randn(3, w, L))
        self.left = nn.Parameter(torch.randn(3, L - 2 * w, w))
        self.right = nn.Parameter(torch.randn(3, L - 2 * w, w))

    def frame(self) -> torch.Tensor:
        """The prompt as one ``3 x L x L`` tensor."""
        L, w = self.image_size, self.width
        centre = self.top.new_zeros(3, L - 2 * w, L - 2 * w)
        middle = torch.cat([self.left, centre, self.right], dim=2)
        return torch.cat([self.top, middle, self.bottom], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.frame().unsqueeze(0).expand_as(x)

