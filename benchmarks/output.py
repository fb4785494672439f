"""What every benchmark writes: its settings and provenance beside the figures, as JSON and Markdown."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NoReturn

from lorsp.plumbing.fileio import atomic_write, write_json
from lorsp.plumbing.provenance import git_commit, machine, versions


def run_record(args: argparse.Namespace, **fields: Any) -> dict[str, Any]:
    """``{"settings", "machine", "git_commit", "versions", **fields}``: a benchmark's result with its provenance."""
    return {"settings": vars(args), "machine": machine(), "git_commit": git_commit(), "versions": versions(), **fields}


def write_tables(directory: str | Path, name: str, result: dict[str, Any], text: str) -> None:
    """Write ``DIR/<name>.json`` and ``DIR/<name>.md`` (atomically) and print the Markdown."""
    directory = Path(directory)
    write_json(directory / f"{name}.json", result)
    atomic_write(directory / f"{name}.md", lambda tmp: tmp.write_text(text))
    print(text)


def fail(message: str) -> NoReturn:
    """Bad input to a benchmark: ``error: <message>`` on stderr, exit code 2 (the project's rule)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)
