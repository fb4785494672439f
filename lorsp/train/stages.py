"""The protocol in four stages: build, optimise one epoch, evaluate and select, write the outputs.

:func:`run_protocol` is the whole protocol in order; each stage is a function of its own. Nothing
here names a prompt method or one of its options: the prompt declares its parameter groups
(:meth:`lorsp.prompts.VisualPrompt.param_groups`), its loss terms
(:meth:`~lorsp.prompts.VisualPrompt.loss_terms`, from the declared outputs of its forward pass) and
whether it calibrates.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from lorsp.config import TrainConfig, metrics_config
from lorsp.data import Splits, create_splits
from lorsp.heads import FrequencyLabelMapping
from lorsp.metrics import INSTANCE_IMAGES, evaluate
from lorsp.model import PromptedClassifier, build_model
from lorsp.plots import plot_training_curves
from lorsp.plumbing.device import describe_device
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.fileio import save_torch, write_json
from lorsp.plumbing.loading import EpochSampler, make_loader
from lorsp.plumbing.precision import Precision
from lorsp.plumbing.provenance import git_commit, machine, versions
from lorsp.prompts import LearningRates
from lorsp.train.distributed import Dist, barrier
from lorsp.train.resume import (RESUME_FORMAT, load_trainable_state, restore_resume, restore_scaler,
                                trainable_state)


@dataclass
class Training:
    """What the build stage makes and the later stages carry on: data, model, optimiser, the record so far."""

    splits: Splits
    model: PromptedClassifier
    opt: torch.optim.Optimizer
    sched: Any
    scaler: torch.amp.GradScaler
    loader: DataLoader
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"val_accuracy": -1.0, "epoch": -1, "state": None})
    start_epoch: int = 0
    git_commit: str = field(default_factory=lambda: git_commit())
    """The checkout's commit when this process built the run (the code it imported), not when it ends."""


# --------------------------------------------------------------------------- build
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
    """SGD over the head (at ``--lr``) and the prompt's declared parameter groups, on a per-step cosine schedule."""
    params = model.trainable_parameters()
    if not params:
        raise LorspError(f"--prompt {cfg.prompt} with --head {cfg.head} has nothing to train")
    rates = LearningRates(base=cfg.lr, prompt=cfg.lr if cfg.prompt_lr is None else cfg.prompt_lr)
    in_prompt = {id(p) for p in model.prompt.parameters()}
    groups = [{"params": [p for p in params if id(p) not in in_prompt], "lr": cfg.lr},  # the head
              *({"params": group, "lr": lr} for group, lr in model.prompt.param_groups(rates))]
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


