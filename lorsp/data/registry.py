"""Dataset registry: a name -> a loader of :class:`~lorsp.data.base.SourceData`.

Loaders register themselves with :func:`register_dataset`; the rest of lorsp
only knows names. A name *form* such as ``imagefolder:PATH`` (a prefix and free
text) is a loader registered with :func:`register_name_form`, so this module
never imports the modules that hold loaders (imports point downward, into it).
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


FormLoader = Callable[[str], SourceData]
"""``loader(text) -> SourceData`` for a name ``PREFIX + text`` (``text`` as given, maybe empty)."""


@dataclass(frozen=True)
class NameForm:
    prefix: str
    loader: FormLoader
    shown: str
    """How the unknown-name error offers the form, e.g. ``imagefolder:PATH``."""
    text_is_path: bool
    """Whether the text after the prefix names a file or folder the loader reads (an input of the command)."""


IMAGEFOLDER_PREFIX = "imagefolder:"
"""The prefix of the ``imagefolder:PATH`` form (its loader is registered with :func:`register_name_form`)."""
DATASETS: Registry[DatasetEntry] = Registry("dataset")
NAME_FORMS: Registry[NameForm] = Registry("dataset name form", sort_names=False)


def register_dataset(name: str, *, offline: bool, description: str) -> Callable[[Loader], Loader]:
    """Decorator: register ``loader`` under ``name``."""

    def wrap(loader: Loader) -> Loader:
        DATASETS.add(name, DatasetEntry(name, loader, offline, description))
        return loader

    return wrap


def register_name_form(prefix: str, *, shown: str, text_is_path: bool) -> Callable[[FormLoader], FormLoader]:
    """Decorator: names starting with ``prefix`` load with ``loader(name[len(prefix):])``.

    ``shown`` (e.g. ``imagefolder:PATH``) joins the choices an unknown dataset name's error offers;
    ``text_is_path``: the text names what the loader reads (:func:`dataset_paths` lists it).
    """

    def wrap(loader: FormLoader) -> FormLoader:
        NAME_FORMS.add(prefix, NameForm(prefix, loader, shown, text_is_path))
        DATASETS.also = ", or ".join(NAME_FORMS.get(p).shown for p in NAME_FORMS.names())
        return loader

    return wrap


def list_datasets(offline_only: bool = False) -> list[str]:
    """Registered dataset names (name forms such as ``imagefolder:PATH`` are not listed)."""
    return [n for n in DATASETS.names() if DATASETS.get(n).offline or not offline_only]


def get_entry(name: str) -> DatasetEntry:
    """The registry entry of dataset ``name`` (a name form such as ``imagefolder:PATH`` is not one)."""
    return DATASETS.get(name)


def dataset_paths(name: str, root: str | Path | None = None) -> list[str]:
    """The files and folders dataset ``name`` (with data folder ``root``) reads: the inputs an output must never
    replace (:func:`lorsp.plumbing.publish.claim_output`'s ``sources``)."""
    paths = [str(root)] if root not in (None, "") else []
    for prefix in NAME_FORMS.names():
        form = NAME_FORMS.get(prefix)
        if name.startswith(prefix) and form.text_is_path and name[len(prefix):]:
            paths.append(name[len(prefix):])
    return paths


def load_source(name: str, root: str | Path | None = None, download: bool = False) -> SourceData:
    """Load the raw splits of dataset ``name`` (no resizing, no seeded split)."""
    for prefix in NAME_FORMS.names():
        if name.startswith(prefix):  # the text as given: its loader refuses an empty one
            return NAME_FORMS.get(prefix).loader(name[len(prefix):])
    entry = get_entry(name)
    return entry.loader(Path(root) if root is not None else None, download)
