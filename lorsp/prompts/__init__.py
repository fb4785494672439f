"""Visual prompts by name: ``create_prompt("lorvp", image_size=128, rank=4)``.

A new method is one module here with a ``@register_prompt(name, Options)`` factory (its options
declared once, in a frozen dataclass) and one import below.
"""
from lorsp.prompts.base import (GeneratorTrace, NoOptions, VisualPrompt, check_options, create_prompt,
                                list_prompts, option_flag, option_names, options_class, options_from_config,
                                prompt_options, register_prompt)
from lorsp.prompts import none as _none  # noqa: F401  (registers)
from lorsp.prompts import vp as _vp  # noqa: F401
from lorsp.prompts import lorvp as _lorvp  # noqa: F401
from lorsp.prompts import lorsp as _lorsp  # noqa: F401
from lorsp.prompts import smm as _smm  # noqa: F401

from lorsp.prompts.lorsp import LorspOptions
from lorsp.prompts.lorvp import LorvpOptions
from lorsp.prompts.smm import SmmOptions

__all__ = ["GeneratorTrace", "LorspOptions", "LorvpOptions", "NoOptions", "SmmOptions", "VisualPrompt", "check_options",
           "create_prompt", "list_prompts", "option_flag", "option_names", "options_class", "options_from_config",
           "prompt_options", "register_prompt"]
