"""A run's config, declared once: the protocol's own options and, beside them, every prompt's.

:class:`RunOptions` declares the options of a run that every method shares (data, backbone,
head, budget, optimiser, seed, precision), each field with its default, ``help`` and, where it
has a range, its ``parse`` type (:mod:`lorsp.plumbing.cli_options`). :class:`TrainConfig` is
made from those fields and the declared options of every registered prompt method
(:mod:`lorsp.prompts`), so a prompt option exists once, in its method's ``Options``: the
``lorsp-train`` arguments, the config saved with every run, the prompt keys of
``metrics.json`` and the check of a config read back from a file (:func:`check_config_values`)
all come from these declarations.
"""
from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import asdict, dataclass, field
from typing import Any

from lorsp.heads import HEADS, list_heads
from lorsp.plumbing.cli_options import MAX_IMAGES, count, integer, number, seed
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.precision import PRECISIONS, check_precision_name
from lorsp.prompts import (list_prompts, option_names, options_class, options_from_config, prompt_from_config,
                           prompt_options)
from lorsp.prompts.base import PROMPTS, check_value

MAX_IMAGE_SIZE = 2048
"""The largest ``--image-size`` (a 2048 x 2048 batch of one already needs gigabytes in the backbone)."""
MAX_EPOCHS = 100_000
MAX_BATCH = 65_536


def option(default: Any, help: str, **metadata: Any) -> Any:
    """A declared run option: its default, ``help`` and optional ``parse``/``choices`` metadata."""
    return field(default=default, metadata={"help": help, **metadata})


@dataclass
class RunOptions:
    """The options of a run that do not belong to a prompt method."""

    dataset: str = option("mnist-5k", "the dataset: a registered name (lorsp.data.list_datasets) or "
                                      "imagefolder:PATH")
    backbone: str = option("efficientnet_lite0", "the frozen backbone, a timm name")
    prompt: str = option("lorvp", "the prompt method (its options: the groups below)", choices=list_prompts)
    head: str = option("lp", "the classification head", choices=list_heads)
    image_size: int = option(128, "L: images resize to L x L", parse=integer(16, MAX_IMAGE_SIZE))
    epochs: int = option(20, "training epochs", parse=count(maximum=MAX_EPOCHS))
    batch_size: int = option(256, "training batch size", parse=count(maximum=MAX_BATCH))
    lr: float = option(0.02, "learning rate of the head (and of the prompt unless --prompt-lr is given)",
                       parse=number(0.0, above=True))
    prompt_lr: float | None = option(None, "learning rate of the prompt's image parameters (VP's pad, the "
                                           "low-rank factors)", parse=number(0.0, above=True))
    momentum: float = option(0.9, "SGD momentum", parse=number(0.0, 1.0, below=True))
    weight_decay: float = option(1e-4, "SGD weight decay", parse=number(0.0))
    seed: int = option(0, "the seed of the model's start, the data order and few-shot draws", parse=seed())
    limit_train: int | None = option(None, "use the first K training images", parse=count())
    limit_val: int | None = option(None, "first K val images (default: --limit-test)", parse=count())
    limit_test: int | None = option(None, "use the first K test images", parse=count())
    shots: int | None = option(None, "few-shot: K training images per class (drawn with --seed, after "
                                     "--limit-train)", parse=count(maximum=MAX_IMAGES))
    data_root: str | None = option(None, "folder of a user's dataset files (cifar10, ...)")
    download: bool = option(False, "let torchvision download into --data-root")
    weights: str | None = option(None, "backbone weights (.safetensors or state dict)")
    precision: str = option("fp32", "training steps' arithmetic: fp32; bf16 or fp16 autocast (fp16 with a "
                                    "gradient scaler); val and test are scored in fp32", choices=lambda: list(PRECISIONS))


RUN_KEYS = ("dataset", "backbone", "prompt", "head", "rank", "image_size", "epochs", "batch_size", "lr",
            "prompt_lr", "seed", "shots", "precision")
"""Config keys every run's metrics.json holds (``rank`` too, as results tables have always read it);
the prompt's own declared options follow (:func:`metrics_config`)."""


