"""Simulator backends by name: ``get_backend("lava")(network, spikes, mode="fixed", timeout=60)``.

Every backend runs the same :class:`~deploy.network.SpikingNetwork` with the signature of
:class:`~hw_sim.backends.base.Backend` and returns a :class:`~hw_sim.backends.base.SimResult`;
no backend knows of another. A new one is a module here with ``@register_backend`` and
one import below.
"""
from __future__ import annotations


from hw_sim.backends.base import MODES, Backend, SimResult
from lorsp.registry import Registry

BACKENDS: Registry[Backend] = Registry("backend")
register_backend = BACKENDS.register
list_backends = BACKENDS.names
get_backend = BACKENDS.get

from hw_sim.backends import fast as _fast  # noqa: E402,F401  (registers "fast")
from hw_sim.backends import lava as _lava  # noqa: E402,F401  (registers "lava")


def default_backend() -> str:
    """``fast`` where it is registered, else ``lava``."""
    return "fast" if "fast" in list_backends() else "lava"


__all__ = ["MODES", "Backend", "SimResult", "default_backend", "get_backend", "list_backends", "register_backend"]
