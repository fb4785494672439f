"""No prompt: ``p(x) = 0``. With the ``lp`` head this is the linear probe."""
from __future__ import annotations

import torch

from lorsp.prompts.base import NoOptions, VisualPrompt, register_prompt


class NoPrompt(VisualPrompt):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return torch.zeros_like(x)


@register_prompt("none")
def none(image_size: int, options: NoOptions) -> NoPrompt:
    """No prompt; takes no options."""
    return NoPrompt(image_size)
