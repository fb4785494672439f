"""Numeric command-line options checked at parse time, and the parser that reports them in one line.

    p = OptionParser(prog="lorsp-hwsim")
    p.add_argument("--samples", type=count(maximum=MAX_IMAGES), default=64)
    p.add_argument("--timeout", type=seconds(), default=600.0)

Every number a console script takes goes through one of these argparse types: a value out of
its range, NaN, an infinity or a word is refused while the arguments are parsed, before anything
is loaded. :class:`OptionParser` turns argparse's own error (usage text and exit 2) into a
:class:`~lorsp.plumbing.errors.LorspError`, which :func:`lorsp.plumbing.cli.run_cli` prints as one ``error:`` line.
"""
from __future__ import annotations

import argparse
import math
from typing import Callable, NoReturn

from lorsp.plumbing.errors import LorspError

MAX_IMAGES = 10_000_000
"""The most images any option counts (``--samples``, ``--limit-*``, ``--shots``)."""
MAX_SECONDS = 7 * 24 * 3600.0
"""The longest time limit: a week (larger values overflow the waits of Python's process tools)."""
MAX_SEED = 2 ** 32 - 1
"""Seeds are 32-bit: every generator of torch and numpy takes them."""
MAX_WORKERS = 1024
"""The most loader processes ``--workers`` starts (far beyond any machine's cores; each is a process)."""
MAX_MAGNITUDE = 1e30
"""The largest size of any real-valued option: beyond it a float32 tensor made from it overflows soon."""


class OptionParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are a :class:`LorspError` (one ``error:`` line, exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise LorspError(message.replace("\n", " "))


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in ``[minimum, maximum]`` (either bound may be open)."""
    where = _interval(minimum, maximum, "integer")

    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except (ValueError, AttributeError):
            raise argparse.ArgumentTypeError(f"must be {where}, got {text!r}") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be {where}, got {text!r}")
        return value

    parse.__name__ = "integer"  # what argparse names in its own messages
    return parse


def count(minimum: int = 1, maximum: int = MAX_IMAGES) -> Callable[[str], int]:
    """An argparse type: how many of something, ``minimum`` (1) to ``maximum``."""
    return integer(minimum, maximum)


def number(minimum: float | None = None, maximum: float | None = None, *, above: bool = False,
           below: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite float in a range; ``above``/``below`` make ``minimum``/``maximum`` exclusive.

    An open bound is :data:`MAX_MAGNITUDE` (``-MAX_MAGNITUDE`` below).
    """
    if maximum is None:
        maximum, below = MAX_MAGNITUDE, False
    if minimum is None:
        minimum, above = -MAX_MAGNITUDE, False
    low = None if minimum is None else f"{'>' if above else '>='} {minimum:g}"
    high = None if maximum is None else f"{'<' if below else '<='} {maximum:g}"
    where = "a finite number" + (f" {' and '.join(b for b in (low, high) if b)}" if low or high else "")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except (ValueError, TypeError):
            raise argparse.ArgumentTypeError(f"must be {where}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be {where}, got {text!r}")
        if minimum is not None and (value <= minimum if above else value < minimum):
            raise argparse.ArgumentTypeError(f"must be {where}, got {text!r}")
        if maximum is not None and (value >= maximum if below else value > maximum):
            raise argparse.ArgumentTypeError(f"must be {where}, got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


def seconds(maximum: float = MAX_SECONDS) -> Callable[[str], float]:
    """An argparse type: a time limit, more than 0 and at most ``maximum`` seconds."""
    return number(0.0, maximum, above=True)


def seed() -> Callable[[str], int]:
    """An argparse type: a random seed, 0 to 2**32 - 1."""
    return integer(0, MAX_SEED)


def worker_count() -> Callable[[str], int]:
    """An argparse type: how many loader processes, 0 (load in the main process) to :data:`MAX_WORKERS`."""
    return integer(0, MAX_WORKERS)


def device_name() -> Callable[[str], str]:
    """An argparse type: a ``--device`` name as written (``auto``, ``cpu``, ``cuda``, ``cuda:N``).

    Only the spelling is checked here; whether this machine has that device is
    :func:`lorsp.plumbing.device.resolve_device`'s check, made when the run starts.
    """
    from lorsp.plumbing.device import DEVICE_CHOICES, device_spelling_ok

    def parse(text: str) -> str:
        if not device_spelling_ok(text):
            raise argparse.ArgumentTypeError(f"must be one of {DEVICE_CHOICES}, got {text!r}")
        return text.strip()

    parse.__name__ = "device"
    return parse


def _interval(minimum: int | None, maximum: int | None, kind: str) -> str:
    if minimum is not None and maximum is not None:
        return f"an {kind} from {minimum} to {maximum}"
    if minimum is not None:
        return f"an {kind} >= {minimum}"
    if maximum is not None:
        return f"an {kind} <= {maximum}"
    return f"an {kind}"
