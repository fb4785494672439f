r"""The host side of a prompt with a chip part: what runs around the chip, and the file that carries it.

The chip runs the spiking generator ``S`` only. The host

1. encodes each image into input spikes (:class:`lorsp.encoding.Encoding`: its name, size
   and ``T`` steps);
2. receives the gate spikes;
3. builds the prompt from them with the prompt's own code
   (:meth:`lorsp.prompts.VisualPrompt.prompt_from_spikes` and ``add_from_spikes``; for LoRSP a gate
   is open when its neuron fired at least once, lines reading their band's gate through
   ``group_of_line``), so host and training cannot drift apart;
4. classifies ``x + P(x)`` with the frozen backbone and the head.

``host.safetensors`` (format ``lorsp-host-v2``) holds what steps 1 and 3-4 need beyond the
backbone's own weights file (named by sha256 in the manifest): what the prompt declares of
itself (:meth:`lorsp.prompts.VisualPrompt.host_state`; LoRSP: tensors ``encoding.size``,
``encoding.time_steps``, ``prompt.B``, ``prompt.A``, ``prompt.mix`` (shared factors only),
``prompt.group_of_line``; metadata ``gate``, ``encoding`` (its name) and ``factors``), then
``head.*`` and ``fixed_point.scale`` (one scale per chip layer, :mod:`deploy.fixed_point`) and
metadata ``format``. Pixel gating adds the gates' trained tensors (``prompt.spiking_generator.conv.weight``,
``.conv.bias``, ``.kappa``: with the factors they give the gates' drive) and metadata ``code`` (the spike
code); the rebuilt model's gates must then be the NIR graph's, value for value
(:meth:`deploy.pixel_bundle.PixelGateNetwork.check_prompt`). :func:`rebuild_model` loads a file back into the config's model without
naming a method: ``prompt.*`` tensors that are parameters are taken from the file, every other
declared tensor and text must be what the config's prompt declares. A ``lorsp-host-v1`` file
(``encoding.pool``, per-channel factors, from before the band gating) is still read.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open

from deploy.network import SpikingNetwork
from deploy.pixel_bundle import PixelGateNetwork
from lorsp.encoding import Encoding
from lorsp.plumbing.errors import LorspError
from lorsp.model import PromptedClassifier, build_model
from lorsp.prompts import VisualPrompt, chip_prompts
from lorsp.plumbing.fileio import check_safetensors_header
from lorsp.plumbing.tensor_checks import check_array

HOST_FORMAT = "lorsp-host-v2"
READABLE_FORMATS = ("lorsp-host-v1", HOST_FORMAT)


@dataclass(frozen=True)
class HostParts:
    """What the host runs around the chip, as read from ``host.safetensors``."""

    encoding: Encoding
    gate: str
    factors: str
    B: torch.Tensor
    A: torch.Tensor
    mix: torch.Tensor | None
    group_of_line: torch.Tensor
    head: dict[str, torch.Tensor]
    fixed_point_scale: torch.Tensor
    prompt_state: dict[str, torch.Tensor]
    """The file's ``encoding.*`` and ``prompt.*`` tensors, a ``lorsp-host-v1`` file's in today's names."""
    prompt_metadata: dict[str, str]
    """``gate``, ``encoding`` and ``factors`` as the file gives them (a v1 file's implied values)."""

    @property
    def time_steps(self) -> int:
        """``T``, the steps per image."""
        return self.encoding.time_steps


