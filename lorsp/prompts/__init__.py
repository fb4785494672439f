"""Visual prompts by name: ``create_prompt("lorvp", image_size=128, rank=4)``.

A new method is one module here with a ``@register_prompt`` factory and one import below.
"""
from lorsp.prompts.base import VisualPrompt, create_prompt, list_prompts, register_prompt
from lorsp.prompts import none as _none  # noqa: F401  (registers)
from lorsp.prompts import vp as _vp  # noqa: F401
from lorsp.prompts import lorvp as _lorvp  # noqa: F401
from lorsp.prompts import lorsp as _lorsp  # noqa: F401

__all__ = ["VisualPrompt", "create_prompt", "list_prompts", "register_prompt"]
