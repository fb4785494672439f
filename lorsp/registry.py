"""A name -> object registry, the one mechanism behind every registry in lorsp.

    PROMPTS = Registry("prompt")
    @PROMPTS.register("lorvp")
    def lorvp(...): ...
    PROMPTS.get("lorvp"); PROMPTS.names()

An unknown name is a :class:`~lorsp.errors.LorspError` listing the valid ones.
"""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

from lorsp.errors import LorspError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, *, sort_names: bool = True):
        self.kind = kind
        self.sort_names = sort_names
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._items[name] = item
        return item

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""
        return lambda item: self.add(name, item)

    def names(self) -> list[str]:
        return sorted(self._items) if self.sort_names else list(self._items)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise LorspError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}") from None
