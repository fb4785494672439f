"""``host.safetensors``: the parts of a LoRSP model the chip does not run (format: :mod:`deploy.host`)."""
from __future__ import annotations

from pathlib import Path

from safetensors.torch import save_file

from deploy.fixed_point import FixedPointLayer
from deploy.host import HOST_FORMAT, host_tensors
from lorsp.fileio import atomic_write
from lorsp.model import PromptedClassifier


def write_host(model: PromptedClassifier, fixed: list[FixedPointLayer], path: str | Path) -> Path:
    prompt = model.prompt
    tensors = host_tensors(prompt.pool, prompt.time_steps, prompt.B, prompt.A, prompt.group_of_line,
                           model.head.state_dict(), [fx.scale for fx in fixed])
    metadata = {"format": HOST_FORMAT, "gate": prompt.gate,
                "encoding": "lorsp.encoding: adaptive average pool to 3 x pool x pool, counts round(v T), "
                            "evenly spread integer spike trains"}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
