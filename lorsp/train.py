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
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shutil
import time
import typing
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from lorsp.backbones import list_backbones
from lorsp.plumbing.cli import run_cli
from lorsp.plumbing.cli_options import OptionParser, count, device_name, integer, number, seed, worker_count
from lorsp.data import Splits, create_splits, list_datasets
from lorsp.plumbing.device import DEVICE_CHOICES, describe_device, local_rank, process_group_backend, resolve_device
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.fileio import load_torch_safely, save_torch, staging_dir, write_json
from lorsp.heads import HEADS, FrequencyLabelMapping, list_heads
from lorsp.plumbing.loading import EpochSampler, check_workers, make_loader
from lorsp.metrics import INSTANCE_IMAGES, evaluate
from lorsp.model import PromptedClassifier, build_model, build_prompt
from lorsp.plots import plot_training_curves
from lorsp.plumbing.precision import PRECISIONS, Precision, check_precision_name, precision_for
from lorsp.prompts import (LorspOptions, LorvpOptions, SmmOptions, check_options, list_prompts, option_flag, option_names,
                           options_class, prompt_options)
from lorsp.plumbing.provenance import git_commit, machine, versions
from lorsp.plumbing.publish import check_output_path, claim_output, write_failure
from lorsp.stored_config import check_stored_config
from lorsp.plumbing.tensor_checks import check_array, check_state

RESUME_FORMAT = "lorsp-resume"
RESUME_KEYS = ("config", "epoch", "model", "optimizer", "scheduler", "history", "best_val_accuracy",
               "best_epoch", "best_state")
MAX_IMAGE_SIZE = 2048
"""The largest ``--image-size`` (a 2048 x 2048 batch of one already needs gigabytes in the backbone)."""
MAX_EPOCHS = 100_000
MAX_BATCH = 65_536
RUN_KEYS = ("dataset", "backbone", "prompt", "head", "rank", "image_size", "epochs", "batch_size", "lr",
            "prompt_lr", "seed", "shots", "precision")
"""Config keys every run's metrics.json holds (``rank`` too, as results tables have always read it);
the prompt's own declared options follow (:func:`metrics_config`)."""
_LORVP, _LORSP, _SMM = LorvpOptions(), LorspOptions(), SmmOptions()