def build(cfg: TrainConfig, state: dict[str, Any] | None, d: Dist, precision: Precision,
          workers: int = 0) -> Training:
    """Stage 1: seed, data, model, optimiser, loader; then the resume file's state, or a fresh start."""
    torch.manual_seed(cfg.seed)
    splits = create_splits(cfg.dataset, cfg.image_size, root=cfg.data_root, download=cfg.download,
                           limit_train=cfg.limit_train, limit_val=cfg.limit_val or cfg.limit_test,
                           limit_test=cfg.limit_test, shots=cfg.shots, shot_seed=cfg.seed)
    model = build_model(cfg.to_dict(), splits.classes).to(d.device)
    steps_per_epoch = math.ceil(math.ceil(len(splits.train) / d.world) / max(1, cfg.batch_size // d.world))
    opt, sched = make_optimizer(model, cfg, cfg.epochs * steps_per_epoch)
    scaler = precision.scaler()
    loader = make_loader(splits.train, max(1, cfg.batch_size // d.world), seed=cfg.seed, workers=workers,
                         device=d.device, sampler=EpochSampler(len(splits.train), cfg.seed, d.rank, d.world))
    t = Training(splits, model, opt, sched, scaler, loader)
    if state is not None:
        restore_resume(model, opt, sched, state, "resume checkpoint")
        restore_scaler(scaler, state.get("scaler"), "resume checkpoint")
        t.history, t.start_epoch = list(state["history"]), int(state["epoch"])
        t.best = {"val_accuracy": float(state["best_val_accuracy"]), "epoch": int(state["best_epoch"]),
                  "state": state["best_state"]}
    else:
        calibrate_prompt(model, splits, cfg.batch_size, d.device)
        if isinstance(model.head, FrequencyLabelMapping):
            fit_label_mapping(model, splits, cfg.batch_size, d.device)
    return t


# --------------------------------------------------------------------------- optimise
def step_loss(model: torch.nn.Module, prompt: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
              epoch: float, precision: Precision) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss of one training batch and its logits, under ``precision``'s autocast: cross-entropy in fp32,
    plus the prompt's loss terms at (fractional) ``epoch``, from the batch's declared prompt outputs."""
    with precision.autocast():
        logits, out = model(x, with_prompt=True)
        loss = F.cross_entropy(logits.float(), y)
        extra = prompt.loss_terms(out, epoch)
        if extra is not None:
            loss = loss + extra
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
    """Stage 2: one epoch of training steps over ``loader`` (its :class:`EpochSampler` set to ``epoch``); the
    forward pass and the loss run under ``precision``'s autocast, the backward pass and the step through
    ``scaler`` (a disabled one, i.e. plain steps, unless fp16)."""
    precision = precision or Precision("fp32", d.device.type)
    scaler = scaler or precision.scaler()
    loader.sampler.set_epoch(epoch)
    model.train()
    prompt = (model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model).prompt
    loss_sum, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=not (d.main and progress))
    for step, (x, y) in enumerate(bar):
        x, y = x.to(d.device, non_blocking=True), y.to(d.device, non_blocking=True)
        loss, logits = step_loss(model, prompt, x, y, epoch + step / len(loader), precision)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise LorspError(f"loss became {value} at epoch {epoch + 1}, step {step + 1}: lower --lr (now {cfg.lr})")
        apply_step(loss, opt, scaler)
        sched.step()
        loss_sum += value * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
        bar.set_postfix(loss=f"{value:.3f}")
    prompt.settle()
    seconds = time.perf_counter() - start
    return {"train_loss": loss_sum / seen, "train_accuracy": correct / seen,
            "train_images_per_s": seen * d.world / seconds, "train_seconds": seconds}


# --------------------------------------------------------------------------- evaluate and select
def evaluate_and_select(t: Training, cfg: TrainConfig, row: dict[str, Any], stage: Path, progress: bool = True,
                        workers: int = 0) -> None:
    """Stage 3 (rank 0): score the epoch on val, keep the best model among the epochs the prompt calls selectable
    (:meth:`~lorsp.prompts.VisualPrompt.selectable`), save ``last.pt``, print the epoch's line."""
    val = evaluate(t.model, t.splits.val, desc="val", progress=progress, workers=workers)
    row["val_accuracy"], row["val_prompt_sparsity"] = val["accuracy"], val["prompt_sparsity"]
    t.history.append(row)
    prompt = t.model.prompt  # t.model is the module itself; run() trains it through a DDP wrapper of its own
    # an epoch the prompt is not yet in its trained form (a sparsity term still ramping) competes only if nothing
    # else can: the last epoch is kept when no epoch before it was selectable
    eligible = prompt.selectable(row["epoch"]) or (t.best["epoch"] < 0 and row["epoch"] == cfg.epochs)
    if eligible and (row["val_accuracy"] > t.best["val_accuracy"] or not prompt.selectable(t.best["epoch"])):
        t.best = {"val_accuracy": row["val_accuracy"], "epoch": row["epoch"], "state": trainable_state(t.model)}
    save_torch(stage / "last.pt", {
        "format": RESUME_FORMAT, "config": cfg.to_dict(), "epoch": row["epoch"],
        "model": trainable_state(t.model), "optimizer": t.opt.state_dict(),
        "scheduler": t.sched.state_dict(), "scaler": t.scaler.state_dict(), "history": t.history,
        "best_val_accuracy": t.best["val_accuracy"], "best_epoch": t.best["epoch"],
        "best_state": t.best["state"]})
    print(f"epoch {row['epoch']}/{cfg.epochs}  loss {row['train_loss']:.4f}  "
          f"train {row['train_accuracy']:.4f}  val {row['val_accuracy']:.4f}  "
          f"sparsity {row['val_prompt_sparsity']:.3f}  {row['train_images_per_s']:.1f} img/s", flush=True)


# --------------------------------------------------------------------------- write outputs
def write_outputs(t: Training, cfg: TrainConfig, d: Dist, stage: Path, progress: bool = True,
                  workers: int = 0) -> dict[str, Any]:
    """Stage 4 (rank 0): the val-selected model, scored once on test; ``model.pt``, ``metrics.json``,
    ``config.json`` and ``curves.png``. Returns the metrics."""
    model, history = t.model, t.history
    load_trainable_state(model, t.best["state"])
    save_torch(stage / "model.pt", model.checkpoint_state())
    test = evaluate(model, t.splits.test, desc="test", progress=progress, workers=workers,
                    instance_images=INSTANCE_IMAGES)  # zero-mask figures of the first test images
    metrics = {
        **metrics_config(cfg),
        "val_accuracy": t.best["val_accuracy"], "best_epoch": t.best["epoch"],
        "test_accuracy": test["accuracy"], "test_loss": test["loss"],
        **{k: v for k, v in test.items() if k not in ("accuracy", "loss", "n")},
        "n_train": len(t.splits.train), "n_val": len(t.splits.val), "n_test": len(t.splits.test),
        "params": model.num_trainable_params(),
        "train_images_per_s": sum(h["train_images_per_s"] * h["train_seconds"] for h in history)
        / max(sum(h["train_seconds"] for h in history), 1e-9),
        "world_size": d.world, "device": describe_device(d.device),
        "history": history,
        "versions": versions(), "git_commit": t.git_commit, "machine": machine(),
    }
    write_json(stage / "metrics.json", metrics)
    write_json(stage / "config.json", cfg.to_dict())
    plot_training_curves(history, stage / "curves.png",
                         f"{cfg.prompt}/{cfg.head} on {cfg.dataset}, {cfg.backbone} {cfg.image_size}px")
    return metrics


def run_protocol(cfg: TrainConfig, stage: Path, state: dict[str, Any] | None, d: Dist, precision: Precision,
                 workers: int = 0, *, stop_after_epoch: int | None = None, progress: bool = True) -> dict[str, Any]:
    """The protocol, writing into ``stage`` (rank 0): build, then per epoch optimise and (rank 0) evaluate and
    select, then write the outputs. ``state``: a resume checkpoint or None."""
    t = build(cfg, state, d, precision, workers)
    net: torch.nn.Module = t.model
    if d.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            t.model, device_ids=[d.device.index] if d.device.type == "cuda" else None, broadcast_buffers=False)
    for epoch in range(t.start_epoch, cfg.epochs):
        row = {"epoch": epoch + 1, **train_one_epoch(net, t.loader, cfg, epoch, d, t.opt, t.sched, progress,
                                                     precision, t.scaler)}
        if d.main:
            evaluate_and_select(t, cfg, row, stage, progress, workers)
        barrier(d)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < cfg.epochs:
            return {"stopped_after_epoch": epoch + 1}
    if not d.main:
        barrier(d)
        return {}
    return write_outputs(t, cfg, d, stage, progress, workers)
