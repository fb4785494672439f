"""Where a benchmark grid's training runs execute: submitit, on this machine or as a SLURM job array.

    python benchmarks/baselines.py --jobs 2 ...                      # two at a time, here
    python benchmarks/baselines.py --engine slurm --jobs 32 --slurm-partition gpu --slurm-gpus 1 ...

Why submitit: it is the lightest engine that reaches both a workstation and a cluster (pure Python,
two small dependencies, cloudpickle and typing_extensions; no scheduler daemon, no ports). Each run is
one job: a fresh process on the ``local`` engine, one task of a SLURM job array (``sbatch --array``,
at most ``--jobs`` at a time, SLURM's own ``%`` limit) on ``slurm``. Its logs and pickled results sit
in ``--engine-folder`` (default ``OUT/.submitit``), one folder per job. Dask or Ray would need a
scheduler process or a cluster of their own for the same fan-out; joblib has no cluster side.

submitit hands each job its function, and the job hands back its result, as pickles in that folder:
files this grid writes and reads itself, never a user's input (runs, checkpoints and weights are read
by lorsp's own safe loaders inside the jobs).

A run that is already complete (its ``metrics.json`` exists) is read here and never submitted: a
restarted grid submits only what is left. submitit's local executor starts every job it is given at
once, so the local engine keeps a window of ``--jobs`` submitted jobs (the next starts when one
ends); on a machine with GPUs each window slot has its own (``CUDA_VISIBLE_DEVICES``, set by
submitit). A job that fails stops the grid: the jobs still queued are not submitted, those under
way are cancelled, and the error names the failed job's log.
"""
from __future__ import annotations

import argparse
import os
import shutil
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from lorsp.plumbing.cli_options import count, integer
from lorsp.plumbing.errors import LorspError

ENGINES = ("local", "slurm")
T = TypeVar("T")
R = TypeVar("R")
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class EngineOptions:
    """How a grid's jobs are submitted (:func:`engine_options` reads them from a benchmark's arguments)."""

    folder: Path
    engine: str = "local"
    jobs: int = 1
    gpus: int = 0
    timeout_min: int = 24 * 60
    slurm_partition: str | None = None
    poll_s: float = 1.0


def add_engine_args(p: argparse.ArgumentParser) -> None:
    """``--engine``, ``--engine-folder`` and the SLURM options (``--jobs`` is the protocol's)."""
    p.add_argument("--engine", default="local", choices=ENGINES,
                   help="local: --jobs processes on this machine; slurm: a SLURM job array (submitit)")
    p.add_argument("--engine-folder", default=None, help="job logs and results (default: OUT/.submitit)")
    p.add_argument("--slurm-partition", default=None, help="slurm: the partition to submit to")
    p.add_argument("--slurm-gpus", type=integer(0), default=0, help="slurm: GPUs per job; local: ignored (one per "
                   "slot where the machine has GPUs)")
    p.add_argument("--timeout-min", type=count(), default=24 * 60, help="wall-clock limit of one run, minutes")


def engine_options(args: argparse.Namespace) -> EngineOptions:
    """The :class:`EngineOptions` of a benchmark's parsed arguments (their ranges are checked at parse time:
    ``--jobs`` by the protocol's options, the others by :func:`add_engine_args`); no SLURM is a one-line error."""
    if args.engine == "slurm" and shutil.which("srun") is None:
        raise LorspError("--engine slurm: no SLURM here (srun is not on PATH); use --engine local")
    gpus = args.slurm_gpus if args.engine == "slurm" else local_gpus(getattr(args, "device", "auto"))
    folder = Path(args.engine_folder) if args.engine_folder else Path(args.out) / ".submitit"
    return EngineOptions(folder=folder, engine=args.engine, jobs=args.jobs, gpus=gpus,
                         timeout_min=args.timeout_min, slurm_partition=args.slurm_partition)


def local_gpus(device: str) -> int:
    """GPUs the local jobs may use: none for ``--device cpu``, else those torch sees here."""
    if device == "cpu":
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _executor(options: EngineOptions) -> Any:
    import submitit

    if options.engine == "slurm":
        executor = submitit.SlurmExecutor(folder=str(options.folder / "%j"))
        executor.update_parameters(time=options.timeout_min, array_parallelism=options.jobs,
                                   **({"partition": options.slurm_partition} if options.slurm_partition else {}),
                                   **({"gpus_per_node": options.gpus} if options.gpus else {}))
    else:
        executor = submitit.LocalExecutor(folder=str(options.folder / "%j"))
        executor.update_parameters(timeout_min=options.timeout_min)
    return executor


def _result(job: Any, options: EngineOptions) -> Any:
    try:
        return job.result()
    except Exception as exc:  # submitit re-raises a job's failure as FailedJobError, with its trace
        raise LorspError(f"job {job.job_id} on the {options.engine} engine failed ({job_error(str(exc))}); "
                         f"its log: {job.paths.stderr}") from None


def job_error(trace: str) -> str:
    """The exception line of a failed job's trace (``ValueError: ...``), else its first line."""
    lines = [line.strip() for line in trace.splitlines() if line.strip()]
    found = [line for line in lines if not line.startswith(("File ", "-", "Traceback")) and ": " in line
             and line.split(":")[0].replace(".", "").replace("_", "").isalnum() and line[0].isupper()]
    return (found[-1] if found else (lines[0] if lines else "no trace"))[:200]


def run_jobs(fn: Callable[[T], R], items: Sequence[T], options: EngineOptions,
             on_done: Callable[[int, R], None] = lambda i, r: None) -> list[R]:
    """``[fn(item) for item in items]``, each call a submitit job, results in order; ``on_done(i, result)``
    is called as each job ends. The job processes import this checkout (its root goes first on
    ``PYTHONPATH``), so ``fn`` may be any function of the benchmarks."""
    if not items:
        return []
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    executor = _executor(options)
    results: dict[int, R] = {}
    running: dict[Any, tuple[int, int]] = {}  # job -> (item index, slot)
    if options.engine == "slurm":
        jobs = executor.map_array(fn, list(items))  # one sbatch --array; SLURM keeps --jobs running
        running = {job: (i, 0) for i, job in enumerate(jobs)}
        queue: deque[int] = deque()
    else:
        queue = deque(range(len(items)))
    free = list(range(options.jobs))
    try:
        while queue or running:
            while queue and free:
                slot, i = free.pop(0), queue.popleft()
                if options.gpus:
                    executor.update_parameters(gpus_per_node=1, visible_gpus=(slot % options.gpus,))
                running[executor.submit(fn, items[i])] = (i, slot)
            finished = [job for job in running if job.done()]
            if not finished:
                time.sleep(options.poll_s)
                continue
            for job in finished:
                i, slot = running.pop(job)
                results[i] = _result(job, options)
                on_done(i, results[i])
                free.append(slot)
    except BaseException:
        queue.clear()
        for job in running:
            job.cancel(check=False)
        raise
    return [results[i] for i in range(len(items))]
