"""Simulator backends by name: ``get_backend("lava")(network, spikes, mode="fixed", timeout=60)``.

Every backend runs the same :class:`~hw_sim.network.SpikingNetwork` with the signature of
:class:`~hw_sim.backends.base.Backend` and returns a :class:`~hw_sim.backends.base.SimResult`;
no backend knows of another. A new one is a module here with ``@register_backend`` and
one import below.
"""
from __future__ import annotations

from typing import Callable

from hw_sim.backends.base import MODES, Backend, SimResult
from lorsp.errors import LorspError

_REGISTRY: dict[str, Backend] = {}


def register_backend(name: str) -> Callable[[Backend], Backend]:
    def wrap(runner: Backend) -> Backend:
        if name in _REGISTRY:
            raise ValueError(f"backend {name!r} registered twice")
        _REGISTRY[name] = runner
        return runner

    return wrap


def list_backends() -> list[str]:
    return sorted(_REGISTRY)


def get_backend(name: str) -> Backend:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise LorspError(f"unknown backend {name!r}; choose one of: {', '.join(list_backends())}") from None


from hw_sim.backends import fast as _fast  # noqa: E402,F401  (registers "fast")
from hw_sim.backends import lava as _lava  # noqa: E402,F401  (registers "lava")

__all__ = ["MODES", "Backend", "SimResult", "get_backend", "list_backends", "register_backend"]
