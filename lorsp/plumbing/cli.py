"""What every console script shares: allocator tuning and the one-line error.

    @run_cli
    def main(argv=None) -> int: ...

A :class:`~lorsp.plumbing.errors.LorspError` becomes ``error: <message>`` on stderr, on one line
whatever the message quotes, and exit code 2; Ctrl-C exits 130 without a traceback (while the
script's modules are imported, before ``main`` runs, :mod:`pipeline.launch` does the same).
"""
from __future__ import annotations

import contextvars
import functools
import sys
from typing import Callable

from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.runtime import tune_allocator


def one_line(message: str) -> str:
    """``message`` on one line: a value quoted from a file (a tensor's repr) may hold line breaks."""
    return " ".join(message.split())


def run_cli(main: Callable[..., int | None]) -> Callable[..., int]:
    @functools.wraps(main)
    def wrapped(*args, **kwargs) -> int:
        try:
            tune_allocator()
            code = contextvars.copy_context().run(main, *args, **kwargs)  # what main sets lasts for this call
        except LorspError as exc:
            print(f"error: {one_line(str(exc))}", file=sys.stderr)
            raise SystemExit(exc.exit_code) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None
        return int(code or 0)

    return wrapped
