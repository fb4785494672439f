"""A run's config read back from a file (checkpoint, resume file, bundle manifest), checked as the command line is.

A stored config is data from a file, so it gets the same checks as ``lorsp-train``'s own
arguments: each known key's type (an ``image_size`` of ``"32"`` or ``32.0`` is refused), the
range and choices of its option, read from the option's one declaration (:mod:`lorsp.config`),
then the run's cross-option checks (:meth:`lorsp.config.TrainConfig.validate`). Every value is one
number, word, flag or None (a list or a dict nested 100,000 deep is refused by its key, before
anything prints or copies it), and a key that is no option of this lorsp is refused by name: a
misspelt option (``treshold``) would otherwise be dropped and the model rebuilt with the default,
and an unknown key would be carried, unchecked, into every bundle exported from the file. An option
removed from a method since the file was written (:class:`lorsp.prompts.base.Retired`) loads when
it holds the value under which the method did what it does today, and is refused by name otherwise.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from lorsp.config import check_config_values, train_config_class
from lorsp.prompts.base import check_retired, retired_options
from lorsp.plumbing.errors import LorspError

REQUIRED = ("backbone", "prompt", "head", "image_size")
"""Keys without which no model can be rebuilt."""
MAX_CLASSES = 100_000
MAX_EXACT_INT = 1 << 53
"""The largest whole number a stored config may hold (the command line's options stop far below; a float option
stored as a bigger int, 2^70, overflowed torch's int64 when the prompt was built)."""
SCALARS = (str, int, float, bool, type(None))
"""What every option's value is (the declared types of :class:`lorsp.config.TrainConfig`)."""


def check_stored_config(config: Any, source: str) -> dict[str, Any]:
    """``config`` if it is a run config ``lorsp-train`` would accept; LorspError (one line) naming the key otherwise."""
    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        raise LorspError(f"{source}: config is a {type(config).__name__}, not a mapping of option names to values")
    known = {f.name for f in dataclasses.fields(train_config_class())}
    retired = retired_options()
    for key, value in config.items():
        if key in retired and key not in known:  # an option removed since: its kept value still loads
            check_retired(key, value, retired[key], f"{source}: config {key!r}")
            continue
        if key not in known:
            raise LorspError(f"{source}: config key {key[:60]!r} is no option of this lorsp (written by another "
                             f"version, or edited)")
        if not isinstance(value, SCALARS):
            raise LorspError(f"{source}: config {key!r} is a {type(value).__name__}, not a single value")
        if isinstance(value, int) and abs(value) > MAX_EXACT_INT:  # a file's int where a float belongs: torch
            raise LorspError(f"{source}: config {key!r} is {value:.3g}, a whole number beyond 2^53 (no option "
                             f"takes one; torch overflows on it)")
    for key in REQUIRED:
        if key not in config:
            raise LorspError(f"{source}: config lacks {key!r}")
    check_config_values(config, name_of=lambda key: f"{source}: config {key!r}")
    train_config_class().from_stored(config).validate()
    return config


def check_classes(classes: Any, source: str) -> list[str]:
    """``classes`` if it is a non-empty list of distinct class names."""
    if not isinstance(classes, (list, tuple)) or not classes or len(classes) > MAX_CLASSES or \
            not all(isinstance(c, str) for c in classes) or len(set(classes)) != len(classes):
        raise LorspError(f"{source}: classes must be a list of 1 to {MAX_CLASSES} distinct names")
    return list(classes)
