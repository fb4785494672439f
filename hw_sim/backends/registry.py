"""The registry of simulator backends, below every backend module and :mod:`hw_sim.backends`.

A backend module registers itself here (``@register_backend(name)``), so it takes no name
from its package's ``__init__``, which imports the backend modules: no circle of imports.
"""
from __future__ import annotations

import importlib
from typing import Callable

from hw_sim.backends.base import Backend, checked
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.registry import Registry


class BackendRegistry(Registry[Backend]):
    """A :class:`~lorsp.plumbing.registry.Registry` of backends whose entries may also be modules, imported on first get."""

    def __init__(self) -> None:
        super().__init__("backend")
        self._modules: dict[str, tuple[str, str]] = {}  # name -> (module, how to install what it imports)

    def add_module(self, name: str, module: str, install_hint: str = "") -> None:
        """``name`` is registered by ``module`` (``@register_backend(name)``), imported by the first :meth:`get`.

        ``install_hint`` says how to get what ``module`` imports; the refusal names it when the import fails.
        """
        if name in self._modules or name in self._items:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._modules[name] = (module, install_hint)

    def register(self, name: str) -> Callable[[Backend], Backend]:
        """Decorator: the simulation behind :func:`~hw_sim.backends.base.checked`, under ``name``."""
        return lambda simulate: self.add(name, checked(simulate))

    def names(self) -> list[str]:
        """Every backend, imported or not."""
        return sorted({*self._items, *self._modules})

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._modules

    def get(self, name: str) -> Backend:
        """The backend ``name``, importing its module first where needed; one-line LorspError if it cannot."""
        if name in self._modules and name not in self._items:
            try:
                importlib.import_module(self._modules[name][0])
            except ImportError as exc:
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                hint = self._modules[name][1]
                raise LorspError(f"the {name} backend cannot be loaded here ({reason}); "
                                 + (f"{hint}, or " if hint else "")
                                 + f"use another backend: {', '.join(n for n in self.names() if n != name)}") from None
        return super().get(name)


BACKENDS = BackendRegistry()
register_backend = BACKENDS.register
