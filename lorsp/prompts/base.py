"""What every visual prompt is: a module ``x -> p(x)`` added to the image, and how methods declare options.

Prompts live in image space: ``x`` is the resized image in [0, 1] and the
backbone sees ``normalize(x + p(x))`` (no clamp, as in LoR-VP). Each method is
one module in this package with its equation in the docstring and one entry in
the registry: a factory and the frozen dataclass of the options it takes,

    @dataclass(frozen=True)
    class LorvpOptions:
        rank: int = field(default=4, metadata={"help": "rank r of the factors"})

    @register_prompt("lorvp", LorvpOptions)
    def lorvp(image_size: int, options: LorvpOptions) -> LowRankPrompt: ...

That one declaration is the method's ``lorsp-train`` argument group, the
prompt keys of its ``metrics.json`` and what :func:`create_prompt` accepts.
A field's ``metadata`` holds ``help``, optionally ``choices``, ``applies_when``
(``{"gate": ("rowcol",)}``: the option is used only when option ``gate`` has one
of those values; :func:`check_options` refuses it otherwise) and ``legacy`` (the value
a stored config that predates the option meant; :func:`options_from_config`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.registry import Registry


@dataclass(frozen=True)
class GeneratorTrace:
    """What a spiking prompt's generator did in one forward pass, for the readers that need it.

    Attributes:
        input_spikes: the encoded image fed to the generator, ``(T, N, D)``.
        layer_spikes: the spikes of every spiking layer in order, each ``(T, N, width)``;
            the last one is the gate neurons'.
        rates: the gate neurons' spike rates ``rho``, ``(N, n_gates)`` (the mean of the last layer's
            spikes over ``T``), from which the prompt was made.
    """

    input_spikes: torch.Tensor
    layer_spikes: tuple[torch.Tensor, ...]
    rates: torch.Tensor

    @property
    def gate_spikes(self) -> torch.Tensor:
        """The last layer's spikes ``(T, N, n_gates)``."""
        return self.layer_spikes[-1]


class VisualPrompt(nn.Module):
    """Base class: ``forward(x)`` returns the additive prompt, shaped like ``x``."""

    def __init__(self, image_size: int):
        super().__init__()
        self.image_size = int(image_size)

    def check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[-2:] != (self.image_size, self.image_size):
            raise LorspError(f"prompt expects images of shape (N, 3, {self.image_size}, "
                             f"{self.image_size}), got {tuple(x.shape)}")

    def trace(self, x: torch.Tensor) -> tuple[torch.Tensor, GeneratorTrace | None]:
        """The prompt for ``x`` and what its spiking generator did (None: a prompt without one)."""
        return self(x), None

    @property
    def calibrates(self) -> bool:
        """Whether :meth:`calibrate` does anything (the trainer loads its images only then)."""
        return False

    def calibrate(self, x: torch.Tensor) -> float | None:
        """A data-dependent start from training images ``x``, before the first step (default: none)."""
        return None

    def regularizer(self) -> torch.Tensor | None:
        """A term the method adds to the loss (weighted by ``--sparsity-weight``), if any."""
        return None

    def num_params(self) -> int:
        """Trainable parameters of the prompt."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


@dataclass(frozen=True)
class NoOptions:
    """The options of a method that takes none."""


@dataclass(frozen=True)
class PromptMethod:
    """A registered method: ``build(image_size, options)`` and the dataclass of its ``options``."""

    name: str
    build: Callable[[int, Any], VisualPrompt]
    options: type


PROMPTS: Registry[PromptMethod] = Registry("prompt")


def register_prompt(name: str, options: type = NoOptions) -> Callable[[Callable], Callable]:
    """Decorator: register ``build(image_size, options) -> VisualPrompt`` as method ``name``.

    ``options`` is a frozen dataclass whose fields (with defaults and ``help`` metadata) are
    every option the method takes.
    """
    if not (dataclasses.is_dataclass(options) and options.__dataclass_params__.frozen):
        raise TypeError(f"prompt {name!r}: options must be a frozen dataclass, got {options!r}")
    for f in dataclasses.fields(options):
        if f.default is dataclasses.MISSING or "help" not in f.metadata:
            raise TypeError(f"prompt {name!r}: option {f.name!r} needs a default and a help string")

    def wrap(build: Callable) -> Callable:
        PROMPTS.add(name, PromptMethod(name, build, options))
        return build

    return wrap


def list_prompts() -> list[str]:
    """Registered prompt method names."""
    return PROMPTS.names()


def option_flag(name: str) -> str:
    """The command-line spelling of option ``name``: ``time_steps`` -> ``--time-steps``."""
    return "--" + name.replace("_", "-")


def options_class(name: str) -> type:
    """The frozen dataclass that declares the options of method ``name``."""
    return PROMPTS.get(name).options


def prompt_options(name: str) -> tuple[dataclasses.Field, ...]:
    """The declared options (dataclass fields) of method ``name``, in declaration order."""
    return dataclasses.fields(options_class(name))


def option_names(name: str) -> tuple[str, ...]:
    """The names of the options method ``name`` takes."""
    return tuple(f.name for f in prompt_options(name))


def options_from_config(name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The options of method ``name`` that a flat config (a whole ``TrainConfig`` dict) holds.

    An option added after the config was written takes its field's ``legacy`` value when it
    declares one (what the method did before the option existed), not today's default.
    """
    legacy = {f.name: f.metadata["legacy"] for f in prompt_options(name) if "legacy" in f.metadata}
    return {k: config[k] if k in config else legacy[k] for k in option_names(name) if k in config or k in legacy}


def _refuse_undeclared(name: str, options: Mapping[str, Any]) -> None:
    declared = set(option_names(name))
    for key in options:
        if key not in declared:
            raise LorspError(f"{option_flag(key)} does not apply to --prompt {name}")


def check_options(name: str, given: Mapping[str, Any]) -> None:
    """Refuse (:class:`LorspError`) an option the user gave that method ``name`` does not take, or
    that the mode the options choose does not use (``--gates`` under ``--gate rank``)."""
    _refuse_undeclared(name, given)
    fields = {f.name: f for f in prompt_options(name)}
    for key in given:
        for other, allowed in fields[key].metadata.get("applies_when", {}).items():
            value = given.get(other, fields[other].default)
            if value not in allowed:
                raise LorspError(f"{option_flag(key)} does not apply to {option_flag(other)} {value} "
                                 f"(only to {', '.join(f'{option_flag(other)} {a}' for a in allowed)})")


def create_prompt(name: str, image_size: int, **options: Any) -> VisualPrompt:
    """Build prompt ``name`` for ``image_size`` images; an option the method does not declare is refused.

    Options the method declares but the chosen mode does not use are accepted here (a stored
    config holds them all); :func:`check_options` is the user-facing check.
    """
    method = PROMPTS.get(name)
    _refuse_undeclared(name, options)
    return method.build(image_size, method.options(**options))
