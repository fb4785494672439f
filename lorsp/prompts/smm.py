r"""SMM (Cai et al., ICML 2024, "Sample-specific Masks for Visual Reprogramming-based Prompting",
arXiv 2406.03150; reference code github tmlr-group/SMM, MIT, read for ``instance_model.py``).

A small ConvNet ``f`` maps each image to a three-channel mask with one value per
``patch x patch`` cell; patch-wise interpolation repeats each cell over its patch
(nearest-neighbour upsampling by the integer factor ``patch``); the mask multiplies one
learnable pattern ``delta`` shared by all images:

.. math::

    M(x) = \mathrm{up}_{patch}(f(x)) \in \mathbb{R}^{3 \times L \times L}, \qquad
    p(x) = \delta \odot M(x), \qquad \delta \in \mathbb{R}^{3 \times L \times L}

and the backbone sees ``normalize(x + p(x))``. As in the reference code, neither the mask
nor the pattern goes through a nonlinearity: the mask is the raw output of ``f``'s last
convolution (any real value, negative ones included) and ``delta`` starts at zero, so the
prompt starts at zero and the pattern takes the first gradient (the mask's gradient is
``delta``-weighted).

``f`` is SMM's ``AttributeNet``: ``n`` blocks ``Conv3x3(c_{i-1} -> c_i) -> BatchNorm -> ReLU``
with ``c_i = width * 2^i`` (SMM: 8, 16, 32, 64 for its 5-layer net, plus 128 for the 6-layer
one it uses on ViT), a ``MaxPool 2x2`` after each of the first ``log2(patch)`` blocks, then
``Conv3x3(c_{n-1} -> 3)`` with no batch norm or activation (stride 1, padding 1 throughout).
BatchNorm is part of the method: batch statistics in training, running statistics in eval
(so ``p(x)`` is deterministic and per-image in eval mode).

Adapted to this project:

* SMM resizes the image to the backbone's 224 px and adds the prompt over the whole image
  (its "resizing-based" reprogramming, not padding into a larger canvas); here the image is
  resized to ``L`` and the prompt covers all of it, as LoR-VP and ``vp``/``lorvp`` do.
* SMM works on ImageNet-normalised tensors; here ``x`` and ``p(x)`` live in image space
  ([0, 1]) and the backbone normalises after the addition. ``f`` reads ``x`` directly: a
  per-channel affine input change is absorbed exactly by the first convolution's weights and
  bias (up to its zero padding at the border), so the family of masks is the same. ``delta``'s
  scale is that of pixels, about 1/4.4 of SMM's normalised units.
* SMM's default patch is 8 px at 224 px (a 28 x 28 mask, 3 pooling stages); the patch is kept
  at 8 px, so the mask is ``L/8 x L/8`` (16 x 16 at L = 128, 4 x 4 at L = 32). ``L`` must be a
  multiple of the patch (SMM's reshape needs it too); another ``L`` is refused.
* SMM trains ``delta`` and ``f`` with two Adam optimisers; here both are prompt parameters
  under the project's one protocol (SGD + cosine at ``--prompt-lr``).

Trainable parameters: ``3 L^2`` (pattern) ``+ sum_i (9 c_{i-1} c_i + c_i + 2 c_i)`` (convs and
batch-norm affine) ``+ (27 c_{n-1} + 3)`` (last conv), ``c_{-1} = 3``. With the defaults
(width 8, 5 layers, patch 8) the generator has 26,499: 75,651 in all at L = 128 (49,152 +
26,499), 29,571 at L = 32, 177,027 at L = 224. Batch-norm running statistics are buffers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.cli_options import integer
from lorsp.prompts.base import VisualPrompt, register_prompt

LAYER_CHOICES = (5, 6)
"""SMM's generator depths: 5 (four conv blocks, SMM's default for ResNets) or 6 (a fifth, for ViT)."""


@dataclass(frozen=True)
class SmmOptions:
    """The options of SMM: the mask generator's width and depth, and the patch size."""

    mask_width: int = field(default=8, metadata={
        "help": "channels of the mask generator's first conv; each further block doubles them (SMM: 8; at most "
                "256: about 25 M generator parameters, where 4096 asked for 19 GB)",
        "parse": integer(1, 256)})
    patch: int = field(default=8, metadata={
        "help": "patch size: one mask value per patch x patch pixels, log2(patch) pooling stages (SMM: 8)",
        "parse": integer(1, 4096)})
    mask_layers: int = field(default=5, metadata={
        "help": "layers of the mask generator: 5 (SMM's, for CNN backbones) or 6 (SMM's for ViT)",
        "choices": LAYER_CHOICES})


def pooling_stages(patch: int, blocks: int) -> int:
    """``log2(patch)``: the generator's max-pooling stages; refuses a patch the design cannot make."""
    stages = patch.bit_length() - 1 if isinstance(patch, int) and patch >= 1 else -1
    if stages < 0 or 2 ** stages != patch or stages > blocks:
        raise LorspError(f"SMM's patch must be a power of two from 1 to {2 ** blocks} "
                         f"(one pooling stage per conv block, {blocks} blocks), got {patch}")
    return stages


class MaskGenerator(nn.Module):
    """SMM's ``AttributeNet``: conv blocks with pooling, then a conv to three mask channels."""

    def __init__(self, width: int = 8, blocks: int = 4, stages: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for i in range(blocks):
            c_out = width * 2 ** i
            layers += [nn.Conv2d(c_in, c_out, 3, 1, 1), nn.BatchNorm2d(c_out), nn.ReLU()]
            if i < stages:
                layers.append(nn.MaxPool2d(2, 2))
            c_in = c_out
        layers.append(nn.Conv2d(c_in, 3, 3, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register_prompt("smm")
class SampleSpecificMaskPrompt(VisualPrompt):
    """``p(x) = delta * up_patch(f(x))``: SMM's sample-specific three-channel mask times one shared pattern
    (defaults: SMM's, width 8, 5 layers, 8 px patches)."""

    Options = SmmOptions

    def __init__(self, image_size: int, options: SmmOptions | None = None, **overrides):
        super().__init__(image_size, options, **overrides)
        mask_width, patch, mask_layers = self.options.mask_width, self.options.patch, self.options.mask_layers
        blocks = mask_layers - 1
        stages = pooling_stages(patch, blocks)
        if image_size % patch:
            raise LorspError(f"--prompt smm needs an image size that is a multiple of its patch size {patch} "
                             f"({stages} pooling stages), got {image_size}")
        self.patch = patch
        self.mask_size = image_size // patch
        self.generator = MaskGenerator(mask_width, blocks, stages)
        self.pattern = nn.Parameter(torch.zeros(3, image_size, image_size))

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """The upscaled mask ``M(x)``, ``(N, 3, L, L)``: each of the ``L/patch`` squared cells over its patch."""
        self.check_input(x)
        cells = self.generator(x)
        return cells.repeat_interleave(self.patch, dim=2).repeat_interleave(self.patch, dim=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pattern * self.mask(x)


def generator_params(mask_width: int = 8, mask_layers: int = 5) -> int:
    """The mask generator's trainable parameters, by the formula of the module docstring."""
    count, c_in = 0, 3
    for i in range(mask_layers - 1):
        c_out = mask_width * 2 ** i
        count += 9 * c_in * c_out + c_out + 2 * c_out
        c_in = c_out
    return count + 9 * c_in * 3 + 3


def smm_params(image_size: int, mask_width: int = 8, mask_layers: int = 5) -> int:
    """SMM's trainable parameters: the ``3 L^2`` pattern and the generator."""
    return 3 * image_size ** 2 + generator_params(mask_width, mask_layers)

