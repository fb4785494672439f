"""The one training protocol every method shares (``lorsp-train``).

Protocol (LoR-VP's defaults unless told otherwise): SGD with momentum 0.9 and
weight decay 1e-4, learning rate 0.02 on a per-step cosine schedule, batch 256;
the backbone frozen; after each epoch the model is scored on the validation
split and the best one kept (the test split is looked at once, at the end, on
the val-selected model). Every run writes into ``OUT.partial`` and is renamed
to ``OUT`` when complete:

* ``model.pt``: the val-selected model (``lorsp.load``; weights_only-safe);
* ``last.pt``: the state after the last finished epoch, written every epoch
  (``--resume OUT.partial/last.pt`` after an interruption);
* ``metrics.json``, ``config.json``, ``curves.png``.

Data order depends only on ``(seed, epoch)``, so a resumed run ends with the
same numbers as an uninterrupted one. ``--device`` (:mod:`lorsp.plumbing.device`) says where it
computes. Under ``torchrun`` it trains with DistributedDataParallel (gloo on the CPU, NCCL on
CUDA, each rank on ``cuda:LOCAL_RANK``); rank 0 evaluates and writes, once.

The package, in the order a run goes: :mod:`~lorsp.train.cli` (``lorsp-train``: parser and config),
:mod:`~lorsp.train.run` (claim the output, stage, publish), :mod:`~lorsp.train.stages` (build, optimise
one epoch, evaluate and select, write outputs), :mod:`~lorsp.train.resume` (``last.pt``) and
:mod:`~lorsp.train.distributed` (torchrun). The run's config is :class:`lorsp.config.TrainConfig`.
"""
from lorsp.config import RUN_KEYS, TrainConfig, metrics_config
from lorsp.train.cli import build_parser, config_from_args, main
from lorsp.train.resume import read_resume, restore_scaler
from lorsp.train.run import train
from lorsp.train.stages import apply_step, make_optimizer, run_protocol, step_loss, train_one_epoch

__all__ = ["RUN_KEYS", "TrainConfig", "apply_step", "build_parser", "config_from_args", "main", "make_optimizer",
           "metrics_config", "read_resume", "restore_scaler", "run_protocol", "step_loss", "train",
           "train_one_epoch"]
