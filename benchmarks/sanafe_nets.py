"""The snnTorch networks the SANA-FE cross-check runs, randomly initialised and exported with ``export_to_nir``.

Weights are scaled up (``gain``) so that every layer spikes on Bernoulli input; neurons are snnTorch
``Leaky`` (NIR ``LIF``, which resets to ``v_reset = 0``) and ``RLeaky`` (a ``LIF`` with a recurrent
``Affine``). snnTorch's reset mechanism does not reach NIR: its ``LIF`` resets to ``v_reset``
whatever snnTorch trained with, and that is what both simulators run.
"""
from __future__ import annotations

from pathlib import Path

import nir


def _leaky(shape: tuple[int, ...], beta: float, output: bool = False):
    import snntorch as snn
    import torch

    return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.ones(shape), init_hidden=True,
                     reset_mechanism="zero", reset_delay=False, output=output)


def snntorch_chain(sizes: list[int], seed: int, beta: float = 0.9, gain: float = 3.0, bias: bool = False):
    """A ``Linear -> Leaky`` chain."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    layers: list = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        fc = nn.Linear(a, b, bias=bias)
        with torch.no_grad():
            fc.weight.mul_(gain)
        layers += [fc, _leaky((b,), beta, output=i == len(sizes) - 2)]
    return nn.Sequential(*layers)


def snntorch_conv(image: tuple[int, int, int], channels: list[int], classes: int, seed: int, beta: float = 0.9,
                  gain: float = 2.5, bias: bool = True):
    """``Conv2d 3x3 -> Leaky -> AvgPool2d 2`` per entry of ``channels`` (the first unpadded, the others padded
    by 1), then ``Flatten -> Linear -> Leaky``."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    c, h, w = image
    layers: list = []
    for i, co in enumerate(channels):
        pad = 0 if i == 0 else 1
        conv = nn.Conv2d(c, co, 3, padding=pad, bias=bias)
        with torch.no_grad():
            conv.weight.mul_(gain)
            if bias:
                conv.bias.mul_(0.5)
        h, w = h - 2 + 2 * pad, w - 2 + 2 * pad
        layers += [conv, _leaky((co, h, w), beta), nn.AvgPool2d(2)]
        c, h, w = co, h // 2, w // 2
    fc = nn.Linear(c * h * w, classes, bias=bias)
    with torch.no_grad():
        fc.weight.mul_(2 * gain)
    return nn.Sequential(*layers, nn.Flatten(), fc, _leaky((classes,), beta, output=True))


def snntorch_recurrent(sizes: list[int], seed: int, beta: float = 0.9, gain: float = 2.5, bias: bool = True):
    """``Linear -> RLeaky`` (all-to-all recurrent ``Linear``, snnTorch's default reset ``subtract``)
    ``-> Linear -> Leaky``; ``sizes`` = input, recurrent, output."""
    import snntorch as snn
    import torch
    from torch import nn

    n_in, n_rec, n_out = sizes
    torch.manual_seed(seed)

    class Recurrent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(n_in, n_rec, bias=bias), nn.Linear(n_rec, n_out, bias=bias)
            self.rec = snn.RLeaky(beta=torch.full((n_rec,), beta), threshold=torch.ones(n_rec),
                                  linear_features=n_rec, reset_mechanism="subtract")
            self.out = snn.Leaky(beta=torch.full((n_out,), beta), threshold=torch.ones(n_out),
                                 reset_mechanism="subtract")
            with torch.no_grad():
                self.fc1.weight.mul_(gain)
                self.fc2.weight.mul_(gain)
                self.rec.recurrent.weight.mul_(gain)
                if not bias:
                    self.rec.recurrent.bias.zero_()

        def forward(self, x):
            s, _ = self.rec(self.fc1(x))
            return self.out(self.fc2(s))[0]

    return Recurrent()


def export(net, sample_shape: tuple[int, ...], path: Path) -> Path:
    """``net`` written as NIR to ``path`` (batch dimension left out)."""
    import torch
    from snntorch.export_nir import export_to_nir

    nir.write(path, export_to_nir(net, torch.zeros(1, *sample_shape), ignore_dims=[0]))
    return path


def export_chain(path: Path, sizes: list[int], seed: int) -> Path:
    """A bias-free ``Linear -> Leaky`` chain of ``sizes`` written to ``path``."""
    return export(snntorch_chain(sizes, seed), (sizes[0],), path)
