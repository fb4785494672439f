"""Simulator backends by name: ``get_backend("lava")(network, spikes, mode="fixed", timeout=60)``.

Every backend runs the same :class:`~deploy.network.SpikingNetwork` with the signature of
:class:`~hw_sim.backends.base.Backend` and returns a :class:`~hw_sim.backends.base.SimResult`;
no backend knows of another, and every one is checked by :func:`~hw_sim.backends.base.checked`
(``register_backend`` applies it). A new one is a module here with ``@register_backend(name)``
(from :mod:`hw_sim.backends.registry`) and one line below: an import, or, where the module
imports something heavy, a module name that :meth:`~hw_sim.backends.registry.BackendRegistry.get`
imports on first use. ``lava`` is such a one, so importing this package, listing the backends
and running ``fast`` never import Lava (nor patch multiprocessing, :mod:`hw_sim.lava_runtime`).
"""
from __future__ import annotations

from hw_sim.backends.base import MODES, Backend, SimResult
from hw_sim.backends.registry import BACKENDS, register_backend
from hw_sim.lava_runtime import LAVA_INSTALL_HINT


def list_backends() -> list[str]:
    """The names of every backend, sorted (``lava`` among them before Lava is imported)."""
    return BACKENDS.names()


def get_backend(name: str) -> Backend:
    """The backend ``name`` (for ``lava``: imports Lava); a one-line LorspError for an unknown or unloadable one."""
    return BACKENDS.get(name)


from hw_sim.backends import fast as _fast  # noqa: E402,F401  (registers "fast")
BACKENDS.add_module("lava", "hw_sim.backends.lava", LAVA_INSTALL_HINT)  # registers "lava" when first asked for


def default_backend() -> str:
    """``fast`` where it is registered, else ``lava``."""
    return "fast" if "fast" in list_backends() else "lava"


__all__ = ["MODES", "Backend", "SimResult", "default_backend", "get_backend", "list_backends", "register_backend"]