@dataclass
class TrainConfig:
    """Everything that defines a run; saved with every result."""

    dataset: str = "mnist-5k"
    backbone: str = "efficientnet_lite0"
    prompt: str = "lorvp"
    head: str = "lp"
    # the prompts' declared options (lorsp.prompts.*Options, whose defaults these are; ignored by
    # methods that do not declare them)
    rank: int = _LORVP.rank
    image_size: int = 128
    epochs: int = 20
    batch_size: int = 256
    lr: float = 0.02
    prompt_lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 1e-4
    seed: int = 0
    limit_train: int | None = None
    limit_val: int | None = None
    limit_test: int | None = None
    shots: int | None = None
    data_root: str | None = None
    download: bool = False
    weights: str | None = None
    precision: str = "fp32"
    time_steps: int = _LORSP.time_steps
    encoding: str = _LORSP.encoding
    pool: int = _LORSP.pool
    hidden: int = _LORSP.hidden
    gates: int = _LORSP.gates
    factors: str = _LORSP.factors
    train_generator: str = _LORSP.train_generator
    relay: str = _LORSP.relay
    relay_noise: float = _LORSP.relay_noise
    border_bands: int = _LORSP.border_bands
    band_layout: str = _LORSP.band_layout
    init_std: float = _LORSP.init_std
    beta: float = _LORSP.beta
    threshold: float = _LORSP.threshold
    gate: str = _LORSP.gate
    sparsity_weight: float = _LORSP.sparsity_weight
    sparsity_target: float | None = _LORSP.sparsity_target
    usage_weight: float = _LORSP.usage_weight
    sparsity_warmup: float = _LORSP.sparsity_warmup
    gate_bias: float = _LORSP.gate_bias
    surrogate_slope: float = _LORSP.surrogate_slope
    generator_lr_scale: float = _LORSP.generator_lr_scale
    mask_width: int = _SMM.mask_width
    patch: int = _SMM.patch
    mask_layers: int = _SMM.mask_layers

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def validate(self) -> None:
        if self.image_size < 16:
            raise LorspError(f"--image-size must be at least 16, got {self.image_size}")
        if self.epochs < 1:
            raise LorspError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise LorspError(f"--batch-size must be at least 1, got {self.batch_size}")
        for option, value in (("--lr", self.lr), ("--prompt-lr", self.prompt_lr),
                               ("--generator-lr-scale", self.generator_lr_scale)):
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise LorspError(f"{option} must be a positive number, got {value}")
        if not (self.sparsity_warmup >= 0 and math.isfinite(self.sparsity_warmup)):
            raise LorspError(f"--sparsity-warmup must be a number of epochs >= 0, got {self.sparsity_warmup}")
        if self.usage_weight and not self.sparsity_weight:
            raise LorspError("--usage-weight is a part of the sparsity term: it needs --sparsity-weight > 0")
        if not math.isfinite(self.gate_bias):
            raise LorspError(f"--gate-bias must be a finite number, got {self.gate_bias}")
        check_precision_name(self.precision)
        if self.shots is not None and self.shots < 1:
            raise LorspError(f"--shots must be a positive integer, got {self.shots}")
        HEADS.get(self.head)  # an unknown head is refused, naming the registered ones
        build_prompt(self.to_dict())  # checks the prompt's own options before any data is loaded
        if self.prompt == "none" and self.head == "flm":
            raise LorspError("--prompt none with --head flm trains nothing: use --head lp (linear probe)")


def metrics_config(cfg: TrainConfig) -> dict[str, Any]:
    """The config keys of ``metrics.json``: :data:`RUN_KEYS`, then the options ``cfg.prompt`` declares."""
    config = cfg.to_dict()
    keys = [*RUN_KEYS, *(k for k in option_names(cfg.prompt) if k not in RUN_KEYS)]
    return {k: config[k] for k in keys}


# --------------------------------------------------------------------------- distributed
@dataclass(frozen=True)
class Dist:
    """This process's place in the run: its rank, the number of ranks and its device."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> Dist:
    """Resolve ``--device`` for this rank and join the process group torchrun set up, or run alone.

    The group's backend follows the device (:func:`lorsp.plumbing.device.process_group_backend`); a CUDA
    rank is made the current device before the group starts.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    chosen = resolve_device(device, world=world, local_rank=local_rank())
    if world <= 1:
        return Dist(device=chosen)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group(process_group_backend(chosen))
    return Dist(dist.get_rank(), dist.get_world_size(), chosen)


def barrier(d: Dist) -> None:
    if d.world > 1:
        dist.barrier()


# --------------------------------------------------------------------------- protocol
@torch.no_grad()
def fit_label_mapping(model: PromptedClassifier, splits: Splits, batch_size: int,
                      device: torch.device = torch.device("cpu")) -> None:
    """ILM-VP's frequency label mapping on the training split, under the initial prompt."""
    head = model.head
    assert isinstance(head, FrequencyLabelMapping)
    counts = torch.zeros(splits.num_classes, head.num_source_classes)
    model.eval()
    for x, y in DataLoader(splits.train, batch_size=batch_size):
        pred = model.backbone(model.prompted(x.to(device))).argmax(1).cpu()
        counts.index_put_((y, pred), torch.ones(len(y)), accumulate=True)
    head.fit(counts)


