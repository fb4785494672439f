"""Import Lava's runtime in any process, whatever ran in it before.

lava-nc 0.10.0 calls ``multiprocessing.set_start_method("fork")`` when its message
infrastructure is first imported (``lava/magma/runtime/message_infrastructure/
multiprocessing.py``). Python raises ``RuntimeError: context has already been set`` from
that call once anything in the process has fixed the start method, and ordinary things
do: any multiprocessing lock, a tqdm progress bar (it makes one), a DataLoader with
workers. So ``lorsp.train`` followed by ``import hw_sim.simulate`` in one notebook failed.

:func:`import_lava_runtime` does that first import. Where the start method is still
open, Lava sets it as usual. Where it is already ``fork``, Lava's call is redundant and
is skipped for the length of the import. Where it is anything else, Lava cannot run its
processes here, and the user gets a one-line :class:`~lorsp.plumbing.errors.LorspError`.
"""
from __future__ import annotations

import multiprocessing as mp
import sys

from lorsp.plumbing.errors import LorspError

_LAVA_MP = "lava.magma.runtime.message_infrastructure.multiprocessing"

LAVA_INSTALL_HINT = "Lava is the extra 'lava': pip install 'lorsp[lava]' (Python 3.10 only; lava-nc 0.10, lava-dl 0.6)"
"""How to get Lava, for every refusal that needs it: its last releases run on Python 3.10 only."""


def import_lava_runtime() -> None:
    """Import Lava's multiprocessing layer so that its ``set_start_method("fork")`` cannot raise."""
    if _LAVA_MP in sys.modules:
        return
    current = mp.get_start_method(allow_none=True)
    if current is None:
        __import__(_LAVA_MP)
        return
    if current != "fork":
        raise LorspError(f"Lava runs its processes with the 'fork' start method, but this process already uses "
                         f"{current!r}; import hw_sim before setting it, or run the simulation in its own process")
    original = mp.set_start_method

    def keep_fork(method: str | None, force: bool = False) -> None:
        if method != "fork":
            original(method, force=force)

    mp.set_start_method = keep_fork
    try:
        __import__(_LAVA_MP)
    finally:
        mp.set_start_method = original
