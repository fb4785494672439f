"""A run's config read back from a file (checkpoint, resume file, bundle manifest), checked as the command line is.

A stored config is data from a file, so it gets the same checks as ``lorsp-train``'s own
arguments: each known key's type (an ``image_size`` of ``"32"`` or ``32.0`` is refused), the
range of its option (the argparse types of :mod:`lorsp.plumbing.cli_options`, read from the parser
itself, so the two cannot drift apart), its choices, then the run's cross-option checks
(:meth:`lorsp.train.TrainConfig.validate`). Keys a newer lorsp may add are left alone.
"""
from __future__ import annotations

import argparse
import functools
import typing
from dataclasses import fields
from typing import Any

from lorsp.plumbing.errors import LorspError

REQUIRED = ("backbone", "prompt", "head", "image_size")
"""Keys without which no model can be rebuilt."""
MAX_CLASSES = 100_000


@functools.lru_cache(maxsize=1)
def _options() -> tuple[dict[str, type], dict[str, argparse.Action]]:
    from lorsp.train import TrainConfig, build_parser  # lorsp.train imports the model, which imports this

    hints = typing.get_type_hints(TrainConfig)
    actions = {a.dest: a for a in build_parser()._actions}
    return {f.name: hints[f.name] for f in fields(TrainConfig)}, actions


def _kind_ok(value: Any, hint: Any) -> bool:
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


def check_stored_config(config: Any, source: str) -> dict[str, Any]:
    """``config`` if it is a run config ``lorsp-train`` would accept; LorspError (one line) naming the key otherwise."""
    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        raise LorspError(f"{source}: config is a {type(config).__name__}, not a mapping of option names to values")
    hints, actions = _options()
    for key in REQUIRED:
        if key not in config:
            raise LorspError(f"{source}: config lacks {key!r}")
    for key, hint in hints.items():
        if key not in config:
            continue
        value = config[key]
        if not _kind_ok(value, hint):
            raise LorspError(f"{source}: config {key!r} is {value!r:.60}, not of type "
                             f"{getattr(hint, '__name__', hint)}")
        action = actions.get(key)
        if action is None or value is None:
            continue
        if callable(action.type) and not isinstance(value, str):
            try:
                action.type(repr(value) if isinstance(value, float) else str(value))
            except argparse.ArgumentTypeError as exc:
                raise LorspError(f"{source}: config {key!r} {exc}") from None
        if action.choices is not None and value not in action.choices:
            raise LorspError(f"{source}: config {key!r} is {value!r:.60}, not one of "
                             f"{', '.join(map(str, action.choices))}")
    from lorsp.train import TrainConfig

    TrainConfig.from_dict(config).validate()
    return config


def check_classes(classes: Any, source: str) -> list[str]:
    """``classes`` if it is a non-empty list of distinct class names."""
    if not isinstance(classes, (list, tuple)) or not classes or len(classes) > MAX_CLASSES or \
            not all(isinstance(c, str) for c in classes) or len(set(classes)) != len(classes):
        raise LorspError(f"{source}: classes must be a list of 1 to {MAX_CLASSES} distinct names")
    return list(classes)
