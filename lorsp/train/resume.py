"""The resume file (``last.pt``): what it holds, how it is read back (checked as data from a file) and restored.

Data order depends only on ``(seed, epoch)``, so a run resumed from ``last.pt`` ends with the same
numbers as an uninterrupted one.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from lorsp.config import TrainConfig
from lorsp.model import PromptedClassifier
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.fileio import load_torch_safely
from lorsp.plumbing.tensor_checks import check_array, check_state
from lorsp.stored_config import check_stored_config
from lorsp.stored_paths import with_named_paths

RESUME_FORMAT = "lorsp-resume"
RESUME_KEYS = ("config", "epoch", "model", "optimizer", "scheduler", "history", "best_val_accuracy",
               "best_epoch", "best_state")


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
    config = state["config"] = with_named_paths(check_stored_config(state["config"], str(path)), str(path))
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
    for k, record in enumerate(history):
        for key in HISTORY_NUMBERS:
            if not _rate_ok(record.get(key), positive=False):
                raise LorspError(f"{path}: history record {k + 1} {key} {record.get(key)!r:.40} is not a finite "
                                 f"number >= 0")
    return state


HISTORY_NUMBERS = ("epoch", "train_loss", "train_accuracy", "train_images_per_s", "train_seconds", "val_accuracy")
"""The numbers of each epoch's record that the trainer reads back (metrics.json, the curves)."""


def restore_resume(model: PromptedClassifier, opt, sched, state: dict[str, Any], source: str) -> None:
    """Load a resume checkpoint's tensors into ``model``, ``opt`` and ``sched``, each checked first."""
    for part in ("model", "best_state"):
        if not isinstance(state[part], dict) or set(state[part]) != {"prompt", "head"}:
            raise LorspError(f"{source}: {part} must hold 'prompt' and 'head'")
        for name, module in (("prompt", model.prompt), ("head", model.head)):
            check_state(state[part][name], module.state_dict(), source, f"{part} {name}")
    load_trainable_state(model, state["model"])
    check_like_fresh(state["optimizer"], opt.state_dict(), "optimizer state", source)
    check_like_fresh(state["scheduler"], sched.state_dict(), "scheduler state", source)
    try:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
    except (ValueError, KeyError, TypeError, RuntimeError, IndexError, AttributeError) as exc:
        raise LorspError(f"{source}: the optimizer or scheduler state does not fit this run: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}") from None
    for param, group in opt.state.items():
        if not isinstance(param, torch.Tensor) or not isinstance(group, dict):
            raise LorspError(f"{source}: the optimizer state names parameter {param!r:.40}, which its param_groups "
                             f"do not list: it does not fit this run")
        for key, value in group.items():
            if isinstance(value, torch.Tensor):
                check_array(value, f"optimizer state {key!r}", source)
                if value.numel() != 1 and value.shape != param.shape:
                    raise LorspError(f"{source}: optimizer state {key!r} has shape {tuple(value.shape)}, its parameter "
                                     f"{tuple(param.shape)}")
    check_rates(opt, sched, source)
    check_schedule(sched, source)


def check_like_fresh(given: Any, fresh: dict[str, Any], what: str, source: str) -> None:
    """Refuse (one line) an optimizer or scheduler state whose keys and kinds of value are not those of this run's
    (``fresh``, its own state_dict): load_state_dict takes them as they are (a scheduler sets every key as an
    attribute), so an extra ``optimizer`` key, a word where a number belongs or a number where a list belongs would
    break the next training step, not the load."""
    if not isinstance(given, dict) or set(given) != set(fresh):
        extra = sorted(map(str, set(given) ^ set(fresh))) if isinstance(given, dict) else [type(given).__name__]
        raise LorspError(f"{source}: the {what} is not this run's (differs at {extra[0][:40]!r})")
    for key, value in fresh.items():
        if key != "state" and not _like(given[key], value):
            raise LorspError(f"{source}: the {what}'s {key} is {given[key]!r:.40}, not like this run's {value!r:.40}")


def _like(value: Any, fresh: Any) -> bool:
    """Whether ``value`` is of ``fresh``'s kind: a flag, a whole number, a number, a word, None (or a flag), a list
    of as many such values, a mapping of the same keys."""
    if isinstance(fresh, bool):
        return isinstance(value, bool)
    if isinstance(fresh, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(fresh, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if fresh is None:
        return value is None or isinstance(value, bool)
    if isinstance(fresh, (list, tuple)):
        return isinstance(value, (list, tuple)) and len(value) == len(fresh) and all(map(_like, value, fresh))
    if isinstance(fresh, dict):
        return isinstance(value, dict) and set(value) == set(fresh) and all(_like(value[k], fresh[k]) for k in fresh)
    return type(value) is type(fresh)


def check_schedule(sched: Any, source: str) -> None:
    """Refuse (one line) a resumed cosine schedule whose length, position or floor would break the next step."""
    t_max, last, floor = getattr(sched, "T_max", 1), getattr(sched, "last_epoch", 0), getattr(sched, "eta_min", 0.0)
    whole = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    if not (whole(t_max) and t_max >= 1 and whole(last) and last >= -1 and _rate_ok(floor, positive=False)):
        raise LorspError(f"{source}: the scheduler state (T_max {t_max!r:.20}, last_epoch {last!r:.20}, eta_min "
                         f"{floor!r:.20}) is not a schedule this run can continue")


RATE_FIELDS = {"lr": False, "initial_lr": True, "momentum": False, "weight_decay": False}
"""The optimiser's per-group numbers a resume file sets, and whether each must be above 0 (else at least 0: the
cosine schedule's current rate reaches 0 at its last step)."""


def _rate_ok(value: Any, positive: bool) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return number and (value > 0 if positive else value >= 0)


def check_rates(opt: torch.optim.Optimizer, sched: Any, source: str) -> None:
    """Refuse (one line) a resume file whose learning rates, momentum or weight decay are not finite, whose current
    rate is negative (gradient ascent) or whose initial and base rates are not positive."""
    for k, group in enumerate(opt.param_groups):
        for key, positive in RATE_FIELDS.items():
            if key in group and not _rate_ok(group[key], positive):
                raise LorspError(f"{source}: optimizer group {k} {key} {group[key]!r:.40} must be a finite number "
                                 f"{'above' if positive else 'at least'} 0")
    for k, rate in enumerate(getattr(sched, "base_lrs", [])):
        if not _rate_ok(rate, True):
            raise LorspError(f"{source}: scheduler base rate {k} {rate!r:.40} must be a finite number above 0")


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

