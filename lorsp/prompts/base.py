"""The prompt contract: what every visual prompt is and declares, in one place.

A prompt is a module ``x -> p(x)`` added to the image: ``x`` is the resized image in [0, 1] and
the backbone sees ``normalize(x + p(x))`` (no clamp, as in LoR-VP). A method is one module in
this package, a :class:`VisualPrompt` subclass with its equation in the docstring, and one
registry line::

    @dataclass(frozen=True)
    class LorvpOptions:
        rank: int = field(default=4, metadata={"help": "rank r of the factors", "parse": integer(1, 4096)})

    @register_prompt("lorvp")
    class LowRankPrompt(VisualPrompt):
        Options = LorvpOptions
        ...

Everything else reads the declarations:

* **options** (:attr:`VisualPrompt.Options`, a frozen dataclass): each field's default,
  ``help``, optional ``parse`` (the range-checked type of :mod:`lorsp.plumbing.cli_options`),
  ``choices``, ``applies_when`` (``{"gate": ("rowcol",)}``: used only when option ``gate`` has
  one of those values; :func:`check_options` refuses it otherwise) and ``legacy`` (what a
  stored config that predates the option meant; :func:`options_from_config`). The method's
  ``lorsp-train`` argument group, the run config's fields, the prompt keys of
  ``metrics.json``, the stored-config check and the constructor all come from it; values are
  checked once, by :func:`check_option_values`, when a prompt is built from them.
* **parameter groups** (:meth:`VisualPrompt.param_groups`): which parameters learn at which rate.
* **loss terms** (:meth:`VisualPrompt.loss_terms`): computed from the declared outputs of the
  forward pass (:class:`PromptOutput`, from :meth:`VisualPrompt.output`), never from state kept
  between calls.
* **calibration** (:attr:`VisualPrompt.calibrates`, :meth:`VisualPrompt.calibrate`).
* **a chip part** (:attr:`VisualPrompt.chip_part`): a prompt whose spiking generator runs on the
  chip also computes the host's side from the chip's spikes (:meth:`VisualPrompt.add_from_spikes`).
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import typing
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

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


@dataclass(frozen=True)
class PromptOutput:
    """The declared outputs of one forward pass: the prompt, and the generator's trace where there is one."""

    prompt: torch.Tensor
    trace: GeneratorTrace | None = None


@dataclass(frozen=True)
class LearningRates:
    """The run's learning rates a prompt chooses from: ``base`` (``--lr``) and ``prompt`` (``--prompt-lr``)."""

    base: float
    prompt: float


@dataclass(frozen=True)
class Retired:
    """What became of a removed option or option value, for configs written while it existed.

    A removed option (``VisualPrompt.retired_options``) is still accepted in a stored config when it holds
    ``kept``, the value under which the method did what it does today; any other value, like a removed choice
    (``"retired"`` in a field's metadata), is refused in one line naming ``last_commit``, the last commit that
    still runs it (docs/method.md keeps its figures).
    """

    last_commit: str
    kept: Any = None

    def refusal(self, what: str) -> str:
        """The one-line refusal that begins with ``what`` (``--relay 'frame' was``), naming :attr:`last_commit`."""
        return (f"{what} removed from lorsp after commit {self.last_commit} (docs/method.md keeps its "
                f"figures): run that commit to use it")


@dataclass(frozen=True)
class NoOptions:
    """The options of a method that takes none."""


