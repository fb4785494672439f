"""The console scripts' first code: a Ctrl-C while they start is one line and exit code 130, never a traceback.

``lorsp-train`` and the others import torch, timm, onnxruntime and Lava (one to three seconds) before
any of their own code runs, so a Ctrl-C then used to be a traceback from inside an import, or, when
a library's bare ``except:`` caught the KeyboardInterrupt, ignored altogether (the run went on and
published its output). Each entry point here imports the standard library only and holds SIGINT
while its module is imported: the signal ends the process at once (``interrupted``, exit code 130),
nothing having been written. Then ``main`` runs with Python's own handler, whose KeyboardInterrupt
:func:`lorsp.plumbing.cli.run_cli` turns into the same line (a staged output is removed as for any
error); after ``main`` the process ends as at start-up, so that a Ctrl-C in an exit handler is no
traceback either.

    lorsp-train = "pipeline.launch:train"      (pyproject.toml)
    python -m pipeline.launch lorsp-train ...  (the same, without the installed script)
"""
from __future__ import annotations

import importlib
import os
import signal
import sys
from types import FrameType

INTERRUPTED_EXIT = 130
"""128 + SIGINT, what a shell reports for a process a Ctrl-C ended."""
SCRIPTS = {"lorsp-train": "lorsp.train", "lorsp-export": "pipeline.export_cli", "lorsp-hwsim": "hw_sim.cli",
           "lorsp-cosim": "hw_sim.cosim_cli"}
"""Each console script and the module whose ``main`` it runs."""


def _end_interrupted(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001 - a signal handler's signature
    """SIGINT outside ``main``: one line and exit code 130, at once (no Python code can swallow it)."""
    os.write(2, b"interrupted\n")
    os._exit(INTERRUPTED_EXIT)


def launch(script: str) -> int:
    """Import the module of console script ``script`` with SIGINT held (see the module docstring), run its
    ``main`` and return its exit code."""
    signal.signal(signal.SIGINT, _end_interrupted)
    main = importlib.import_module(SCRIPTS[script]).main
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return main()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        signal.signal(signal.SIGINT, _end_interrupted)


def train() -> int:
    return launch("lorsp-train")


def export() -> int:
    return launch("lorsp-export")


def hwsim() -> int:
    return launch("lorsp-hwsim")


def cosim() -> int:
    return launch("lorsp-cosim")


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in SCRIPTS:
        sys.stderr.write(f"usage: python -m pipeline.launch {{{','.join(SCRIPTS)}}} [ARGS]\n")
        raise SystemExit(2)
    name = sys.argv.pop(1)
    sys.argv[0] = name
    raise SystemExit(launch(name))
