"""A name -> object registry, the one mechanism behind every registry in lorsp.

    PROMPTS = Registry("prompt")
    @PROMPTS.register("lorvp")
    def lorvp(...): ...
    PROMPTS.get("lorvp"); PROMPTS.names()

Prompts, heads, backbones, datasets, energy tables and backends are all one of these.
An unknown name is a :class:`~lorsp.plumbing.errors.LorspError` listing the valid ones.
"""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

from lorsp.plumbing.errors import LorspError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named items of one ``kind``; ``also`` names a further choice the unknown-name error offers."""

    def __init__(self, kind: str, *, sort_names: bool = True, also: str | None = None):
        self.kind = kind
        self.sort_names = sort_names
        self.also = also
        self._items: dict[str, T] = {}
        self._sealed_by: str | None = None

    def add(self, name: str, item: T) -> T:
        """Register ``item`` under ``name`` (a name registers once); returns ``item``."""
        if self._sealed_by is not None:
            raise TypeError(f"{self.kind} {name!r} registered after {self._sealed_by} read the {self.kind}s: "
                            f"import the module that registers it first")
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._items[name] = item
        return item

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""
        return lambda item: self.add(name, item)

    def seal(self, reader: str) -> None:
        """Refuse later additions: ``reader`` (named in the refusal) has built something from every entry."""
        self._sealed_by = reader

    def names(self) -> list[str]:
        """Registered names, sorted unless the registry keeps registration order."""
        return sorted(self._items) if self.sort_names else list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def get(self, name: str) -> T:
        """The item registered as ``name``; a :class:`LorspError` naming the choices otherwise."""
        try:
            return self._items[name]
        except KeyError:
            also = f", or {self.also}" if self.also else ""
            raise LorspError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}{also}") from None
