"""Visual prompts by name: ``create_prompt("lorvp", image_size=128, rank=4)``.

A new method is one module here, a :class:`VisualPrompt` subclass registered with
``@register_prompt(name)`` (its options declared once, in its ``Options`` frozen dataclass), and
one import below.
"""
from lorsp.prompts.base import (GeneratorTrace, LearningRates, NoOptions, PromptOutput, VisualPrompt, check_options,
                                check_option_values, chip_prompts, create_prompt, list_prompts, option_flag,
                                option_names, option_type, options_class, options_from_config, options_in_use,
                                prompt_from_config, prompt_options,
                                register_prompt, value_kind_ok)
from lorsp.prompts import none as _none  # noqa: F401  (registers)
from lorsp.prompts import vp as _vp  # noqa: F401
from lorsp.prompts import lorvp as _lorvp  # noqa: F401
from lorsp.prompts import lorsp as _lorsp  # noqa: F401
from lorsp.prompts import smm as _smm  # noqa: F401

__all__ = ["GeneratorTrace", "LearningRates", "NoOptions", "PromptOutput", "VisualPrompt", "check_options",
           "check_option_values", "chip_prompts", "create_prompt", "list_prompts", "option_flag", "option_names",
           "option_type", "options_class", "options_from_config", "options_in_use", "prompt_from_config",
           "prompt_options", "register_prompt",
           "value_kind_ok"]
