r"""The stateless nodes of a NIR graph (and ``Delay``) as PyTorch float32 operations on a batch.

Every function here takes the NIR node and returns a :class:`Synapse`: ``apply`` maps a batch
``(n, *in_shape)`` to ``(n, *out_shape)`` for one time step, with the very PyTorch call the
exporting framework's layer makes (``F.linear`` for ``torch.nn.Linear``, ``F.conv2d`` for
``torch.nn.Conv2d``, ...), so its float32 numbers are the framework's bit for bit.
``connect`` is the node's connectivity (``apply`` with weights made 0/1, no bias) and
``pairs`` counts with it, per sample, the pairs (nonzero input, nonzero weight) the node's
synapses see: NeuroBench's synaptic operations, bias excluded. Both are linear in the 0/1
mask of the input (``[x != 0]``), so the count's gradient is each input's fan-out
(:func:`fan_out`), computed once; a run multiplies the mask by it.

=============  =====================================================  ==========================
NIR node       one step                                                synaptic pairs
=============  =====================================================  ==========================
``Affine``     ``y = W x + b``                                         ``[x != 0] . [W != 0]``
``Linear``     ``y = W x``                                             idem
``Scale``      ``y = s * x`` (element-wise)                            ``[x != 0][s != 0]``
``Conv1d/2d``  ``y = conv(x, W, stride, padding, dilation, groups)+b``  the same conv of 0/1 masks
``SumPool2d``  ``y = sum of each window``                             windows each input is in
``AvgPool2d``  ``y = mean of each window`` (padding counted)            idem
``Flatten``    reshape of ``start_dim..end_dim`` (batch excluded)       none
``Threshold``  ``y = [x > theta]``                                     none
``Delay``      ``y[t] = x[t - round(tau / dt)]`` (zeros before)         none
=============  =====================================================  ==========================
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from lorsp.plumbing.errors import LorspError

Fn = Callable[[torch.Tensor], torch.Tensor]
STEP_RTOL = 1e-6
"""How far ``tau / dt`` of a ``Delay`` may lie from a whole number of steps."""


@dataclass
class Synapse:
    """A stateless (or, for ``Delay``, buffered) step ``apply`` and its synaptic-pair count ``pairs``."""

    kind: str
    apply: Fn
    connect: Fn | None = None
    """The node's connectivity: ``apply`` with every nonzero weight 1, every zero 0 and no bias, on a
    0/1 mask of the input ``(n, *in_shape)``; None: no synapses."""
    delay_steps: np.ndarray | None = None
    state: dict = field(default_factory=dict)

    def pairs(self, m: torch.Tensor) -> torch.Tensor:
        """``(n,)`` pairs of nonzero input (mask ``m``) and nonzero weight per sample."""
        return per_sample(self.connect(m))

    def reset(self, n: int, shape: tuple[int, ...], steps: int) -> None:
        """Every sample of ``steps`` steps starts from rest (a ``Delay`` from an empty line, no longer than
        the run: a delay of ``steps`` or more gives zeros throughout)."""
        if self.delay_steps is not None:
            depth = int(min(self.delay_steps.max(), steps)) + 1
            self.state = {"buf": torch.zeros((depth, n, *shape)), "t": 0,
                          "lag": torch.as_tensor(np.broadcast_to(self.delay_steps, shape).copy(), dtype=torch.long)}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.delay_steps is None:
            return self.apply(x)
        buf, t, lag = self.state["buf"], self.state["t"], self.state["lag"]
        depth = buf.shape[0]
        buf[t % depth] = x
        index = ((t - lag) % depth).expand(1, *x.shape)
        y = torch.gather(buf, 0, index)[0]
        y = torch.where((t - lag) >= 0, y, torch.zeros_like(y))
        self.state["t"] = t + 1
        return y


def tensor(value: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(value, dtype=np.float32))


def ints(value: Any, n: int) -> tuple[int, ...]:
    """A kernel size, stride, padding or dilation as ``n`` ints (a scalar is broadcast)."""
    given = np.atleast_1d(np.asarray(value, dtype=np.float64)).reshape(-1)
    if not np.all(given == np.round(given)):
        raise ValueError(f"kernel sizes, strides, paddings and dilations must be whole numbers, got {given.tolist()[:4]}")
    flat = [int(v) for v in given]
    return tuple(flat * n if len(flat) == 1 else flat)


def mask(x: torch.Tensor) -> torch.Tensor:
    return (x != 0).to(torch.float32)


def per_sample(y: torch.Tensor) -> torch.Tensor:
    return y.reshape(y.shape[0], -1).sum(1)


def affine(node: Any, bias: bool) -> Synapse:
    w = tensor(node.weight)
    b = tensor(node.bias) if bias else None
    nz = mask(w)
    return Synapse("Affine" if bias else "Linear", lambda x: F.linear(x, w, b),
                   lambda m: F.linear(m, nz))


def scale(node: Any) -> Synapse:
    s = tensor(node.scale)
    return Synapse("Scale", lambda x: x * s, lambda m: m * mask(s))


def conv(node: Any, dims: int) -> Synapse:
    w = tensor(node.weight)
    b = tensor(node.bias) if getattr(node, "bias", None) is not None else None
    padding = node.padding if isinstance(node.padding, str) else ints(node.padding, dims)
    stride, dilation, groups = ints(node.stride, dims), ints(node.dilation, dims), int(np.asarray(node.groups))
    op = F.conv1d if dims == 1 else F.conv2d
    nz = mask(w)
    return Synapse(f"Conv{dims}d", lambda x: op(x, w, b, stride, padding, dilation, groups),
                   lambda m: op(m, nz, None, stride, padding, dilation, groups))


def pool(node: Any, average: bool) -> Synapse:
    k, s, p = ints(node.kernel_size, 2), ints(node.stride, 2), ints(node.padding, 2)
    window = float(np.prod(k))
    if average:
        apply: Fn = lambda x: F.avg_pool2d(x, k, s, p)  # noqa: E731
    else:
        apply = lambda x: F.avg_pool2d(x, k, s, p, divisor_override=1)  # noqa: E731
    return Synapse("AvgPool2d" if average else "SumPool2d", apply, lambda m: F.avg_pool2d(m, k, s, p) * window)


def flatten(node: Any) -> Synapse:
    start, end = int(np.asarray(node.start_dim)), int(np.asarray(node.end_dim))
    return Synapse("Flatten", lambda x: x.flatten(start + 1 if start >= 0 else start, end + 1 if end >= 0 else end))


def threshold(node: Any) -> Synapse:
    theta = tensor(node.threshold)
    return Synapse("Threshold", lambda x: (x > theta).to(torch.float32))


def delay(node: Any, dt: float, name: str) -> Synapse:
    steps = np.asarray(node.delay, dtype=np.float64) / dt
    whole = np.round(steps)
    if np.any(whole < 0) or np.any(np.abs(steps - whole) > STEP_RTOL * np.maximum(1.0, np.abs(steps))):
        raise LorspError(f"Delay node {name!r}: delay / dt = {steps.reshape(-1)[:4].tolist()} is not a whole, "
                         f"non-negative number of steps of dt = {dt:g} s (pass --dt)")
    return Synapse("Delay", lambda x: x, delay_steps=whole.astype(np.int64))


def passthrough(kind: str) -> Synapse:
    return Synapse(kind, lambda x: x)


def fan_out(synapse: Synapse, in_shape: tuple[int, ...]) -> torch.Tensor:
    """Synaptic pairs each input element takes part in when nonzero, ``in_shape`` (the gradient of ``pairs``)."""
    m = torch.ones((1, *in_shape), requires_grad=True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(synapse.pairs(m).sum(), m)
    return grad[0].round().to(torch.float64)


def build_synapse(name: str, node: Any, dt: float) -> Synapse:
    """The :class:`Synapse` of a stateless NIR node (every type but the neurons)."""
    kind = type(node).__name__
    builders: dict[str, Callable[[], Synapse]] = {
        "Input": lambda: passthrough("Input"), "Output": lambda: passthrough("Output"),
        "Affine": lambda: affine(node, True), "Linear": lambda: affine(node, False),
        "Scale": lambda: scale(node), "Conv1d": lambda: conv(node, 1), "Conv2d": lambda: conv(node, 2),
        "SumPool2d": lambda: pool(node, False), "AvgPool2d": lambda: pool(node, True),
        "Flatten": lambda: flatten(node), "Threshold": lambda: threshold(node),
        "Delay": lambda: delay(node, dt, name),
    }
    if kind not in builders:
        raise LorspError(f"NIR node {name!r} is a {kind}, not a synapse or stateless node")
    return builders[kind]()
