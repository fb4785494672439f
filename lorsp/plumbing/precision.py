"""The arithmetic of a training step: ``--precision fp32|bf16|fp16``.

* ``fp32``: plain float32 (the default; the protocol's figures are fp32 runs);
* ``bf16``: the forward pass under :func:`torch.autocast` with bfloat16 (matrix products and
  convolutions in bf16, reductions and the loss in fp32); no scaler is needed, bf16 has fp32's range;
* ``fp16``: autocast with float16 and a :class:`torch.amp.GradScaler`: the loss is multiplied
  before ``backward`` so that small gradients do not flush to zero in fp16, the gradients are
  divided back before the optimizer step, and a step whose gradients overflowed is skipped.

Parameters, optimizer state and the exported model stay fp32; validation and test are scored in
fp32 (what the ONNX and chip exports compute). torch 2.3.1 runs both autocast types on the CPU
as well as on CUDA (checked here: EfficientNet-Lite0 forward and backward to the input under
each); a CUDA device without bfloat16 (before Ampere) is refused for ``bf16``. On CUDA, what runs
in fp32 runs in IEEE fp32: TensorFloat-32 (cuDNN's default for convolutions on Ampere and later,
a 10-bit mantissa) is turned off, so that ``fp32`` means the same arithmetic on a GPU as on a CPU.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import ContextManager

import torch

from lorsp.plumbing.errors import LorspError

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """A checked precision on one device type: its autocast context and its gradient scaler."""

    name: str
    device_type: str

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast type, None for fp32."""
        return PRECISIONS[self.name]

    def autocast(self) -> ContextManager:
        """The context a training step's forward pass (and loss) runs in."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler, enabled for fp16 only (disabled, it passes the loss and the step through)."""
        return torch.amp.GradScaler(self.device_type, enabled=self.name == "fp16")


def check_precision_name(name: str) -> None:
    """Refuse an unknown ``--precision`` in one line."""
    if name not in PRECISIONS:
        raise LorspError(f"--precision must be one of {', '.join(PRECISIONS)}, got {name!r}")


def precision_for(name: str, device: torch.device) -> Precision:
    """The precision ``name`` on ``device``; a one-line :class:`LorspError` where it cannot run there."""
    check_precision_name(name)
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise LorspError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16 "
                         f"arithmetic; use --precision fp16 or fp32")
    if device.type == "cuda":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    return Precision(name, device.type)
