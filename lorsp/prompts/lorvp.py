"""LoR-VP (Jin et al., ICLR 2025, "LoR-VP: Low-Rank Visual Prompting").

One low-rank prompt shared by all images, per channel ``c``:

    p_c = B_c @ A_c,   B_c in R^{L x r},  A_c in R^{r x L}

``B = 0`` and ``A ~ N(0, 0.01^2)`` at start (so the prompt starts at zero and
``B`` gets the first gradient), as in the reference code (github
jincan333/LoR-VP). Parameters: ``3 * 2 * L * r`` (5,376 at L = 224, r = 4).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.cli_options import integer
from lorsp.prompts.base import VisualPrompt, register_prompt


@dataclass(frozen=True)
class LorvpOptions:
    """The options of LoR-VP."""

    rank: int = field(default=4, metadata={"help": "rank r of the low-rank prompt factors",
                                          "parse": integer(1, 4096)})


def check_rank(rank: int, image_size: int) -> None:
    """Refuse a rank that is not an integer in ``1..image_size``."""
    if not isinstance(rank, int) or not 1 <= rank <= image_size:
        raise LorspError(f"--rank must be an integer in 1..{image_size} (the image size), got {rank}")


@register_prompt("lorvp")
class LowRankPrompt(VisualPrompt):
    """LoR-VP's shared low-rank prompt."""

    Options = LorvpOptions
    init_std = 0.01
    """The std of ``A`` at start (LoR-VP's reference code)."""

    def __init__(self, image_size: int, options: LorvpOptions | None = None, **overrides):
        super().__init__(image_size, options, **overrides)
        rank = self.options.rank
        check_rank(rank, image_size)
        self.rank = rank
        self.B = nn.Parameter(torch.zeros(3, image_size, rank))
        self.A = nn.Parameter(torch.randn(3, rank, image_size) * self.init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return torch.bmm(self.B, self.A).unsqueeze(0).expand_as(x)

