"""Classification heads on top of the frozen backbone.

* ``lp``: a new linear layer on the pooled features (LoR-VP's default), trained
  with the prompt.
* ``flm``: the frozen ImageNet classifier with a frequency label mapping (ILM-VP's
  FLM, Chen et al. CVPR 2023): each target class is assigned one ImageNet class,
  one to one, by greedily taking the largest entry of the count matrix
  ``F[target class, predicted ImageNet class]`` over the training images
  (under the initial prompt) and striking out its row and column. Only the
  prompt trains.

A head declares which output of the backbone it reads (``input_kind``).
"""
from __future__ import annotations

from typing import Callable, Literal

import torch
from torch import nn

from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.registry import Registry

HeadFactory = Callable[[int, int], nn.Module]
"""``factory(num_features, num_classes) -> head``."""
HEADS: Registry[HeadFactory] = Registry("head", sort_names=False)
register_head = HEADS.register


def list_heads() -> list[str]:
    """Registered head names, in registration order (``lp`` first: the default)."""
    return HEADS.names()


class LinearHead(nn.Linear):
    input_kind: Literal["features", "imagenet_logits"] = "features"


class FrequencyLabelMapping(nn.Module):
    """Logits of class ``c`` = ImageNet logit of ``mapping[c]``."""

    input_kind: Literal["features", "imagenet_logits"] = "imagenet_logits"

    def __init__(self, num_classes: int, num_source_classes: int = 1000):
        super().__init__()
        if num_classes > num_source_classes:
            raise LorspError(f"flm head maps onto {num_source_classes} ImageNet classes, "
                             f"cannot map {num_classes}")
        self.num_source_classes = num_source_classes
        self.register_buffer("mapping", torch.arange(num_classes, dtype=torch.long))

    def forward(self, imagenet_logits: torch.Tensor) -> torch.Tensor:
        return imagenet_logits[:, self.mapping]

    @torch.no_grad()
    def fit(self, counts: torch.Tensor) -> None:
        """Set the mapping from a ``(num_classes, num_source_classes)`` count matrix."""
        counts = counts.double().clone()
        mapping = torch.empty(counts.shape[0], dtype=torch.long)
        for _ in range(counts.shape[0]):
            flat = int(torch.argmax(counts))
            row, col = divmod(flat, counts.shape[1])
            mapping[row] = col
            counts[row, :] = -1
            counts[:, col] = -1
        self.mapping.copy_(mapping)


@register_head("lp")
def linear_probe(num_features: int, num_classes: int) -> LinearHead:
    """A new linear layer on the pooled features."""
    return LinearHead(num_features, num_classes)


@register_head("flm")
def frequency_label_mapping(num_features: int, num_classes: int) -> FrequencyLabelMapping:
    """The frozen ImageNet classifier with a frequency label mapping (``num_features`` unused)."""
    return FrequencyLabelMapping(num_classes)


def create_head(name: str, num_features: int, num_classes: int) -> nn.Module:
    """Build head ``name`` for ``num_features`` backbone features and ``num_classes`` classes."""
    return HEADS.get(name)(num_features, num_classes)
