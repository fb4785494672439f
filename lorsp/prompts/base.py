"""What every visual prompt is: a module ``x -> p(x)`` added to the image.

Prompts live in image space: ``x`` is the resized image in [0, 1] and the
backbone sees ``normalize(x + p(x))`` (no clamp, as in LoR-VP). Each method is
one module in this package with its equation in the docstring and one line in
the registry.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from lorsp.errors import LorspError
from lorsp.registry import Registry


class VisualPrompt(nn.Module):
    """Base class: ``forward(x)`` returns the additive prompt, shaped like ``x``."""

    def __init__(self, image_size: int):
        super().__init__()
        self.image_size = int(image_size)

    def check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[-2:] != (self.image_size, self.image_size):
            raise LorspError(f"prompt expects images of shape (N, 3, {self.image_size}, "
                             f"{self.image_size}), got {tuple(x.shape)}")

    def regularizer(self) -> torch.Tensor | None:
        """A term the method adds to the loss (weighted by ``--sparsity-weight``), if any."""
        return None

    def num_params(self) -> int:
        """Trainable parameters of the prompt."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


PromptFactory = Callable[..., VisualPrompt]
PROMPTS: Registry[PromptFactory] = Registry("prompt")
register_prompt = PROMPTS.register
list_prompts = PROMPTS.names


def create_prompt(name: str, image_size: int, **options) -> VisualPrompt:
    """Build prompt ``name`` for ``image_size`` images; options the method does not take are ignored."""
    return PROMPTS.get(name)(image_size=image_size, **options)