def make_optimizer(model: PromptedClassifier, cfg: TrainConfig, steps: int):
    params = model.trainable_parameters()
    if not params:
        raise LorspError(f"--prompt {cfg.prompt} with --head {cfg.head} has nothing to train")
    prompt_lr = cfg.lr if cfg.prompt_lr is None else cfg.prompt_lr
    generator = getattr(model.prompt, "spiking_generator", None)
    in_generator = {id(p) for p in generator.parameters()} if generator is not None else set()
    in_prompt = {id(p) for p in model.prompt.parameters()}
    groups = [{"params": [p for p in params if id(p) not in in_prompt], "lr": cfg.lr},  # the head
              {"params": [p for p in params if id(p) in in_prompt and id(p) not in in_generator], "lr": prompt_lr},
              {"params": [p for p in params if id(p) in in_generator], "lr": cfg.lr * cfg.generator_lr_scale}]
    opt = torch.optim.SGD([g for g in groups if g["params"]], lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    return opt, sched


def calibrate_prompt(model: PromptedClassifier, splits: Splits, batch_size: int,
                     device: torch.device = torch.device("cpu")) -> None:
    """A fresh run's data-dependent start: the prompt's ``calibrate`` on the first training images.

    The first ``max(batch_size, 64)`` images of the (seeded, fixed) training split, loaded only
    for a prompt that has a data-dependent start (:attr:`VisualPrompt.calibrates`).
    """
    if not model.prompt.calibrates:
        return
    count = min(len(splits.train), max(batch_size, 64))
    x = torch.stack([splits.train[i][0] for i in range(count)])
    model.prompt.calibrate(x.to(device))


def sparsity_weight_at(cfg: TrainConfig, epoch: float) -> float:
    """The sparsity term's weight at (fractional) ``epoch``: ramped up linearly over ``--sparsity-warmup`` epochs."""
    if cfg.sparsity_warmup <= 0:
        return cfg.sparsity_weight
    return cfg.sparsity_weight * min(1.0, epoch / cfg.sparsity_warmup)


def step_loss(model: torch.nn.Module, prompt: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
              sparsity_weight: float | None, precision: Precision) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss of one training batch and its logits, under ``precision``'s autocast: cross-entropy in fp32,
    plus ``sparsity_weight`` times the prompt's regularizer (none when ``sparsity_weight`` is None)."""
    with precision.autocast():
        logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        reg = prompt.regularizer() if sparsity_weight is not None else None
        if reg is not None:
            loss = loss + sparsity_weight * reg.float()
    return loss, logits


def apply_step(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    """Backward and optimizer step through ``scaler`` (under fp16 a step whose gradients overflowed is skipped)."""
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()


def train_one_epoch(model: torch.nn.Module, loader: DataLoader, cfg: TrainConfig, epoch: int, d: Dist,
                    opt, sched, progress: bool = True, precision: Precision | None = None,
                    scaler: torch.amp.GradScaler | None = None) -> dict[str, float]:
    """One epoch of training steps over ``loader`` (its :class:`EpochSampler` set to ``epoch``); the forward
    pass and the loss run under ``precision``'s autocast, the backward pass and the step through
    ``scaler`` (a disabled one, i.e. plain steps, unless fp16)."""
    precision = precision or Precision("fp32", d.device.type)
    scaler = scaler or precision.scaler()
    loader.sampler.set_epoch(epoch)
    model.train()
    prompt = (model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model).prompt
    loss_sum, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                disable=not (d.main and progress))
    for step, (x, y) in enumerate(bar):
        x, y = x.to(d.device, non_blocking=True), y.to(d.device, non_blocking=True)
        weight = sparsity_weight_at(cfg, epoch + step / len(loader)) if cfg.sparsity_weight else None
        loss, logits = step_loss(model, prompt, x, y, weight, precision)
        if not torch.isfinite(loss):
            raise LorspError(f"loss became {float(loss)} at epoch {epoch + 1}, step {step + 1}: "
                             f"lower --lr (now {cfg.lr})")
        apply_step(loss, opt, scaler)
        sched.step()
        loss_sum += float(loss) * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
        bar.set_postfix(loss=f"{float(loss):.3f}")
    seconds = time.perf_counter() - start
    return {"train_loss": loss_sum / seen, "train_accuracy": correct / seen,
            "train_images_per_s": seen * d.world / seconds, "train_seconds": seconds}


def trainable_state(model: PromptedClassifier) -> dict[str, dict[str, torch.Tensor]]:
    return {"prompt": {k: v.detach().cpu().clone() for k, v in model.prompt.state_dict().items()},
            "head": {k: v.detach().cpu().clone() for k, v in model.head.state_dict().items()}}


def load_trainable_state(model: PromptedClassifier, state: dict[str, dict[str, torch.Tensor]]) -> None:
    model.prompt.load_state_dict(state["prompt"])
    model.head.load_state_dict(state["head"])


def read_resume(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    state = load_torch_safely(path, "resume checkpoint")
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        raise LorspError(f"{path} is not a lorsp resume checkpoint (use the run's last.pt)")
    missing = [k for k in RESUME_KEYS if k not in state]
    if missing:
        raise LorspError(f"{path}: resume checkpoint lacks {missing[0]!r}")
    config = check_stored_config(state["config"], str(path))
    epoch, best_epoch = state["epoch"], state["best_epoch"]
    epochs = config.get("epochs", TrainConfig.epochs)
    if not (isinstance(epoch, int) and not isinstance(epoch, bool) and 1 <= epoch <= epochs):
        raise LorspError(f"{path}: resume epoch {epoch!r:.40} is not a finished epoch of the {epochs}")
    if not (isinstance(best_epoch, int) and 1 <= best_epoch <= epoch) or \
            not isinstance(state["best_val_accuracy"], (int, float)) or \
            not 0.0 <= state["best_val_accuracy"] <= 1.0:
        raise LorspError(f"{path}: best_epoch or best_val_accuracy is out of range")
    history = state["history"]
    if not isinstance(history, list) or len(history) != epoch or not all(isinstance(h, dict) for h in history):
        raise LorspError(f"{path}: history must hold one record per finished epoch ({epoch})")
    return state


def restore_resume(model: PromptedClassifier, opt, sched, state: dict[str, Any], source: str) -> None:
    """Load a resume checkpoint's tensors into ``model``, ``opt`` and ``sched``, each checked first."""
    for part in ("model", "best_state"):
        if not isinstance(state[part], dict) or set(state[part]) != {"prompt", "head"}:
            raise LorspError(f"{source}: {part} must hold 'prompt' and 'head'")
        for name, module in (("prompt", model.prompt), ("head", model.head)):
            check_state(state[part][name], module.state_dict(), source, f"{part} {name}")
    load_trainable_state(model, state["model"])
    try:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
    except (ValueError, KeyError, TypeError, RuntimeError, IndexError, AttributeError) as exc:
        raise LorspError(f"{source}: the optimizer or scheduler state does not fit this run: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}") from None
    for group in opt.state.values():
        for key, value in group.items():
            if isinstance(value, torch.Tensor):
                check_array(value, f"optimizer state {key!r}", source)


def train(cfg: TrainConfig, out: str | Path, *, force: bool = False, resume: str | Path | None = None,
          stop_after_epoch: int | None = None, progress: bool = True, device: str = "auto",
          workers: int = 0) -> dict[str, Any]:
    """Run the protocol; returns the metrics written to ``OUT/metrics.json``.

    ``OUT`` is claimed first (:func:`lorsp.plumbing.publish.claim_output`: refused when it exists
    without ``force``, resumed or not, and always when it is or holds an input); the run is
    staged in ``OUT.partial`` and published whole. A run that fails before its first epoch is
    saved leaves nothing; one that fails later leaves ``OUT.partial/last.pt`` to resume.
    ``stop_after_epoch`` ends the run early, leaving ``OUT.partial/last.pt`` as an
    interruption would (used to test ``resume``).
    ``device`` is ``--device`` (:func:`lorsp.plumbing.device.resolve_device`) and ``workers`` the loader
    processes (:mod:`lorsp.plumbing.loading`; results do not depend on it); neither is part of the run's
    config (a resumed run may continue elsewhere).
    """
    check_workers(workers)
    d = init_distributed(device)
    out = Path(out)
    state = read_resume(resume) if resume else None
    if state is not None:
        cfg = TrainConfig.from_dict(state["config"])
    cfg.validate()
    precision = precision_for(cfg.precision, d.device)  # refused before anything is written or loaded
    stage = staging_dir(out)
    inputs = [resume, cfg.weights, cfg.data_root, cfg.dataset.partition(":")[2] or None]
    if not d.main:  # rank 0 claims and writes; the others refuse what it will refuse, then train
        check_output_path(out, force=force, sources=inputs)
        return run_protocol(cfg, stage, state, d, precision, workers, stop_after_epoch=stop_after_epoch,
                            progress=progress)
    with claim_output(out, force, sources=inputs) as claim:
        resuming_stage = state is not None and Path(resume).resolve().parent == stage.resolve()
        if stage.exists() and not resuming_stage:
            if (stage / "last.pt").exists() and not force:
                raise LorspError(f"an interrupted run is in {stage}: --resume {stage / 'last.pt'} or --force")
            shutil.rmtree(stage)  # nothing to resume in it, or --force: we hold the lock, it is no one's
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


def _drop_unresumable(stage: Path) -> None:
    """Remove a failed run's stage unless it holds a ``last.pt`` to resume from."""
    if not (stage / "last.pt").exists():
        shutil.rmtree(stage, ignore_errors=True)


SCALER_FIELDS = {"scale": (float, 0.0), "growth_factor": (float, 1.0), "backoff_factor": (float, 0.0),
                 "growth_interval": (int, 1), "_growth_tracker": (int, 0)}
"""A GradScaler's state_dict: each field's kind and its lower bound (the scale and the backoff factor must be above
it, the others at least it)."""


def restore_scaler(scaler: torch.amp.GradScaler, saved: Any, source: str) -> None:
    """Load a resume checkpoint's fp16 GradScaler state into ``scaler``, checked first (one-line LorspError).

    ``saved`` is empty or None for a run without fp16 (a disabled scaler saves ``{}``); it is ignored there and
    by a disabled ``scaler``.
    """
    if not saved or not scaler.is_enabled():
        return
    if not isinstance(saved, dict) or set(saved) != set(SCALER_FIELDS):
        raise LorspError(f"{source}: scaler must hold {', '.join(SCALER_FIELDS)}")
    for key, (kind, low) in SCALER_FIELDS.items():
        value = saved[key]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and \
            (kind is float or float(value).is_integer())
        if not ok or (value <= low if key in ("scale", "backoff_factor") else value < low) or \
                (key == "backoff_factor" and value >= 1.0):
            raise LorspError(f"{source}: scaler {key} {value!r:.40} is out of range")
    scaler.load_state_dict(saved)


def run_protocol(cfg: TrainConfig, stage: Path, state: dict[str, Any] | None, d: Dist, precision: Precision,
                 workers: int = 0, *, stop_after_epoch: int | None = None, progress: bool = True) -> dict[str, Any]:
    """The protocol itself, writing into ``stage`` (rank 0); ``state``: a resume checkpoint or None; ``precision``
    (:func:`lorsp.plumbing.precision.precision_for`) and ``workers`` as :func:`train` takes them."""
    torch.manual_seed(cfg.seed)
    splits = create_splits(cfg.dataset, cfg.image_size, root=cfg.data_root, download=cfg.download,
                           limit_train=cfg.limit_train, limit_val=cfg.limit_val or cfg.limit_test,
                           limit_test=cfg.limit_test,
                           shots=cfg.shots, shot_seed=cfg.seed)
    model = build_model(cfg.to_dict(), splits.classes).to(d.device)
    steps_per_epoch = math.ceil(math.ceil(len(splits.train) / d.world) / max(1, cfg.batch_size // d.world))
    opt, sched = make_optimizer(model, cfg, cfg.epochs * steps_per_epoch)
    scaler = precision.scaler()
    loader = make_loader(splits.train, max(1, cfg.batch_size // d.world), seed=cfg.seed, workers=workers,
                         device=d.device, sampler=EpochSampler(len(splits.train), cfg.seed, d.rank, d.world))
    history: list[dict[str, Any]] = []
    best = {"val_accuracy": -1.0, "epoch": -1, "state": None}
    start_epoch = 0
    if state is not None:
        restore_resume(model, opt, sched, state, "resume checkpoint")
        restore_scaler(scaler, state.get("scaler"), "resume checkpoint")
        history, start_epoch = list(state["history"]), int(state["epoch"])
        best = {"val_accuracy": float(state["best_val_accuracy"]), "epoch": int(state["best_epoch"]),
                "state": state["best_state"]}
    else:
        calibrate_prompt(model, splits, cfg.batch_size, d.device)
        if isinstance(model.head, FrequencyLabelMapping):
            fit_label_mapping(model, splits, cfg.batch_size, d.device)

    net: torch.nn.Module = model
    if d.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[d.device.index] if d.device.type == "cuda" else None, broadcast_buffers=False)

    for epoch in range(start_epoch, cfg.epochs):
        row = {"epoch": epoch + 1, **train_one_epoch(net, loader, cfg, epoch, d, opt, sched, progress,
                                                     precision, scaler)}
        if d.main:
            val = evaluate(model, splits.val, desc="val", progress=progress, workers=workers)
            row["val_accuracy"], row["val_prompt_sparsity"] = val["accuracy"], val["prompt_sparsity"]
            history.append(row)
            if row["val_accuracy"] > best["val_accuracy"]:
                best = {"val_accuracy": row["val_accuracy"], "epoch": epoch + 1, "state": trainable_state(model)}
            save_torch(stage / "last.pt", {
                "format": RESUME_FORMAT, "config": cfg.to_dict(), "epoch": epoch + 1,
                "model": trainable_state(model), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "scaler": scaler.state_dict(), "history": history,
                "best_val_accuracy": best["val_accuracy"], "best_epoch": best["epoch"],
                "best_state": best["state"]})
            print(f"epoch {epoch + 1}/{cfg.epochs}  loss {row['train_loss']:.4f}  "
                  f"train {row['train_accuracy']:.4f}  val {row['val_accuracy']:.4f}  "
                  f"sparsity {row['val_prompt_sparsity']:.3f}  {row['train_images_per_s']:.1f} img/s", flush=True)
        barrier(d)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < cfg.epochs:
            return {"stopped_after_epoch": epoch + 1}

    if not d.main:
        barrier(d)
        return {}
    load_trainable_state(model, best["state"])
    save_torch(stage / "model.pt", model.checkpoint_state())
    test = evaluate(model, splits.test, desc="test", progress=progress, workers=workers,
                    instance_images=INSTANCE_IMAGES)  # zero-mask figures of the first test images
    metrics = {
        **metrics_config(cfg),
        "val_accuracy": best["val_accuracy"], "best_epoch": best["epoch"],
        "test_accuracy": test["accuracy"], "test_loss": test["loss"],
        **{k: v for k, v in test.items() if k not in ("accuracy", "loss", "n")},
        "n_train": len(splits.train), "n_val": len(splits.val), "n_test": len(splits.test),
        "params": model.num_trainable_params(),
        "train_images_per_s": sum(h["train_images_per_s"] * h["train_seconds"] for h in history)
        / max(sum(h["train_seconds"] for h in history), 1e-9),
        "world_size": d.world, "device": describe_device(d.device),
        "history": history,
        "versions": versions(), "git_commit": git_commit(), "machine": machine(),
    }
    write_json(stage / "metrics.json", metrics)
    write_json(stage / "config.json", cfg.to_dict())
    plot_training_curves(history, stage / "curves.png",
                         f"{cfg.prompt}/{cfg.head} on {cfg.dataset}, {cfg.backbone} {cfg.image_size}px")
    return metrics


# --------------------------------------------------------------------------- CLI
def _argument_type(options: type, field: dataclasses.Field) -> Callable[[str], Any]:
    """The command-line type of a declared option: its ``parse`` metadata (a range-checked
    :mod:`lorsp.plumbing.cli_options` type), else its annotation, ``X | None`` read as ``X``.

    A number without a declared range is still refused when it is NaN or infinite.
    """
    hint = typing.get_type_hints(options)[field.name]
    kinds = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    if len(kinds) != 1 or kinds[0] not in (int, float, str):
        raise TypeError(f"option {field.name!r} of {options.__name__}: no command-line form for {hint}")
    if "parse" in field.metadata:
        return field.metadata["parse"]
    return {int: integer(), float: number()}.get(kinds[0], kinds[0])


def add_prompt_arguments(p: argparse.ArgumentParser) -> None:
    """One argument group per prompt method (``lorsp options``), derived from its declared options.

    An option two methods share (``--rank``) is listed once, with the first method that declares
    it (methods with fewer options first). Every default is ``argparse.SUPPRESS``: only what the
    user typed reaches the namespace (:func:`config_from_args` checks it; TrainConfig fills the rest).
    """
    methods = sorted(list_prompts(), key=lambda name: len(prompt_options(name)))
    takers: dict[str, list[str]] = {}
    for name in methods:
        for f in prompt_options(name):
            takers.setdefault(f.name, []).append(name)
    listed: dict[str, tuple[str, dataclasses.Field]] = {}
    for name in methods:
        declared = prompt_options(name)
        shared = [f for f in declared if f.name in listed]
        for f in shared:
            if f.default != listed[f.name][1].default:
                raise TypeError(f"option {f.name!r}: --prompt {name} and --prompt {listed[f.name][0]} "
                                f"declare different defaults")
        description = ("takes no options" if not declared else
                       "; ".join(f"also takes {option_flag(f.name)} (under {listed[f.name][0]} options)"
                                 for f in shared) or None)
        group = p.add_argument_group(f"{name} options", description)
        for f in declared:
            if f.name in listed:
                continue
            listed[f.name] = (name, f)
            notes = [f"default: {f.default}"]
            if len(takers[f.name]) > 1:
                notes.append(f"--prompt {', '.join(takers[f.name])}")
            notes += [f"only with {option_flag(other)} {'|'.join(allowed)}"
                      for other, allowed in f.metadata.get("applies_when", {}).items()]
            help_text = f"{f.metadata['help']} ({'; '.join(notes)})".replace("%", "%%")
            group.add_argument(option_flag(f.name), type=_argument_type(options_class(name), f),
                               choices=f.metadata.get("choices"), default=argparse.SUPPRESS, help=help_text)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's config from parsed ``lorsp-train`` arguments, before anything is loaded.

    A prompt option the user typed that ``--prompt`` does not take, or that its chosen mode does
    not use (``--gates`` under ``--gate rank``), is a :class:`LorspError`; options not typed take
    TrainConfig's defaults.
    """
    values = vars(args)
    every_option = {k for name in list_prompts() for k in option_names(name)}
    check_options(values["prompt"], {k: v for k, v in values.items() if k in every_option})
    return TrainConfig.from_dict(values)


def build_parser() -> argparse.ArgumentParser:
    """The ``lorsp-train`` parser: the run's options, then one group per prompt method."""
    dflt = TrainConfig()
    p = OptionParser(
        prog="lorsp-train",
        description="Train a visual prompt (and head) on a frozen backbone under one protocol: "
                    "SGD + cosine, best-on-val selection, test scored once. A prompt option that "
                    "--prompt does not take is refused.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default=dflt.dataset,
                   help=f"one of {', '.join(list_datasets())}, or imagefolder:PATH")
    p.add_argument("--data-root", default=None, help="folder of a user's dataset files (cifar10, ...)")
    p.add_argument("--download", action="store_true", help="let torchvision download into --data-root")
    p.add_argument("--backbone", default=dflt.backbone,
                   help=f"offline: {', '.join(list_backbones())}; any timm name with --weights")
    p.add_argument("--weights", default=None, help="backbone weights (.safetensors or state dict)")
    p.add_argument("--precision", default=dflt.precision, choices=list(PRECISIONS),
                   help="training steps' arithmetic: fp32; bf16 or fp16 autocast (fp16 with a gradient "
                        "scaler); val and test are scored in fp32")
    p.add_argument("--prompt", default=dflt.prompt, choices=list_prompts(),
                   help="the prompt method (its options: the groups below)")
    p.add_argument("--head", default=dflt.head, choices=list_heads(), help="the classification head")
    p.add_argument("--image-size", type=integer(16, MAX_IMAGE_SIZE), default=dflt.image_size,
                   help="L: images resize to L x L")
    p.add_argument("--epochs", type=count(maximum=MAX_EPOCHS), default=dflt.epochs)
    p.add_argument("--batch-size", type=count(maximum=MAX_BATCH), default=dflt.batch_size)
    p.add_argument("--lr", type=number(0.0, above=True), default=dflt.lr,
                   help="learning rate of the head (and of the prompt "
                   "unless --prompt-lr is given)")
    p.add_argument("--prompt-lr", type=number(0.0, above=True), default=None,
                   help="learning rate of the prompt's image parameters (VP's pad, the low-rank factors)")
    p.add_argument("--momentum", type=number(0.0, 1.0, below=True), default=dflt.momentum)
    p.add_argument("--weight-decay", type=number(0.0), default=dflt.weight_decay)
    p.add_argument("--limit-train", type=count(), default=None, help="use the first K training images")
    p.add_argument("--limit-val", type=count(), default=None, help="first K val images (default: --limit-test)")
    p.add_argument("--limit-test", type=count(), default=None, help="use the first K test images")
    p.add_argument("--shots", type=count(), default=None,
                   help="few-shot: K training images per class (drawn with --seed, after --limit-train)")
    p.add_argument("--seed", type=seed(), default=dflt.seed)
    p.add_argument("--device", type=device_name(), default="auto", metavar=DEVICE_CHOICES,
                   help="auto: the first GPU when torch sees CUDA, else the CPU; under torchrun each rank "
                        "takes cuda:LOCAL_RANK")
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--resume", default=None, help="continue from a run's last.pt (its config is used)")
    p.add_argument("--workers", type=worker_count(), default=0,
                   help="data-loading processes (persistent; pinned memory on CUDA); results do not depend on it")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_prompt_arguments(p)
    return p


@run_cli
def main(argv: list[str] | None = None) -> int:
    """``lorsp-train``: parse, check the options against the prompt, train, print one summary line."""
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    metrics = train(cfg, args.out, force=args.force, resume=args.resume, progress=not args.quiet,
                    device=args.device, workers=args.workers)
    if metrics:
        p = metrics["params"]
        print(f"{cfg.prompt}/{cfg.head} on {cfg.dataset}: val {metrics['val_accuracy']:.4f} "
              f"(epoch {metrics['best_epoch']})  test {metrics['test_accuracy']:.4f}  "
              f"params prompt {p['prompt']} head {p['head']}  -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
