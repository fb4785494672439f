"""``lorsp-hwsim MODEL.nir --backend lava``: Lava itself runs the graph, and the report compares it node by node.

The graph interpreter still makes the report (counts, energy, chip fit). Lava (lava-nc 0.10.0) then
runs the same input:

* **float**, any graph :func:`hw_sim.graph.lava_plan.lava_net` expresses (branches, merges, skips,
  recurrence, ``Delay``, pools and convolutions multiplied out, every neuron node, ``Threshold``,
  read-outs): :mod:`hw_sim.backends.lava_graph`, Lava's ``floating_pt`` models (float64), against the
  graph interpreter (PyTorch float32), per compartment node: the share of equal spikes, or for a
  read-out the share of voltages within :data:`VOLTAGE_RTOL` and the largest difference;
* **fixed**, on the path the fast backend's fixed mode takes (:func:`hw_sim.graph.fixed.fixed_run`): where the
  graph is a chain lorsp's chain path expresses (:func:`hw_sim.graph.fixed.chain_network`), the bundle path's
  Lava backend in ``fixed_pt`` against the fast backend's chain arithmetic; elsewhere (branches, merges,
  recurrence, convolutions, a per-neuron ``v_leak``) the general path's integer twin
  (:func:`hw_sim.graph.fixed_graph.compile_fixed`) as Lava's bit-accurate processes
  (:func:`hw_sim.graph.lava_fixed_plan.lava_fixed_net`) against the fast backend running that twin: the
  spikes must be equal on every step, neuron and sample. Where Lava's fixed point cannot hold the graph the
  block says why.

A graph Lava cannot express in float is refused in one line before any work (:func:`check_lava`); with
``--mode fixed``, so is one it cannot run in fixed point (:func:`check_lava_fixed`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from hw_sim.backends import get_backend
from hw_sim.backends.base import is_binary
from hw_sim.backends.lava_net import LavaNet
from hw_sim.graph.fixed import chain_network, compare, compare_voltages
from hw_sim.graph.fixed_graph import compile_fixed
from hw_sim.graph.lava_fixed_plan import dequantised, lava_fixed_net
from hw_sim.graph.lava_plan import lava_net
from hw_sim.graph.runner import CompiledGraph, run_graph
from lorsp.plumbing.errors import LorspError

AGAINST = {"float": "the graph interpreter (PyTorch float32)",
           "fixed": "the fast backend's bit-accurate Loihi arithmetic (the chain path)",
           "fixed-general": "the fast backend's fixed mode (the general path's integer twin, hw_sim.graph.fixed_graph)"}
VOLTAGE_RTOL = 1e-5
"""A read-out's Lava voltage (float64) agrees with the interpreter's (float32) within this relative distance
(at least this much absolute): float32's rounding, some 6e-8 per operation, over a run's sums."""


_LAST: list[tuple[CompiledGraph, bool, LavaNet]] = []
"""The last :class:`LavaNet` built, so the command's check before any work and its run build it once."""
_LAST_FIXED: list[tuple[CompiledGraph, "FixedPlan"]] = []
"""The last fixed plan, likewise."""


def check_lava(compiled: CompiledGraph, x: np.ndarray) -> LavaNet:
    """Lava loads and expresses ``compiled`` in float: its :class:`LavaNet`, or a one-line LorspError."""
    get_backend("lava")  # refused in one line where Lava cannot load
    graded = not is_binary(x)
    if _LAST and _LAST[0][0] is compiled and _LAST[0][1] == graded:
        return _LAST[0][2]
    net = lava_net(compiled, graded_input=graded)
    _LAST[:] = [(compiled, graded, net)]
    return net


@dataclass(frozen=True)
class FixedPlan:
    """How Lava runs ``compiled`` in fixed point: the chain ``network``, or the integer twin ``fixed`` and its ``net``."""

    network: object | None = None
    fixed: CompiledGraph | None = None
    net: LavaNet | None = None


def check_lava_fixed(compiled: CompiledGraph, x: np.ndarray) -> FixedPlan:
    """Lava can run ``compiled`` in fixed point on the path the fast backend takes: its plan, or a one-line
    LorspError naming what is missing (both paths' reasons where neither holds it)."""
    if _LAST_FIXED and _LAST_FIXED[0][0] is compiled:
        return _LAST_FIXED[0][1]
    try:
        plan = FixedPlan(network=chain_network(compiled, x))
    except LorspError as chain_reason:
        try:
            if not is_binary(x):
                raise LorspError("the input is not binary spikes, and Loihi takes spikes only") from None
            fixed = compile_fixed(compiled)
            plan = FixedPlan(fixed=fixed, net=lava_fixed_net(fixed))
        except LorspError as graph_reason:
            raise LorspError(f"--backend lava --mode fixed: chain path: {chain_reason}; general path: "
                             f"{graph_reason}") from None
    _LAST_FIXED[:] = [(compiled, plan)]
    return plan


