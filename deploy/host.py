r"""The host side of a LoRSP prompt: what runs around the chip, and the file that carries it.

The chip runs the spiking generator ``S`` only. The host

1. encodes each image into input spikes (:func:`lorsp.encoding.encode`, pool ``p``, ``T`` steps);
2. receives the gate spikes and forms their rates ``rho = (1/T) sum_t s_t``;
3. builds the prompt from the rates with the prompt's own code
   (:class:`lorsp.prompts.lorsp.LowRankSpikePrompt`: gates from ``rho``, then
   ``P_c = diag(g_row) B_c A_c diag(g_col)``, rows and columns reading their gate
   through ``group_of_line``), so host and training cannot drift apart;
4. classifies ``x + P(x)`` with the frozen backbone and the head.

``host.safetensors`` holds what steps 1 and 3-4 need beyond the backbone's own weights
file (named by sha256 in the manifest): tensors ``encoding.pool``, ``encoding.time_steps``,
``prompt.B``, ``prompt.A``, ``prompt.group_of_line``, ``head.*`` and ``fixed_point.scale``
(one scale per chip layer, :mod:`deploy.fixed_point`); metadata ``format`` and ``gate``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open

from deploy.network import SpikingNetwork
from lorsp.errors import LorspError
from lorsp.model import PromptedClassifier, build_model
from lorsp.prompts.lorsp import LowRankSpikePrompt

HOST_FORMAT = "lorsp-host-v1"


@dataclass(frozen=True)
class HostParts:
    pool: int
    time_steps: int
    gate: str
    B: torch.Tensor
    A: torch.Tensor
    group_of_line: torch.Tensor
    head: dict[str, torch.Tensor]
    fixed_point_scale: torch.Tensor


def host_tensors(pool: int, time_steps: int, B: torch.Tensor, A: torch.Tensor, group_of_line: torch.Tensor,
                 head: dict[str, torch.Tensor], fixed_point_scale: list[float]) -> dict[str, torch.Tensor]:
    """The tensors of ``host.safetensors`` (contiguous CPU copies)."""
    tensors = {"encoding.pool": torch.tensor([pool], dtype=torch.int64),
               "encoding.time_steps": torch.tensor([time_steps], dtype=torch.int64),
               "prompt.B": B, "prompt.A": A, "prompt.group_of_line": group_of_line.to(torch.int64),
               "fixed_point.scale": torch.tensor(fixed_point_scale, dtype=torch.float64),
               **{f"head.{k}": v for k, v in head.items()}}
    return {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}


def read_host(path: str | Path) -> HostParts:
    path = Path(path)
    if not path.is_file():
        raise LorspError(f"host file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise LorspError(f"{path} is not a readable safetensors file: {str(exc).splitlines()[0][:160]}") from None
    if meta.get("format") != HOST_FORMAT:
        raise LorspError(f"{path} is not a lorsp host file (format {meta.get('format')!r}, expected {HOST_FORMAT!r})")
    try:
        return HostParts(pool=int(tensors["encoding.pool"][0]), time_steps=int(tensors["encoding.time_steps"][0]),
                         gate=meta.get("gate", "rowcol"), B=tensors["prompt.B"], A=tensors["prompt.A"],
                         group_of_line=tensors["prompt.group_of_line"],
                         head={k[len("head."):]: v for k, v in tensors.items() if k.startswith("head.")},
                         fixed_point_scale=tensors["fixed_point.scale"])
    except KeyError as exc:
        raise LorspError(f"{path} lacks tensor {exc.args[0]!r}") from None


def generator_state(network: SpikingNetwork) -> dict[str, torch.Tensor]:
    """The network as the state dict of lorsp's ``Linear -> Leaky -> ...`` generator."""
    state: dict[str, torch.Tensor] = {}
    for k, layer in enumerate(network.layers):
        if layer.alpha.any():
            raise LorspError(f"layer {layer.name} has a synaptic current (CubaLIF); LoRSP's generator has none")
        state[f"{2 * k}.weight"] = torch.from_numpy(layer.weight.copy())
        state[f"{2 * k}.bias"] = torch.from_numpy(layer.bias.copy())
        state[f"{2 * k + 1}.beta"] = torch.from_numpy(layer.beta.copy())
        state[f"{2 * k + 1}.threshold"] = torch.from_numpy(layer.threshold.copy())
    return state


