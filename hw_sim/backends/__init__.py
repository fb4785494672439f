"""Simulator backends by name: ``get_backend("lava")(network, spikes, mode="fixed", timeout=60)``.

Every backend runs the same :class:`~deploy.network.SpikingNetwork` with the signature of
:class:`~hw_sim.backends.base.Backend` and returns a :class:`~hw_sim.backends.base.SimResult`;
no backend knows of another, and every one is checked by :func:`~hw_sim.backends.base.checked`
(``register_backend`` applies it). A new one is a module here with ``@register_backend(name)``
and one line below: an import, or, where the module imports something heavy, a module name
that :meth:`BackendRegistry.get` imports on first use. ``lava`` is such a one, so importing
this package, listing the backends and running ``fast`` never import Lava (nor patch
multiprocessing, :mod:`hw_sim.lava_runtime`).
"""
from __future__ import annotations

import importlib
from typing import Callable

from hw_sim.backends.base import MODES, Backend, SimResult, checked
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.registry import Registry


class BackendRegistry(Registry[Backend]):
    """A :class:`~lorsp.plumbing.registry.Registry` of backends whose entries may also be modules, imported on first get."""

    def __init__(self) -> None:
        super().__init__("backend")
        self._modules: dict[str, str] = {}

    def add_module(self, name: str, module: str) -> None:
        """``name`` is registered by ``module`` (``@register_backend(name)``), imported by the first :meth:`get`."""
        if name in self._modules or name in self._items:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._modules[name] = module

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
                importlib.import_module(self._modules[name])
            except ImportError as exc:
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise LorspError(f"the {name} backend cannot be loaded here ({reason}); "
                                 f"use another backend: {', '.join(n for n in self.names() if n != name)}") from None
        return super().get(name)


BACKENDS = BackendRegistry()
register_backend = BACKENDS.register


def list_backends() -> list[str]:
    """The names of every backend, sorted (``lava`` among them before Lava is imported)."""
    return BACKENDS.names()


def get_backend(name: str) -> Backend:
    """The backend ``name`` (for ``lava``: imports Lava); a one-line LorspError for an unknown or unloadable one."""
    return BACKENDS.get(name)


from hw_sim.backends import fast as _fast  # noqa: E402,F401  (registers "fast")
BACKENDS.add_module("lava", "hw_sim.backends.lava")  # registers "lava" when first asked for


def default_backend() -> str:
    """``fast`` where it is registered, else ``lava``."""
    return "fast" if "fast" in list_backends() else "lava"


__all__ = ["MODES", "Backend", "SimResult", "default_backend", "get_backend", "list_backends", "register_backend"]
