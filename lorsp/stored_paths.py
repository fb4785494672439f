"""Paths a file stores are data: lorsp opens a path only when the user names it.

A checkpoint's, resume file's or bundle's config names the backbone weights the model was
trained with (``weights``), the user's data folder (``data_root``) and maybe an image folder
(``dataset`` ``imagefolder:PATH``). A file from someone else can name ``/etc/shadow`` as weights
(opening it told whether it exists) or a private folder to run on. So:

* **weights**: a weights path stored in a file is never opened. The command names the file
  (``--weights FILE``; ``lorsp.load(path, weights=FILE)``), and the model's
  ``backbone_weights_sha256`` then checks it is the file the model was trained with;
* **data** (in a console script, which loads images): a stored ``data_root``, when the data set
  used reads one, and a stored ``imagefolder:PATH``, when ``--dataset`` names no other, are
  refused in one line that names the flag to pass (``--data-root DIR``, ``--dataset
  imagefolder:PATH``); the command's paths are used instead of the stored ones.

A console script says what its command line named with :func:`name_paths` (once, in its
``main``; :func:`lorsp.plumbing.cli.run_cli` keeps it to that call); the readers of stored
configs (:func:`lorsp.model.read_checkpoint`, the resume reader, :class:`deploy.bundle.Bundle`)
pass each config through :func:`with_named_paths`.
"""
from __future__ import annotations

import argparse
import dataclasses
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator

from lorsp.data.registry import dataset_paths, get_entry, list_datasets
from lorsp.plumbing.errors import LorspError


@dataclasses.dataclass(frozen=True)
class NamedPaths:
    """The paths the running command named; None: not named."""

    weights: str | None = None
    """``--weights``: the backbone weights file."""
    data_root: str | None = None
    """``--data-root``: the folder of a user's data set."""
    dataset: str | None = None
    """``--dataset``: the data set the command reads instead of the model's."""
    reads_data: bool = False
    """True in a console script that loads images (all four); the library's readers load none."""


_NAMED: ContextVar[NamedPaths] = ContextVar("lorsp_named_paths", default=NamedPaths())


def name_paths(*, weights: str | None = None, data_root: str | None = None, dataset: str | None = None) -> None:
    """What the running console script's command line named (for the rest of its ``main``)."""
    _NAMED.set(NamedPaths(weights=weights, data_root=data_root, dataset=dataset, reads_data=True))


@contextmanager
def named_weights(weights: str | None) -> Iterator[None]:
    """Within the block, ``weights`` counts as named (``lorsp.load(path, weights=...)``)."""
    token = _NAMED.set(dataclasses.replace(_NAMED.get(), weights=weights)) if weights is not None else None
    try:
        yield
    finally:
        if token is not None:
            _NAMED.reset(token)


def with_named_paths(config: dict[str, Any], source: str) -> dict[str, Any]:
    """A copy of a stored ``config`` whose paths are the command's (see the module docstring); LorspError (one
    line, naming the flag to pass) for a stored path the command would read but did not name."""
    named = _NAMED.get()
    config = dict(config)
    stored = config.get("weights")
    if stored is not None and named.weights is None:
        raise LorspError(f"{source} names backbone weights {stored[:200]!r}; a path stored in a file is never "
                         f"opened: pass --weights FILE (its sha256 is checked against the model's)")
    if named.weights is not None:
        config["weights"] = named.weights
    if not named.reads_data:
        return config
    dataset = named.dataset or config.get("dataset") or ""
    if named.dataset is None and dataset_paths(dataset):
        raise LorspError(f"{source} names data set {dataset[:200]!r}, a folder this command did not name; a path "
                         f"stored in a file is never read: pass --dataset {dataset[:200]} to read it")
    stored_root = config.get("data_root")
    if named.data_root is not None:
        config["data_root"] = named.data_root
    elif stored_root is not None:
        if _reads_root(dataset):
            raise LorspError(f"{source} names data folder {stored_root[:200]!r} for {dataset}; a path stored in a "
                             f"file is never read: pass --data-root DIR")
        config["data_root"] = None
    return config


def _reads_root(dataset: str) -> bool:
    """Whether data set ``dataset`` reads the user's data folder (a registered one that comes with no package)."""
    return dataset in list_datasets() and not get_entry(dataset).offline


def add_path_flags(parser: argparse.ArgumentParser) -> None:
    """``--weights`` and ``--data-root`` for a command that reads a stored config (lorsp-export, lorsp-hwsim,
    lorsp-cosim); ``--dataset`` each command declares itself."""
    parser.add_argument("--weights", default=None, metavar="FILE",
                        help="the backbone weights file the model was trained with, when it was trained with "
                             "--weights (a path stored in a checkpoint or bundle is never opened)")
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="the folder of the data set's files, for a data set read from one (a path stored in "
                             "a checkpoint or bundle is never read)")


def name_paths_of(args: argparse.Namespace) -> None:
    """:func:`name_paths` from a parsed command line (options it lacks, or did not type, count as not named)."""
    name_paths(weights=getattr(args, "weights", None), data_root=getattr(args, "data_root", None),
               dataset=getattr(args, "dataset", None))