def rebuild_model(config: dict[str, Any], classes: list[str], backbone_sha256: str | None,
                  network: SpikingNetwork, host: HostParts) -> PromptedClassifier:
    """The checkpoint's model again, its generator taken from ``network`` (the chip's description)."""
    if config.get("prompt") != "lorsp":
        raise LorspError(f"the bundle's config is a {config.get('prompt')!r} prompt, not 'lorsp'")
    model = build_model(config, classes)
    if backbone_sha256 and model.backbone.weights_sha256 != backbone_sha256:
        raise LorspError(f"backbone weights differ from the exported model's (sha256 {backbone_sha256[:12]}...)")
    state = model.prompt.state_dict()
    for key, value in generator_state(network).items():
        full = f"spiking_generator.{key}"
        if full not in state or state[full].shape != value.shape:
            raise LorspError(f"the NIR network does not fit this model's spiking generator ({full} "
                             f"{tuple(value.shape)})")
        state[full] = value
    if host.B.shape != state["B"].shape or host.A.shape != state["A"].shape:
        raise LorspError(f"host factors B {tuple(host.B.shape)}, A {tuple(host.A.shape)} do not fit the config")
    state["B"], state["A"] = host.B, host.A
    model.prompt.load_state_dict(state)
    try:
        model.head.load_state_dict(host.head)
    except RuntimeError as exc:
        raise LorspError(f"host head tensors do not fit the config: {str(exc).splitlines()[0]}") from None
    prompt = model.prompt
    if (host.pool, host.time_steps, host.gate) != (prompt.pool, prompt.time_steps, prompt.gate) or \
            not torch.equal(host.group_of_line, prompt.group_of_line.cpu()):
        raise LorspError("host encoding or gate mapping differs from the config's")
    return model.eval()


@torch.no_grad()
def prompt_from_gate_spikes(model: PromptedClassifier, gate_spikes: torch.Tensor) -> torch.Tensor:
    """The prompt from the chip's gate spikes ``(T, N, gates)``, with the prompt's own host code."""
    return model.prompt.prompt_from_rates(gate_spikes.float().mean(0))


@torch.no_grad()
def add_prompt(prompt: LowRankSpikePrompt, x: torch.Tensor, gate_spikes: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``x + P(x)`` as the host computes it, and the number of prompt entries it added (whole batch).

    Row/column gating: only the open block changes. A row (column) is open when its gate
    neuron fired at least once in the ``T`` steps, and the fixed product ``B A`` (computed once
    per call) is added at the open rows x open columns of each channel; every other pixel is
    left as it is. This equals :func:`prompt_from_gate_spikes` added densely, bit for bit
    (``x + 0 = x``); a host that visits only the open block needs ``3 |rows| |cols|`` adds
    per image instead of ``3 L^2``, and that is the count returned. Rank gating has no
    pixel-level zeros and takes the dense path (``3 L^2`` entries).
    """
    if prompt.gate != "rowcol":
        return x + prompt.prompt_from_rates(gate_spikes.float().mean(0)), 3 * x.shape[-2] * x.shape[-1] * len(x)
    rows, cols = prompt.line_gates(gate_spikes.bool().any(0))  # (N, L) each: fired at least once
    low_rank = torch.bmm(prompt.B, prompt.A)  # (3, L, L)
    open_block = rows[:, None, :, None] & cols[:, None, None, :]  # (N, 1, L, L)
    # On a vector CPU, adding everywhere and selecting is faster than gathering the open
    # entries (0.2 ms against 3.6 ms per batch of 64 at 32 px here); the result is the same,
    # and the count is what a host that visits only the open block spends.
    return torch.where(open_block, x + low_rank, x), 3 * int(open_block.sum())
