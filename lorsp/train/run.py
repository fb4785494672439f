"""``train()``: one run of the protocol, claimed, staged in ``OUT.partial`` and published whole.

Every run writes into ``OUT.partial`` and is renamed to ``OUT`` when complete: ``model.pt`` (the
val-selected model), ``last.pt`` (the state after the last finished epoch, for ``--resume``),
``metrics.json``, ``config.json`` and ``curves.png``.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Mapping

from lorsp.config import TrainConfig
from lorsp.data import dataset_paths
from lorsp.prompts import option_flag
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.fileio import staging_dir
from lorsp.plumbing.loading import check_workers
from lorsp.plumbing.precision import precision_for
from lorsp.plumbing.publish import check_output_path, claim_output, refuse_overlaps, write_failure
from lorsp.train.distributed import barrier, init_distributed
from lorsp.train.resume import read_resume
from lorsp.train.stages import run_protocol


def train(cfg: TrainConfig, out: str | Path, *, force: bool = False, resume: str | Path | None = None,
          stop_after_epoch: int | None = None, progress: bool = True, device: str = "auto",
          workers: int = 0, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run the protocol; returns the metrics written to ``OUT/metrics.json``.

    ``OUT`` is claimed first (:func:`lorsp.plumbing.publish.claim_output`: refused when it exists
    without ``force``, resumed or not, and always when it is or holds an input); the run is
    staged in ``OUT.partial`` and published whole. A run that fails before its first epoch is
    saved leaves nothing; one that fails later leaves ``OUT.partial/last.pt`` to resume.
    ``stop_after_epoch`` ends the run early, leaving ``OUT.partial/last.pt`` as an
    interruption would (used to test ``resume``).
    ``device`` is ``--device`` (:func:`lorsp.plumbing.device.resolve_device`) and ``workers`` the loader
    processes (:mod:`lorsp.plumbing.loading`; results do not depend on it); neither is part of the run's
    config (a resumed run may continue elsewhere). ``given``: the config options the command line typed; a
    resumed run continues its own config, and one of them that differs from it is refused.
    """
    check_workers(workers)
    d = init_distributed(device)
    out = Path(out)
    state = read_resume(resume) if resume else None
    if state is not None:
        cfg = TrainConfig.from_stored(state["config"])
        refuse_conflicts(cfg, given or {})
    cfg.validate()
    precision = precision_for(cfg.precision, d.device)  # refused before anything is written or loaded
    stage = staging_dir(out)
    inputs = [resume, cfg.weights, *dataset_paths(cfg.dataset, cfg.data_root)]
    if not d.main:  # rank 0 claims and writes; the others refuse what it will refuse, then train
        check_output_path(out, force=force, sources=inputs)
        return run_protocol(cfg, stage, state, d, precision, workers, stop_after_epoch=stop_after_epoch,
                            progress=progress)
    with claim_output(out, force, sources=inputs) as claim:
        resuming_stage = state is not None and Path(resume).resolve().parent == stage.resolve()
        if os.path.lexists(stage) and not resuming_stage:
            refuse_overlaps(stage, stage.resolve(), inputs, inside_ok=False)
            check_own_stage(stage)
            if (stage / "last.pt").exists() and not force:
                raise LorspError(f"an interrupted run is in {stage}: --resume {stage / 'last.pt'} or --force")
            shutil.rmtree(stage)  # a stage of lorsp's own with nothing to resume, or --force: we hold the lock
        stage.mkdir(parents=True, exist_ok=True)
        try:
            metrics = run_protocol(cfg, stage, state, d, precision, workers, stop_after_epoch=stop_after_epoch,
                                   progress=progress)
            if "stopped_after_epoch" not in metrics:
                claim.publish(stage)
        except OSError as exc:
            _drop_unresumable(stage)
            raise LorspError(write_failure(out, exc)) from None
        except BaseException:
            _drop_unresumable(stage)
            raise
    if "stopped_after_epoch" not in metrics:
        barrier(d)  # the other ranks wait for the published run
    return metrics


def refuse_conflicts(resumed: Any, given: Mapping[str, Any]) -> None:
    """Refuse (one line) an option typed with ``--resume`` that differs from the resumed run's own config."""
    for key, value in given.items():
        if getattr(resumed, key) != value:
            raise LorspError(f"--resume continues the interrupted run's own config: {option_flag(key)} {value} "
                             f"differs from its {getattr(resumed, key)} (leave the option out)")


STAGE_FILES = ("last.pt", "model.pt", "metrics.json", "config.json", "curves.png")
"""What a training run writes into its stage ``OUT.partial`` (and the atomic writers' temporary files beside them)."""


def check_own_stage(stage: Path) -> None:
    """Refuse (one line) an ``OUT.partial`` that is not a training stage lorsp wrote: a link, a file, or a folder
    holding anything but :data:`STAGE_FILES` and their temporary files; the run never deletes what it did not
    write."""
    if stage.is_symlink() or not stage.is_dir():
        raise LorspError(f"{stage} is in the way and is not a training stage lorsp wrote (a link or a file): move it "
                         f"away or choose another --out")
    strays = [p.name for p in stage.iterdir()
              if p.is_symlink() or not p.is_file() or not p.name.lstrip(".").startswith(STAGE_FILES)]
    if strays:
        raise LorspError(f"{stage} holds files a training run does not write ({', '.join(sorted(strays)[:3])}): "
                         f"move them away or choose another --out")


def _drop_unresumable(stage: Path) -> None:
    """Remove a failed run's stage unless it holds a ``last.pt`` to resume from."""
    if not (stage / "last.pt").exists():
        shutil.rmtree(stage, ignore_errors=True)