def lava_runs(compiled: CompiledGraph, x: np.ndarray, modes: Sequence[str], timeout: float) -> dict:
    """The report's ``lava`` block: per mode, Lava's agreement per compartment node and its wall time."""
    out = {"float": float_run(compiled, check_lava(compiled, x), x, timeout)}
    if "fixed" in modes:
        out["fixed"] = fixed_run(compiled, x, timeout)
    return out


def float_run(compiled: CompiledGraph, net: LavaNet, x: np.ndarray, timeout: float) -> dict:
    """Lava's float run of ``net`` against the graph interpreter, per compartment node."""
    rows, lava = lava_against_graph(compiled, net, x, timeout, voltage_row)
    return {"ran": True, "against": AGAINST["float"], "per_node": rows, "seconds": lava.seconds,
            "samples_per_s": lava.samples_per_s, "lava": lava.details}


def lava_against_graph(graph: CompiledGraph, net: LavaNet, x: np.ndarray, timeout: float,
                       readout_row: Callable[[str, np.ndarray, np.ndarray], dict]) -> tuple[list[dict], Any]:
    """Run ``net`` in Lava and ``graph`` (what it was made from) on the interpreter, on ``x``; per recorded compartment
    node, the spike comparison, or ``readout_row(name, Lava's voltage, the interpreter's)`` for a read-out; and
    Lava's run."""
    from hw_sim.backends.lava_graph import run_lava_net  # imports Lava (loaded by check_lava)
    lava = run_lava_net(net, x, timeout=timeout)
    nodes = [n for n in net.neurons if n.recorded]
    reference = run_graph(graph, x, record=[n.name for n in nodes], timeout=timeout)
    rows = []
    for n in nodes:
        ours, theirs = lava.outputs[n.name], reference.outputs[n.name].reshape(lava.outputs[n.name].shape)
        rows.append(readout_row(n.name, ours, theirs) if n.readout else compare([n.name], [ours], [theirs])[0])
    return rows, lava


def voltage_row(name: str, ours: np.ndarray, theirs: np.ndarray) -> dict:
    """A read-out's agreement: the share of voltages within :data:`VOLTAGE_RTOL`, exact equality, largest gap."""
    gap = np.abs(ours - theirs.astype(np.float64))
    close = gap <= VOLTAGE_RTOL * np.maximum(1.0, np.abs(ours))
    return {"node": name, "kind": "voltage", "agreement": float(close.mean()), "exact": bool((gap == 0).all()),
            "max_abs_difference": float(gap.max()) if gap.size else 0.0}


def fixed_run(compiled: CompiledGraph, x: np.ndarray, timeout: float) -> dict:
    """Lava's ``fixed_pt`` run against the fast backend's fixed mode on the same path (chain or general), or why it
    did not run."""
    try:
        plan = check_lava_fixed(compiled, x)
    except LorspError as exc:
        return {"ran": False, "reason": str(exc)}
    if plan.network is None:
        return general_fixed_run(plan.fixed, plan.net, x, timeout)
    network = plan.network
    T, N = x.shape[:2]
    spikes_in = x.reshape(T, N, -1).astype(np.uint8)
    lava = get_backend("lava")(network, spikes_in, mode="fixed", timeout=timeout)
    reference = get_backend("fast")(network, spikes_in, mode="fixed", timeout=timeout).layer_spikes
    return {"ran": True, "path": "chain", "against": AGAINST["fixed"],
            "per_node": compare([layer.name for layer in network.layers], lava.layer_spikes, reference),
            "seconds": lava.seconds, "samples_per_s": lava.images_per_s}


def general_fixed_run(fixed: CompiledGraph, net: LavaNet, x: np.ndarray, timeout: float) -> dict:
    """Lava's bit-accurate run of the integer twin ``fixed`` (as ``net``) against the fast backend running ``fixed``,
    per compartment node: spikes, or a read-out's dequantised voltage."""
    rows, lava = lava_against_graph(
        fixed, net, x, timeout,
        lambda name, ours, theirs: compare_voltages(name, dequantised(fixed[name].op, ours), theirs))
    return {"ran": True, "path": "general", "against": AGAINST["fixed-general"], "per_node": rows,
            "seconds": lava.seconds, "samples_per_s": lava.samples_per_s, "lava": lava.details}
