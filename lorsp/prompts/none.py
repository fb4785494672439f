"""No prompt: ``p(x) = 0``. With the ``lp`` head this is the linear probe."""
from __future__ import annotations

import torch

from lorsp.prompts.base import VisualPrompt, register_prompt


@register_prompt("none")
class NoPrompt(VisualPrompt):
    """``p(x) = 0``; takes no options."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return torch.zeros_like(x)

