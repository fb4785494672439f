r"""The neuron nodes of NIR 1.0.x, discretised in steps of ``dt``, in PyTorch float32.

NIR gives ODEs; this module runs them with forward Euler, as snnTorch does (and as its
export assumes: ``tau = dt / (1 - beta)``, ``r = tau / dt``, ``w_in = tau_syn / dt``). With

.. math::

    \beta = 1 - \frac{dt}{\tau_{mem}}, \quad g = \frac{r\, dt}{\tau_{mem}}, \quad
    \ell = \frac{dt}{\tau_{mem}}\, v_{leak}, \quad
    \alpha = 1 - \frac{dt}{\tau_{syn}}, \quad g_{syn} = \frac{w_{in}\, dt}{\tau_{syn}}

one step with inputs ``x_1, ..., x_k`` (same-step inputs in edge order, then recurrent ones) is

=============  ===================================================================================
``LIF``        ``v = beta v + l + g x_1 + ... + g x_k``; ``s = [v > v_th]``; ``v = v_reset`` where ``s``
``LI``         ``v = beta v + l + g x_1 + ... + g x_k``; output ``v``
``CubaLIF``    ``i = alpha i + g_syn x_1 + ...`` (``g_syn``: :data:`CUBA_INPUTS`); ``v = beta v + l + g i``; spike and reset as ``LIF``
``CubaLI``     ``i = alpha i + g_syn x_1 + ...``; ``v = beta v + l + g i``; output ``v``
``IF``         ``v = v + r x_1 + ... + r x_k`` (``r``: :data:`IF_INPUTS`); spike and reset as ``LIF``
``I``          ``v = v + r x_1 + ... + r x_k``; output ``v``
=============  ===================================================================================

left to right, so a snnTorch graph is computed in snnTorch's own order: ``Leaky``
``beta * mem + input``, ``RLeaky`` ``beta * mem + input + recurrent(spk)``, ``Synaptic``
``syn = alpha * syn + input; mem = beta * mem + syn``. The voltage takes this step's current
(snnTorch, Lava; NIR's own numpy CubaLIF reference takes the last step's). A gain within
:data:`GAIN_RTOL` of 1 (every snnTorch export) and a zero leak are skipped, not multiplied or
added, so nothing rounds that snnTorch does not round. ``IF`` and ``I`` integrate one input
per step, ``r x`` without ``dt`` by default (``jump``: Norse's and Sinabs' ``IAF`` convention; with
Euler's ``dt r x`` an IF of ``r = 1`` at ``dt = 1e-4`` would need 10,000 spikes to fire once), or
``dt r x`` (``euler``: NIR's ODE, SpikingJelly, whose export writes ``r = 1 / dt``). ``v > v_th`` is strict
(NIR, snnTorch's ``mem - threshold > 0``). The reset is NIR's: to ``v_reset``, in the step of
the spike (snnTorch ``reset_mechanism="zero", reset_delay=False``; snnTorch's default
reset by subtraction is not in the file and is not what NIR says).

Parameters are per neuron or broadcast (NumPy rules) to the node's shape, the shape of its input.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from lorsp.plumbing.errors import LorspError

GAIN_RTOL = 1e-6
"""A gain this close to 1 is 1: snnTorch's export stores ``r = tau / dt`` rounded to float32."""
SPIKING = ("IF", "LIF", "CubaLIF")
SYNAPTIC = ("CubaLI", "CubaLIF")
LEAKY = ("LI", "LIF", "CubaLI", "CubaLIF")
CUBA_INPUTS = ("euler", "jump")
"""How a synaptic current takes its input: ``euler``, ``g_syn = w_in dt / tau_syn`` (NIR's ODE, snnTorch:
its export sets ``w_in = tau_syn / dt``, so ``g_syn = 1``); ``jump``, ``g_syn = w_in`` (Norse: every input
is a jump of the current, ``i = i + x``)."""
IF_INPUTS = ("jump", "euler")
"""How an ``IF``/``I`` voltage takes its input: ``jump``, ``v += r x`` (Norse's and Sinabs' ``IAF``: one step
integrates one input, without ``dt``); ``euler``, ``v += r dt x`` (NIR's ODE ``dv/dt = r x`` by forward Euler,
SpikingJelly: its export writes ``r = 1 / dt`` for its ``IFNode``'s ``v += x``)."""


