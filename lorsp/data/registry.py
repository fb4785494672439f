"""Dataset registry: a name -> a loader of :class:`~lorsp.data.base.SourceData`.

Loaders register themselves with :func:`register_dataset`; the rest of lorsp
only knows names. ``imagefolder:PATH`` is resolved here as a special form.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lorsp.data.base import SourceData
from lorsp.plumbing.registry import Registry

Loader = Callable[[Path | None, bool], SourceData]
"""``loader(root, download) -> SourceData``; ``root`` is the user's data folder."""


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    loader: Loader
    offline: bool
    """True when the files come with a package (PyPI or Debian), no folder needed."""
    description: str


IMAGEFOLDER_PREFIX = "imagefolder:"
DATASETS: Registry[DatasetEntry] = Registry("dataset", also=f"{IMAGEFOLDER_PREFIX}PATH")


def register_dataset(name: str, *, offline: bool, description: str) -> Callable[[Loader], Loader]:
    """Decorator: register ``loader`` under ``name``."""

    def wrap(loader: Loader) -> Loader:
        DATASETS.add(name, DatasetEntry(name, loader, offline, description))
        return loader

    return wrap


def list_datasets(offline_only: bool = False) -> list[str]:
    """Registered dataset names (plus ``imagefolder:PATH``, which is not listed)."""
    return [n for n in DATASETS.names() if DATASETS.get(n).offline or not offline_only]


def get_entry(name: str) -> DatasetEntry:
    """The registry entry of dataset ``name`` (``imagefolder:PATH`` is not one)."""
    return DATASETS.get(name)


def load_source(name: str, root: str | Path | None = None, download: bool = False) -> SourceData:
    """Load the raw splits of dataset ``name`` (no resizing, no seeded split)."""
    if name.startswith(IMAGEFOLDER_PREFIX):
        from lorsp.data.user_sets import load_imagefolder

        return load_imagefolder(name[len(IMAGEFOLDER_PREFIX):])  # the text as given: an empty one is refused
    entry = get_entry(name)
    return entry.loader(Path(root) if root is not None else None, download)