class VisualPrompt(nn.Module):
    """Base class: ``forward(x)`` returns the additive prompt, shaped like ``x``.

    Built from its options object, ``Cls(image_size, options)``, or with the declared defaults and
    some of them overridden, ``Cls(image_size, rank=8)``: either way the defaults are the declared
    ones, the same the command line gets.
    """

    Options: ClassVar[type] = NoOptions
    retired_options: ClassVar[Mapping[str, Retired]] = {}
    """Options the method no longer has, by field name (:class:`Retired`)."""
    chip_part: ClassVar[bool] = False
    """Whether part of the prompt runs on the chip and the rest on the host. Such a prompt also has
    ``spiking_generator`` (the snnTorch network the exporters write as NIR and netx), ``encoding`` (its
    :class:`lorsp.encoding.Encoding`) and ``encode(x)`` (its input spikes ``(T, N, D)``), besides the host
    methods below (:meth:`host_state`, :meth:`prompt_from_spikes`, :meth:`add_from_spikes`)."""

    def __init__(self, image_size: int, options: Any = None, **overrides: Any):
        super().__init__()
        self.image_size = int(image_size)
        options = self.Options() if options is None else options
        if type(options) is not self.Options:
            raise TypeError(f"{type(self).__name__} takes {self.Options.__name__}, got {type(options).__name__}")
        self.options = dataclasses.replace(options, **overrides) if overrides else options
        check_option_values(self.options)

    def check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[-2:] != (self.image_size, self.image_size):
            raise LorspError(f"prompt expects images of shape (N, 3, {self.image_size}, "
                             f"{self.image_size}), got {tuple(x.shape)}")

    def output(self, x: torch.Tensor) -> PromptOutput:
        """The prompt for ``x`` with the outputs its loss terms read (default: the prompt alone)."""
        return PromptOutput(self(x))

    def trace(self, x: torch.Tensor) -> tuple[torch.Tensor, GeneratorTrace | None]:
        """The prompt for ``x`` and what its spiking generator did (None: a prompt without one)."""
        out = self.output(x)
        return out.prompt, out.trace

    def param_groups(self, rates: LearningRates) -> list[tuple[list[nn.Parameter], float]]:
        """The trainable parameters in groups with their learning rates (default: all at ``rates.prompt``)."""
        return [([p for p in self.parameters() if p.requires_grad], rates.prompt)]

    def loss_terms(self, out: PromptOutput, epoch: float) -> torch.Tensor | None:
        """What the method adds to the task loss for the batch that gave ``out``, weighted, at (fractional)
        ``epoch``; None: nothing."""
        return None

    def selectable(self, epochs_done: int) -> bool:
        """Whether the model after ``epochs_done`` epochs may be the val-selected one: False while the method's
        training schedule has not reached its trained form (default: always)."""
        return True

    def settle(self) -> None:
        """After each epoch's training steps: bring trained parameters onto the form they are deployed in, without
        changing what the prompt computes (default: nothing to do)."""

    @property
    def calibrates(self) -> bool:
        """Whether :meth:`calibrate` does anything (the trainer loads its images only then)."""
        return False

    def calibrate(self, x: torch.Tensor) -> float | None:
        """A data-dependent start from training images ``x``, before the first step (default: none)."""
        return None

    def prompt_from_spikes(self, gate_spikes: torch.Tensor) -> torch.Tensor:
        """A chip prompt's host side: the prompt ``(N, 3, L, L)`` from the chip's gate spikes ``(T, N, gates)``."""
        raise LorspError(f"{type(self).__name__} has no chip part")

    def add_from_spikes(self, x: torch.Tensor, gate_spikes: torch.Tensor) -> tuple[torch.Tensor, int]:
        """A chip prompt's host side: ``x + P`` from the chip's gate spikes ``(T, N, gates)``, and the prompt
        entries the host added (whole batch)."""
        raise LorspError(f"{type(self).__name__} has no chip part")

    def chip_refusal(self) -> str | None:
        """A chip prompt's reason, in one line, why this configuration has no chip export yet (None: it has one)."""
        return None

    def host_state(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """A chip prompt's part of the host file: tensors (``encoding.*``: its input encoding; ``prompt.*``: a
        trained one, loaded back into the parameter of that name, or a fixed one the config must reproduce) and
        metadata (text the config must reproduce)."""
        raise LorspError(f"{type(self).__name__} has no chip part")

    def num_params(self) -> int:
        """Trainable parameters of the prompt."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


PROMPTS: Registry[type[VisualPrompt]] = Registry("prompt")
"""Method name -> its :class:`VisualPrompt` subclass (its options: the class's ``Options``)."""


def check_declaration(name: str, options: type) -> None:
    """Refuse (TypeError) an options class that is not a frozen dataclass of declared, helped, parseable fields."""
    if not (dataclasses.is_dataclass(options) and options.__dataclass_params__.frozen):
        raise TypeError(f"prompt {name!r}: options must be a frozen dataclass, got {options!r}")
    for f in dataclasses.fields(options):
        if f.default is dataclasses.MISSING or "help" not in f.metadata:
            raise TypeError(f"prompt {name!r}: option {f.name!r} needs a default and a help string")
        option_type(options, f)  # a form on the command line


def register_prompt(name: str) -> Callable[[type], type]:
    """Class decorator: register a :class:`VisualPrompt` subclass as method ``name`` (its options: its ``Options``)."""

    def wrap(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, VisualPrompt)):
            raise TypeError(f"prompt {name!r}: register a VisualPrompt subclass, got {cls!r}")
        check_declaration(name, cls.Options)
        PROMPTS.add(name, cls)
        return cls

    return wrap


def list_prompts() -> list[str]:
    """Registered prompt method names."""
    return PROMPTS.names()


def chip_prompts() -> list[str]:
    """The registered methods with a chip part (:attr:`VisualPrompt.chip_part`)."""
    return [name for name in PROMPTS.names() if PROMPTS.get(name).chip_part]


def option_flag(name: str) -> str:
    """The command-line spelling of option ``name``: ``time_steps`` -> ``--time-steps``."""
    return "--" + name.replace("_", "-")


def options_class(name: str) -> type:
    """The frozen dataclass that declares the options of method ``name``."""
    return PROMPTS.get(name).Options


def prompt_options(name: str) -> tuple[dataclasses.Field, ...]:
    """The declared options (dataclass fields) of method ``name``, in declaration order."""
    return dataclasses.fields(options_class(name))


def option_names(name: str) -> tuple[str, ...]:
    """The names of the options method ``name`` takes."""
    return tuple(f.name for f in prompt_options(name))


@functools.lru_cache(maxsize=None)
def declared_types(options: type) -> dict[str, Any]:
    """The annotations of a declaring dataclass, resolved once per class."""
    return typing.get_type_hints(options)


def option_type(options: type, field: dataclasses.Field) -> Callable[[str], Any]:
    """The command-line type of a declared option: its ``parse`` metadata (a range-checked
    :mod:`lorsp.plumbing.cli_options` type), else its annotation, ``X | None`` read as ``X``.

    A number without a declared range is still refused when it is NaN or infinite.
    """
    from lorsp.plumbing.cli_options import integer, number

    hint = declared_types(options)[field.name]
    kinds = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    if len(kinds) != 1 or kinds[0] not in (int, float, str):
        raise TypeError(f"option {field.name!r} of {options.__name__}: no command-line form for {hint}")
    if "parse" in field.metadata:
        return field.metadata["parse"]
    return {int: integer(), float: number()}.get(kinds[0], kinds[0])


def value_kind_ok(value: Any, hint: Any) -> bool:
    """Whether ``value`` (from a file or a call, not a string from the command line) is of annotation ``hint``'s kind."""
    kinds = [k for k in typing.get_args(hint) if k is not type(None)] or [hint]
    if value is None:
        return type(None) in typing.get_args(hint)
    if isinstance(value, bool):
        return bool in kinds
    if isinstance(value, int):
        return int in kinds or float in kinds
    if isinstance(value, float):
        return float in kinds
    return isinstance(value, str) and str in kinds


def check_value(options: type, field: dataclasses.Field, value: Any, name: str | None = None) -> None:
    """One declared option's value against its declaration: its kind, its ``choices``, its ``parse`` range.

    ``options`` is the dataclass that declares ``field``; ``name`` how the message names the option
    (default: its flag, ``--rank``). Raises a one-line :class:`LorspError`.
    """
    name = name or option_flag(field.name)
    hint = declared_types(options)[field.name]
    if not value_kind_ok(value, hint):
        raise LorspError(f"{name} is {value!r:.60}, not of type {getattr(hint, '__name__', hint)}")
    choices = field.metadata.get("choices")
    choices = choices() if callable(choices) else choices
    retired = field.metadata.get("retired", {}).get(value) if isinstance(value, str) else None
    if retired is not None:
        raise LorspError(retired.refusal(f"{name} {value!r} was"))
    if choices is not None and value is not None and value not in choices:
        listed = ", ".join(map(str, choices))
        raise LorspError(f"unknown {name} {value!r:.60}; choose one of: {listed}" if name.startswith("--") else
                         f"{name} is {value!r:.60}, not one of {listed}")
    if isinstance(value, float) and not math.isfinite(value):
        raise LorspError(f"{name} must be a finite number, got {value}")
    parse = field.metadata.get("parse")
    if parse is not None and value is not None and not isinstance(value, (str, bool)):
        try:
            parse(repr(value) if isinstance(value, float) else str(value))
        except argparse.ArgumentTypeError as exc:
            raise LorspError(f"{name} {exc}") from None


def retired_options() -> dict[str, Retired]:
    """Every registered method's removed options, by field name."""
    return {name: r for method in map(PROMPTS.get, PROMPTS.names()) for name, r in method.retired_options.items()}


def check_retired(key: str, value: Any, retired: Retired, name: str) -> None:
    """A stored config's removed option ``key`` (``retired``, what became of it): accepted when it holds the
    value kept, else one line."""
    if value != retired.kept or type(value) is not type(retired.kept):
        raise LorspError(retired.refusal(f"{name} = {value!r:.60} uses {option_flag(key)},"))


def check_option_values(options: Any) -> None:
    """Every field of an options object against its declaration (:func:`check_value`)."""
    for f in dataclasses.fields(options):
        check_value(type(options), f, getattr(options, f.name))


def prompt_from_config(config: Mapping[str, Any]) -> VisualPrompt:
    """The prompt a flat run config describes (its method's declared options taken from it, the rest left)."""
    name = config["prompt"]
    return create_prompt(name, image_size=config["image_size"], **options_from_config(name, config))


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


def unmet_condition(name: str, key: str, options: Mapping[str, Any]) -> tuple[str, Any, tuple] | None:
    """The first ``applies_when`` condition of method ``name``'s option ``key`` that ``options`` (an option absent
    there at its declared default) do not meet, as ``(other option, its value, the values allowed)``; None
    when the mode the options choose uses ``key``."""
    fields = {f.name: f for f in prompt_options(name)}
    for other, allowed in fields[key].metadata.get("applies_when", {}).items():
        value = options.get(other, fields[other].default)
        if value not in allowed:
            return other, value, allowed
    return None


def options_in_use(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Of method ``name``'s ``options``, those the mode they choose uses (:func:`unmet_condition`)."""
    return {k: v for k, v in options.items() if unmet_condition(name, k, options) is None}


def check_options(name: str, given: Mapping[str, Any]) -> None:
    """Refuse (:class:`LorspError`) an option the user gave that method ``name`` does not take, or
    that the mode the options choose does not use (``--gates`` under ``--gate rank``)."""
    _refuse_undeclared(name, given)
    for key in given:
        if unmet := unmet_condition(name, key, given):
            other, value, allowed = unmet
            raise LorspError(f"{option_flag(key)} does not apply to {option_flag(other)} {value} "
                             f"(only to {', '.join(f'{option_flag(other)} {a}' for a in allowed)})")


def create_prompt(name: str, image_size: int, **options: Any) -> VisualPrompt:
    """Build prompt ``name`` for ``image_size`` images; an option the method does not declare is refused.

    Options the method declares but the chosen mode does not use are accepted here (a stored
    config holds them all); :func:`check_options` is the user-facing check.
    """
    _refuse_undeclared(name, options)
    method = PROMPTS.get(name)
    return method(image_size, method.Options(**options))