def _param(node: Any, key: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    value = np.asarray(getattr(node, key), dtype=np.float64)
    try:
        return np.broadcast_to(value, shape).copy()
    except ValueError:
        raise LorspError(f"{type(node).__name__} node {name!r}: {key} has shape {value.shape}, which does not "
                         f"broadcast to the node's input shape {shape}") from None


def _factor(value: np.ndarray) -> torch.Tensor | None:
    """A gain as a float32 tensor, or None where it is 1 everywhere (within :data:`GAIN_RTOL`)."""
    if np.all(np.abs(value - 1.0) <= GAIN_RTOL):
        return None
    return torch.as_tensor(value, dtype=torch.float32)


def _optional(value: np.ndarray) -> torch.Tensor | None:
    return None if not np.any(value) else torch.as_tensor(value, dtype=torch.float32)


@dataclass
class Neuron:
    """One neuron node's constants; its state lives in a dict per run (:meth:`initial_state`)."""

    kind: str
    shape: tuple[int, ...]
    beta: torch.Tensor | None = None
    gain: torch.Tensor | None = None
    leak: torch.Tensor | None = None
    alpha: torch.Tensor | None = None
    syn_gain: torch.Tensor | None = None
    threshold: torch.Tensor | None = None
    reset: torch.Tensor | None = None

    @property
    def spiking(self) -> bool:
        return self.kind in SPIKING

    def initial_state(self, n: int) -> dict[str, torch.Tensor]:
        state = {"v": torch.zeros((n, *self.shape))}
        if self.kind in SYNAPTIC:
            state["i"] = torch.zeros((n, *self.shape))
        return state

    def step(self, inputs: Sequence[torch.Tensor], state: dict[str, torch.Tensor]) -> torch.Tensor:
        """One step in place on ``state``; the spikes (0/1 float32) or, for a read-out, the voltage.

        The same float32 operations in the same order as the table (``beta v`` is ``v beta``), in place on the
        state's own tensors (the current, a spiking neuron's voltage: nothing else holds them) and, for a
        read-out's voltage, which the caller keeps as its output, in the step's own new tensor. The spikes
        are ``[v > v_th]`` compared into a float32 tensor (a comparison into bool costs several times as much).
        A spike resets a voltage by ``v [v <= v_th]``, which is ``v (1 - s)`` (to ``+-0``, equal to 0; PyTorch's
        ``masked_fill`` costs several times as much; an infinite voltage, which only infinite input gives,
        becomes NaN), or to ``v_reset`` by ``where``."""
        if self.kind in SYNAPTIC:
            i = state["i"] if self.alpha is None else state["i"].mul_(self.alpha)
            i = state["i"] = _plus(i, True, [x if self.syn_gain is None else self.syn_gain * x for x in inputs])
            drive: Sequence[torch.Tensor] = (i,)
        else:
            drive = inputs
        v = state["v"]
        if self.beta is not None:
            v = v.mul_(self.beta) if self.spiking else self.beta * v
        terms = ([self.leak] if self.leak is not None else []) + [x if self.gain is None else self.gain * x
                                                                   for x in drive]
        v = state["v"] = _plus(v, self.spiking or self.beta is not None, terms)
        if not self.spiking:
            return v
        spikes = torch.gt(v, self.threshold, out=torch.empty_like(v))
        if self.reset is not None:
            state["v"] = torch.where(spikes.bool(), self.reset, v)
        else:
            v.mul_(torch.le(v, self.threshold, out=torch.empty_like(v)))
        return spikes

    def steps(self, x: torch.Tensor, state: dict) -> torch.Tensor:
        """:meth:`step` on each of the ``T`` steps of ``x`` ``(T, n, *shape)``, one input per step; the outputs
        ``(T, n, *out_shape)``."""
        return torch.stack([self.step([xt], state) for xt in x.unbind(0)])


def _plus(total: torch.Tensor, fresh: bool, terms: Sequence[torch.Tensor]) -> torch.Tensor:
    """``total + terms[0] + terms[1] + ...`` left to right, in place once the sum is a tensor of this step's
    (``fresh``: ``total`` already is)."""
    for term in terms:
        if fresh and (term.shape == total.shape or torch.broadcast_shapes(term.shape, total.shape) == total.shape):
            total.add_(term)
        else:
            total = total + term
            fresh = True
    return total


def build_neuron(name: str, node: Any, shape: tuple[int, ...], dt: float, cuba_input: str = "euler",
                 if_input: str = "jump") -> Neuron:
    """The :class:`Neuron` of NIR node ``node`` of input shape ``shape``, discretised with ``dt``.

    ``cuba_input`` (:data:`CUBA_INPUTS`) is how a ``CubaLI``/``CubaLIF`` current takes its input,
    ``if_input`` (:data:`IF_INPUTS`) how an ``IF``/``I`` voltage does.
    """
    kind = type(node).__name__
    p = lambda key: _param(node, key, shape, name)  # noqa: E731
    out = Neuron(kind, shape)
    if kind in ("I", "IF"):
        if if_input not in IF_INPUTS:
            raise LorspError(f"unknown IF input reading {if_input!r}; choose one of: {', '.join(IF_INPUTS)}")
        out.gain = _factor(p("r") * dt if if_input == "euler" else p("r"))
    else:
        tau = p("tau_mem" if kind in SYNAPTIC else "tau")
        if not np.all(tau > 0):
            raise LorspError(f"{kind} node {name!r}: every time constant must be positive")
        out.beta = torch.as_tensor(1.0 - dt / tau, dtype=torch.float32)
        out.gain = _factor(p("r") * dt / tau)
        out.leak = _optional(p("v_leak") * dt / tau)
    if kind in SYNAPTIC:
        tau_syn = p("tau_syn")
        if not np.all(tau_syn > 0):
            raise LorspError(f"{kind} node {name!r}: every tau_syn must be positive")
        out.alpha = torch.as_tensor(1.0 - dt / tau_syn, dtype=torch.float32)
        if cuba_input not in CUBA_INPUTS:
            raise LorspError(f"unknown synaptic input reading {cuba_input!r}; choose one of: {', '.join(CUBA_INPUTS)}")
        out.syn_gain = _factor(p("w_in") * dt / tau_syn if cuba_input == "euler" else p("w_in"))
    if kind in SPIKING:
        out.threshold = torch.as_tensor(p("v_threshold"), dtype=torch.float32)
        reset = getattr(node, "v_reset", None)
        out.reset = None if reset is None else _optional(p("v_reset"))
    return out
