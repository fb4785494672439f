"""An output directory that appears whole or not at all.

    with staged_output(out) as stage:      # stage = OUT.partial, created empty
        write_files(stage)                 # an exception removes it; OUT stays as it was
    # here OUT holds exactly what was written into stage

The rename uses :func:`lorsp.fileio.publish_dir` (an old ``OUT`` is replaced; refusing it
without ``--force`` is :func:`lorsp.fileio.check_output_dir`'s job, before this).
"""
from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from lorsp.fileio import publish_dir, staging_dir


@contextmanager
def staged_output(out: str | Path) -> Iterator[Path]:
    """Yield an empty ``OUT.partial``; publish it as ``OUT`` when the block ends, remove it on any error."""
    out = Path(out)
    stage = staging_dir(out)
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        yield stage
        publish_dir(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
