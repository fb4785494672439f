"""Tensors read from a file are checked before use: the kind expected, the dtype and shape expected, finite.

A NaN or an infinity in a weight does not fail loudly: the model runs and gives wrong answers
(a NaN head scores 0%, a NaN NIR weight silently casts to an integer). Every reader of tensors
(checkpoints, resume files, the host file, NIR, ONNX initialisers) refuses them here, in one
:class:`~lorsp.plumbing.errors.LorspError` line naming the file and the tensor.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from lorsp.plumbing.errors import LorspError

NUMERIC_KINDS = "biuf"
"""numpy dtype kinds that are numbers (bool, signed, unsigned, float); structured, string, object are not."""


def check_array(value: Any, name: str, source: str) -> np.ndarray:
    """``value`` (a numpy array, tensor or number) as a numpy array of numbers, every one finite."""
    if isinstance(value, torch.Tensor):
        if value.is_complex() or value.dtype in (torch.quint8, torch.qint8, torch.qint32):
            raise LorspError(f"{source}: {name} has dtype {value.dtype}, not a real number type")
        value = value.detach().cpu()
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise LorspError(f"{source}: {name} holds NaN or infinite values")
        return value.numpy() if value.dtype != torch.bfloat16 else value.float().numpy()
    if isinstance(value, (str, bytes)):
        raise LorspError(f"{source}: {name} is text ({str(value)[:40]!r}), not a number")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise LorspError(f"{source}: {name} is not an array of numbers ({type(exc).__name__})") from None
    if array.dtype.kind not in NUMERIC_KINDS:
        raise LorspError(f"{source}: {name} has dtype {array.dtype}, not a real number type")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise LorspError(f"{source}: {name} holds NaN or infinite values")
    return array


def check_state(given: Any, expected: Mapping[str, torch.Tensor], source: str, what: str) -> dict[str, torch.Tensor]:
    """``given`` as a state dict with exactly ``expected``'s keys, each tensor of its shape and dtype, finite.

    ``what`` names the part in the message ("prompt", "head").
    """
    if not isinstance(given, Mapping) or not all(isinstance(k, str) for k in given):
        raise LorspError(f"{source}: {what} is a {type(given).__name__}, not a mapping of tensor names to tensors")
    missing = sorted(set(expected) - set(given))
    extra = sorted(set(given) - set(expected))
    if missing or extra:
        detail = f"lacks {missing[0]!r}" if missing else f"has an unexpected tensor {extra[0]!r}"
        raise LorspError(f"{source}: {what} {detail}")
    for key, ref in expected.items():
        value = given[key]
        if not isinstance(value, torch.Tensor):
            raise LorspError(f"{source}: {what} tensor {key!r} is a {type(value).__name__}, not a tensor")
        if value.dtype != ref.dtype or tuple(value.shape) != tuple(ref.shape):
            raise LorspError(f"{source}: {what} tensor {key!r} is {value.dtype} {tuple(value.shape)}, expected "
                             f"{ref.dtype} {tuple(ref.shape)}")
        check_array(value, f"{what} tensor {key!r}", source)
    return dict(given)
