"""The prompted classifier and its checkpoint format.

    logits = head(backbone(x + prompt(x)))

with ``x`` the resized image in [0, 1]; the backbone normalises inside and is
frozen. A checkpoint (``model.pt``) holds only plain types and tensors (it
loads with ``torch.load(..., weights_only=True)``): the config, the class
names, the prompt's and head's state, and the sha256 of the backbone weights
it was trained on. The backbone itself is rebuilt from its weights file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from lorsp.backbones import FrozenBackbone, create_backbone
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.fileio import load_torch_safely
from lorsp.stored_config import check_classes, check_stored_config
from lorsp.stored_paths import named_weights, with_named_paths
from lorsp.plumbing.tensor_checks import check_state
from lorsp.heads import create_head
from lorsp.prompts import PromptOutput, VisualPrompt, prompt_from_config

CHECKPOINT_FORMAT = "lorsp-checkpoint"
CHECKPOINT_VERSION = 1


class PromptedClassifier(nn.Module):
    """A visual prompt, a frozen backbone and a head.

    ``model(x)`` gives logits; ``model.prompt(x)`` the additive prompt (shaped
    like ``x``); ``model.num_trainable_params()`` the trainable counts.
    """

    def __init__(self, prompt: VisualPrompt, backbone: FrozenBackbone, head: nn.Module,
                 config: dict[str, Any], classes: list[str]):
        super().__init__()
        self.prompt = prompt
        self.backbone = backbone
        self.head = head
        self.config = dict(config)
        self.classes = list(classes)

    def prompted(self, x: torch.Tensor) -> torch.Tensor:
        """The image the backbone sees (before its normalisation)."""
        return x + self.prompt(x)

    def classify(self, prompted: torch.Tensor) -> torch.Tensor:
        """Logits of already-prompted images (backbone and head only)."""
        features = self.backbone.features(prompted)
        if self.head.input_kind == "imagenet_logits":
            features = self.backbone.imagenet_head(features)
        return self.head(features)

    def forward(self, x: torch.Tensor, with_prompt: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, PromptOutput]:
        """Logits of images ``x``; with ``with_prompt``, also the prompt's declared outputs (its loss terms read
        them: :meth:`lorsp.prompts.VisualPrompt.loss_terms`)."""
        out = self.prompt.output(x)
        logits = self.classify(x + out.prompt)
        return (logits, out) if with_prompt else logits

    @property
    def spiking_generator(self) -> nn.Module | None:
        """The prompt's spiking network (LoRSP), or None for prompts without one."""
        return getattr(self.prompt, "spiking_generator", None)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for m in (self.prompt, self.head) for p in m.parameters() if p.requires_grad]

    def num_trainable_params(self) -> dict[str, int]:
        """``{"prompt": ..., "head": ..., "total": ...}`` trainable parameter counts."""
        count = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)  # noqa: E731
        prompt, head = count(self.prompt), count(self.head)
        return {"prompt": prompt, "head": head, "total": prompt + head}

    def checkpoint_state(self) -> dict[str, Any]:
        """What ``model.pt`` holds (plain types and tensors only)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "config": dict(self.config),
            "classes": list(self.classes),
            "backbone_weights_sha256": self.backbone.weights_sha256,
            "prompt": {k: v.detach().cpu().clone() for k, v in self.prompt.state_dict().items()},
            "head": {k: v.detach().cpu().clone() for k, v in self.head.state_dict().items()},
        }


def build_model(config: dict[str, Any], classes: list[str],
                backbone: FrozenBackbone | None = None) -> PromptedClassifier:
    """Build an untrained model from a config (keys: backbone, weights, prompt, head, rank, image_size, ...)."""
    if backbone is None:
        backbone = create_backbone(config["backbone"], config.get("weights"), image_size=config.get("image_size"))
    prompt = prompt_from_config(config)
    head = create_head(config["head"], backbone.num_features, len(classes))
    return PromptedClassifier(prompt, backbone, head, config, classes)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and validate a lorsp checkpoint without executing anything from it."""
    path = Path(path)
    state = load_torch_safely(path, "lorsp checkpoint")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise LorspError(f"{path} is not a lorsp checkpoint (no '{CHECKPOINT_FORMAT}' header)")
    if state.get("format_version") != CHECKPOINT_VERSION:
        raise LorspError(f"{path}: checkpoint format version {state.get('format_version')} "
                         f"is not supported (expected {CHECKPOINT_VERSION})")
    for key in ("config", "classes", "prompt", "head"):
        if key not in state:
            raise LorspError(f"{path}: checkpoint lacks {key!r}")
    check_stored_config(state["config"], str(path))
    state["config"] = with_named_paths(state["config"], str(path))  # a stored path is opened only when named
    check_classes(state["classes"], str(path))
    if not isinstance(state.get("backbone_weights_sha256"), (str, type(None))):
        raise LorspError(f"{path}: backbone_weights_sha256 is not text")
    return state


def model_from_state(state: dict[str, Any], source: str = "checkpoint",
                     backbone: FrozenBackbone | None = None) -> PromptedClassifier:
    model = build_model(state["config"], state["classes"], backbone=backbone)
    expected = state.get("backbone_weights_sha256")
    if expected and model.backbone.weights_sha256 != expected:
        raise LorspError(f"{source} was trained on other backbone weights (sha256 {expected[:12]}..., "
                         f"found {str(model.backbone.weights_sha256)[:12]}...)")
    try:
        model.prompt.load_state_dict(check_state(state["prompt"], model.prompt.state_dict(), source, "prompt"))
        model.head.load_state_dict(check_state(state["head"], model.head.state_dict(), source, "head"))
    except RuntimeError as exc:
        raise LorspError(f"{source}: prompt or head tensors do not fit the config: "
                         f"{str(exc).splitlines()[0]}") from None
    return model.eval()


def load(path: str | Path, *, weights: str | Path | None = None) -> PromptedClassifier:
    """Load a trained model from ``model.pt`` (safe: ``weights_only=True``), in eval mode.

    ``weights``: the backbone weights file, for a model trained with ``--weights`` (the path the checkpoint
    stores is never opened, :mod:`lorsp.stored_paths`; the file's sha256 must be the checkpoint's)."""
    with named_weights(None if weights is None else str(weights)):
        return model_from_state(read_checkpoint(path), source=str(path))