def host_tensors(prompt: VisualPrompt, head: dict[str, torch.Tensor],
                 fixed_point_scale: list[float]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors (contiguous CPU copies) and metadata of ``host.safetensors`` for a prompt with a chip part:
    what the prompt declares of itself (:meth:`lorsp.prompts.VisualPrompt.host_state`), the head's tensors and
    the fixed-point scales."""
    state, prompt_metadata = prompt.host_state()
    tensors = {**state, "fixed_point.scale": torch.tensor(fixed_point_scale, dtype=torch.float64),
               **{f"head.{k}": v for k, v in head.items()}}
    metadata = {"format": HOST_FORMAT, **prompt_metadata}
    return {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, metadata


def read_host(path: str | Path) -> HostParts:
    path = Path(path)
    if not path.is_file():
        raise LorspError(f"host file not found: {path}")
    check_safetensors_header(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise LorspError(f"{path} is not a readable safetensors file: {str(exc).splitlines()[0][:160]}") from None
    if meta.get("format") not in READABLE_FORMATS:
        raise LorspError(f"{path} is not a lorsp host file (format {meta.get('format')!r}, expected {HOST_FORMAT!r})")
    legacy = meta["format"] == "lorsp-host-v1"
    check_host_tensors(tensors, legacy, str(path))
    try:
        size, steps = tensors["encoding.pool" if legacy else "encoding.size"], tensors["encoding.time_steps"]
        if size.numel() != 1 or steps.numel() != 1:
            raise ValueError("encoding.size and encoding.time_steps must hold one value each")
        encoding = Encoding("pool" if legacy else meta.get("encoding", ""), int(size.reshape(-1)[0]),
                            int(steps.reshape(-1)[0]), meta.get("code", "rate"))
        prompt_metadata = {"gate": meta.get("gate", "rowcol"), "encoding": encoding.name,
                           "factors": "per-channel" if legacy else meta.get("factors", ""),
                           **({"code": meta["code"]} if "code" in meta else {})}
        prompt_state = {("encoding.size" if k == "encoding.pool" else k): v for k, v in tensors.items()
                        if k.startswith(("encoding.", "prompt."))}
        return HostParts(encoding=encoding, gate=prompt_metadata["gate"], factors=prompt_metadata["factors"],
                         B=tensors["prompt.B"], A=tensors["prompt.A"], mix=tensors.get("prompt.mix"),
                         group_of_line=tensors["prompt.group_of_line"],
                         head={k[len("head."):]: v for k, v in tensors.items() if k.startswith("head.")},
                         fixed_point_scale=tensors["fixed_point.scale"], prompt_state=prompt_state,
                         prompt_metadata=prompt_metadata)
    except KeyError as exc:
        raise LorspError(f"{path} lacks tensor {exc.args[0]!r}") from None
    except (IndexError, ValueError, TypeError) as exc:
        raise LorspError(f"{path}: the encoding tensors are malformed ({type(exc).__name__}: {exc})") from None


HOST_DTYPES = {"encoding.size": torch.int64, "encoding.pool": torch.int64, "encoding.time_steps": torch.int64,
               "prompt.B": torch.float32, "prompt.A": torch.float32, "prompt.mix": torch.float32,
               "prompt.group_of_line": torch.int64, "fixed_point.scale": torch.float64,
               "prompt.spiking_generator.conv.weight": torch.float32, "prompt.spiking_generator.conv.bias": torch.float32,
               "prompt.spiking_generator.kappa": torch.float32}
"""The dtype of every tensor :func:`host_tensors` writes (``head.*``: float32)."""
MAX_ENCODING = {"encoding.size": 4096, "encoding.pool": 4096, "encoding.time_steps": 10_000}


def check_host_tensors(tensors: dict[str, torch.Tensor], legacy: bool, source: str) -> None:
    """Each tensor of a host file has its dtype, holds finite values, and the encoding's counts are in range."""
    for key, value in tensors.items():
        expected = torch.float32 if key.startswith("head.") else HOST_DTYPES.get(key)
        if expected is None or key == ("encoding.size" if legacy else "encoding.pool"):
            raise LorspError(f"{source}: unexpected tensor {key!r} in a host file")
        if value.dtype != expected:
            raise LorspError(f"{source}: tensor {key!r} is {value.dtype}, expected {expected}")
        check_array(value, f"tensor {key!r}", source)
    for key, most in MAX_ENCODING.items():
        value = tensors.get(key)
        if value is not None and (value.numel() != 1 or not 1 <= int(value.reshape(-1)[0]) <= most):
            raise LorspError(f"{source}: {key} is malformed: it must hold one integer from 1 to {most}, got "
                             f"{value.tolist()[:4]}")
    scale = tensors.get("fixed_point.scale")
    if scale is not None and (scale.ndim != 1 or not bool((scale > 0).all())):
        raise LorspError(f"{source}: fixed_point.scale must be one positive scale per chip layer")


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
                  network: SpikingNetwork | PixelGateNetwork, host: HostParts) -> PromptedClassifier:
    """The checkpoint's model again, its generator taken from ``network`` (the chip's description); pixel gates
    from the host file's tensors, then held to ``network`` (:meth:`PixelGateNetwork.check_prompt`)."""
    if config.get("prompt") not in chip_prompts():
        raise LorspError(f"the bundle's config is a {config.get('prompt')!r} prompt, which has no chip part")
    model = build_model(config, classes)
    if backbone_sha256 and model.backbone.weights_sha256 != backbone_sha256:
        raise LorspError(f"backbone weights differ from the exported model's (sha256 {backbone_sha256[:12]}...)")
    state = model.prompt.state_dict()
    chip_state = generator_state(network) if isinstance(network, SpikingNetwork) else {}
    for key, value in chip_state.items():
        full = f"spiking_generator.{key}"
        if full not in state or state[full].shape != value.shape:
            raise LorspError(f"the NIR network does not fit this model's spiking generator ({full} "
                             f"{tuple(value.shape)})")
        state[full] = value
    expected, expected_metadata = model.prompt.host_state()  # what this config's prompt writes
    for key in sorted(set(expected) | set(host.prompt_state)):
        given, wanted, name = host.prompt_state.get(key), expected.get(key), key.removeprefix("prompt.")
        if wanted is None:
            raise LorspError(f"host tensor {key!r} is not one this config's prompt declares")
        if key.startswith("prompt.") and name in state:  # a trained tensor: the file's values
            if given is None or given.shape != wanted.shape:
                raise LorspError(f"host tensor {key!r} {tuple(given.shape) if given is not None else 'missing'} "
                                 f"does not fit the config")
            state[name] = given
        elif given is None or not torch.equal(given, wanted.cpu().to(given.dtype)):
            raise LorspError("host encoding or gate mapping differs from the config's")
    if any(host.prompt_metadata.get(k) != v for k, v in expected_metadata.items()):
        raise LorspError("host encoding or gate mapping differs from the config's")
    model.prompt.load_state_dict(state)
    if isinstance(network, PixelGateNetwork):
        network.check_prompt(model.prompt)
    try:
        model.head.load_state_dict(host.head)
    except RuntimeError as exc:
        raise LorspError(f"host head tensors do not fit the config: {str(exc).splitlines()[0]}") from None
    return model.eval()
