"""Run a function in a child process under a deadline: a hang becomes a one-line error.

Lava runs every process model in worker processes; an exception inside one (for example
a float threshold under ``fixed_pt``) can leave the runtime waiting forever, and HDF5's C
library can loop forever on a corrupt file (:mod:`deploy.hdf5_files`). So each such call
runs in a child process that leads its own process group. The parent waits
for progress messages and the result until the deadline, then stops the whole group
(SIGTERM, then SIGKILL): Lava's workers go with it and nothing is left running. Should the
parent die first, by any signal, the child's watchdog stops the group itself (:func:`_watch_parent`).

The child is forked (Lava itself forks its workers, and a fork needs no re-import).
"""
from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from typing import Any, Callable

from lorsp.plumbing.errors import LorspError

POLL_S = 0.2
GRACE_S = 3.0
WATCH_S = 0.2
"""How often a child checks that its parent is alive (seconds)."""


def check_timeout(timeout: float) -> float:
    """``timeout`` in seconds, or a one-line :class:`LorspError` unless it is a finite number above 0."""
    try:
        ok = math.isfinite(timeout) and timeout > 0
    except TypeError:
        ok = False
    if not ok:
        raise LorspError(f"--timeout must be positive and finite (seconds), got {timeout!r}")
    return timeout


def run_with_deadline(target: Callable[..., Any], args: tuple, *, timeout: float, what: str,
                      on_progress: Callable[[Any], None] | None = None, late: str | None = None) -> Any:
    """``target(*args, progress=send)`` in a child; its return value, or LorspError after ``timeout`` s.

    ``send(x)`` in the child calls ``on_progress(x)`` in the parent. A LorspError raised in
    the child is raised again here; any other exception becomes a RuntimeError carrying the
    child's traceback. ``late``: the message when the deadline passes (default: ``what``
    exceeded ``--timeout``).
    """
    check_timeout(timeout)
    ctx = mp.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_main, args=(sender, target, args, os.getpid()), name=f"lorsp {what}",
                        daemon=False)
    child.start()
    sender.close()
    deadline = time.monotonic() + timeout
    finished = False
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LorspError(late or f"{what} exceeded --timeout {timeout:g} s and was stopped (raise --timeout "
                                         f"for more samples or a slower machine)")
            if receiver.poll(min(remaining, POLL_S)):
                try:
                    kind, payload = receiver.recv()
                except EOFError:
                    child.join(GRACE_S)
                    raise LorspError(f"{what} ended without a result (exit code {child.exitcode})") from None
                if kind == "progress":
                    if on_progress is not None:
                        on_progress(payload)
                elif kind == "ok":
                    finished = True
                    return payload
                elif kind == "lorsp_error":
                    raise LorspError(payload)
                else:
                    raise RuntimeError(f"{what} failed in its child process:\n{payload}")
            elif not child.is_alive() and not receiver.poll():
                raise LorspError(f"{what} ended without a result (exit code {child.exitcode})")
    finally:
        receiver.close()
        _stop_group(child, wait=GRACE_S if finished else 0.0)


def _child_main(conn, target: Callable[..., Any], args: tuple, parent: int) -> None:
    os.setpgrp()  # lead a process group: the parent can stop Lava's workers with us
    _watch_parent(parent)
    try:
        result = target(*args, progress=lambda x: conn.send(("progress", x)))
        conn.send(("ok", result))
    except LorspError as exc:
        conn.send(("lorsp_error", str(exc)))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def _watch_parent(parent: int) -> None:
    """Stop this process group the moment ``parent`` is gone (killed by any signal, even SIGKILL).

    A death signal (``prctl(PR_SET_PDEATHSIG)``) would reach this process only, and Lava's
    workers, which it forks, would run on as orphans; so a thread polls the parent instead and
    kills the whole group, itself included, once this process has been re-parented.
    """
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_S)
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, name="lorsp parent watchdog", daemon=True).start()


def _stop_group(child: mp.Process, wait: float) -> None:
    """Give the child ``wait`` s to exit, then stop it and every process of its group."""
    child.join(wait)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(child.pid, sig)  # also reaps Lava workers a finished child left behind
        except (ProcessLookupError, PermissionError):
            if child.is_alive():
                child.kill() if sig == signal.SIGKILL else child.terminate()
        child.join(GRACE_S)
        if not child.is_alive() and not _group_alive(child.pid):
            return


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False