def prompt_fields() -> list[dataclasses.Field]:
    """Every registered method's declared options, once each (methods with fewer options first, as the
    command line lists them); an option two methods declare must have one default."""
    PROMPTS.seal("lorsp.config")  # TrainConfig holds every method's options: a later method would be missing
    seen: dict[str, tuple[str, dataclasses.Field]] = {}
    for name in sorted(list_prompts(), key=lambda n: len(prompt_options(n))):
        for f in prompt_options(name):
            if f.name in seen and f.default != seen[f.name][1].default:
                raise TypeError(f"option {f.name!r}: --prompt {name} and --prompt {seen[f.name][0]} "
                                f"declare different defaults")
            seen.setdefault(f.name, (name, f))
    return [f for _, f in seen.values()]


def declaring_class(name: str) -> type:
    """The dataclass that declares config key ``name``: :class:`RunOptions` or a prompt's ``Options``."""
    if name in {f.name for f in dataclasses.fields(RunOptions)}:
        return RunOptions
    for method in list_prompts():
        if name in option_names(method):
            return options_class(method)
    raise KeyError(name)


class _ConfigMethods:
    def to_dict(self) -> dict[str, Any]:
        """The config as a flat dict of plain values (what ``config.json`` and checkpoints hold)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any:
        """A config from a flat dict; keys it does not know (a newer lorsp's) are left out, keys it lacks take their
        defaults (the command line's options not typed)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_stored(cls, d: dict[str, Any]) -> Any:
        """The config a stored one (a checkpoint's, a ``config.json``) describes: as :meth:`from_dict`, but an option
        of its method that it lacks (written before the option existed) takes the option's declared ``legacy``
        value, what that run had (:func:`lorsp.prompts.options_from_config`, as the model is built), not today's
        default."""
        method = d.get("prompt")
        older = options_from_config(method, d) if isinstance(method, str) and method in list_prompts() else {}
        return cls.from_dict({**older, **d})

    def validate(self) -> None:
        """Refuse (one-line LorspError) a value outside its declaration, or a prompt the options cannot build."""
        check_precision_name(self.precision)  # its own message, as lorsp.plumbing.precision gives it everywhere
        check_config_values(self.to_dict())
        HEADS.get(self.head)  # an unknown head is refused, naming the registered ones
        prompt_from_config(self.to_dict())  # the prompt's own checks before any data is loaded
        if self.prompt == "none" and self.head == "flm":
            raise LorspError("--prompt none with --head flm trains nothing: use --head lp (linear probe)")


def _config_field(f: dataclasses.Field) -> tuple[str, Any, dataclasses.Field]:
    declared = typing.get_type_hints(declaring_class(f.name))[f.name]
    return f.name, declared, field(default=f.default, metadata=f.metadata)


@functools.lru_cache(maxsize=1)
def train_config_class() -> type:
    """:class:`TrainConfig`, made on first use from :class:`RunOptions` and every method registered by then
    (the prompt registry is sealed from that moment: a method registered later would have no fields)."""
    return dataclasses.make_dataclass(
        "TrainConfig", [_config_field(f) for f in (*dataclasses.fields(RunOptions), *prompt_fields())],
        bases=(_ConfigMethods,), namespace={"__doc__": "Everything that defines a run (the run's options and every "
                                                       "prompt's); saved with every result.", "__module__": __name__})


def __getattr__(name: str) -> Any:
    """``lorsp.config.TrainConfig``: made when first asked for (:func:`train_config_class`), so that a user's
    prompt module imported before the trainer is part of it."""
    if name == "TrainConfig":
        return train_config_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_config_values(config: dict[str, Any], name_of=None) -> None:
    """Every known key of a flat config against its declaration (:func:`lorsp.prompts.base.check_value`).

    ``name_of(key)`` says how a message names the key (default: its flag); unknown keys are left alone.
    """
    config_class = train_config_class()
    for f in dataclasses.fields(config_class):
        if f.name in config:
            check_value(config_class, f, config[f.name], name_of(f.name) if name_of else None)


def metrics_config(cfg: Any) -> dict[str, Any]:
    """The config keys of ``metrics.json``: :data:`RUN_KEYS`, then the options ``cfg.prompt`` declares."""
    config = cfg.to_dict()
    keys = [*RUN_KEYS, *(k for k in option_names(cfg.prompt) if k not in RUN_KEYS)]
    return {k: config[k] for k in keys}
