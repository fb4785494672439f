"""The spiking generator as NIR, checked rather than trusted.

``snntorch.export_nir.export_to_nir`` prints a warning and drops any module it does not
know (BatchNorm, Dropout, other neurons), and NIR keeps no reset mechanism. So every
export is checked three ways:

1. node by node (:func:`check_nodes`): each module of the generator has its node, of the
   matching type, with equal parameters (``beta`` from ``1 - dt/tau``), in the same chain;
2. spike by spike (:func:`check_round_trip`): the file read back (``nir.read``) and
   imported (``snntorch.import_nir.import_from_nir``), stepped ``T`` times on real input
   encodings, gives exactly the generator's spikes in every layer;
3. the chip's description (:func:`check_description`): :mod:`deploy.nir_reader` reads
   the same parameters, bit for bit.

Any difference is a :class:`~lorsp.plumbing.errors.LorspError`; nothing is written then.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import nir
import numpy as np
import snntorch as snn
import torch
from snntorch.export_nir import export_to_nir
from snntorch.import_nir import import_from_nir
from torch import nn

from deploy.host import generator_state
from deploy.network import SpikingNetwork
from deploy.nir_reader import SNNTORCH_DT
from lorsp.plumbing.errors import LorspError
from lorsp.prompts.lorsp import reset_state, run_generator

NODE_TYPES: dict[type, tuple[type, ...]] = {
    nn.Linear: (nir.Affine, nir.Linear), snn.Leaky: (nir.LIF,), snn.Synaptic: (nir.CubaLIF,),
    nn.Conv2d: (nir.Conv2d,), nn.AvgPool2d: (nir.AvgPool2d,), nn.Flatten: (nir.Flatten,)}


def export_generator(generator: nn.Sequential, input_size: int) -> nir.NIRGraph:
    """snnTorch's export of ``generator`` (batch dimension ignored), its printed warnings kept out of stdout."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), torch.no_grad():
            graph = export_to_nir(generator, torch.zeros(1, input_size), ignore_dims=[0])
    except Exception as exc:  # a module snnTorch does not know leaves a hole nirtorch trips over
        said = printed.getvalue().strip().splitlines()
        raise LorspError(f"snnTorch could not export the generator to NIR: "
                         f"{said[0] if said else f'{type(exc).__name__}: {exc}'}") from None
    finally:
        reset_state(generator)  # the export ran one step through the neurons
    graph.metadata = {**(graph.metadata or {}), "exporter_messages": printed.getvalue().strip()}
    return graph


def check_nodes(generator: nn.Sequential, graph: nir.NIRGraph) -> list[dict]:
    """One row per module: its node, the node's type and whether every parameter is equal."""
    children = list(generator.named_children())
    rows = []
    for name, module in children:
        node = graph.nodes.get(name)
        expected = next((v for k, v in NODE_TYPES.items() if isinstance(module, k)), None)
        if node is None:
            messages = (graph.metadata or {}).get("exporter_messages", "")
            raise LorspError(f"NIR export dropped module {name} ({type(module).__name__}) of the generator"
                             + (f": {messages.splitlines()[0]}" if messages else ""))
        if expected is None or not isinstance(node, expected):
            raise LorspError(f"module {name} ({type(module).__name__}) became a NIR {type(node).__name__}")
        mismatch = _parameter_mismatch(module, node)
        if mismatch:
            raise LorspError(f"NIR node {name} differs from module {name} ({type(module).__name__}): {mismatch}")
        rows.append({"module": name, "type": type(module).__name__, "node": type(node).__name__,
                     "parameters_equal": True})
    extra = sorted(set(graph.nodes) - {n for n, _ in children} - {"input", "output"})
    if extra:
        raise LorspError(f"NIR graph has nodes the generator lacks: {', '.join(extra)}")
    chain = ["input", *(n for n, _ in children), "output"]
    if sorted(map(tuple, graph.edges)) != sorted(zip(chain[:-1], chain[1:])):
        raise LorspError(f"NIR edges {sorted(map(tuple, graph.edges))} are not the chain {' -> '.join(chain)}")
    return rows


def _parameter_mismatch(module: nn.Module, node: nir.NIRNode) -> str:
    same = lambda a, b: np.array_equal(np.asarray(a), b.detach().cpu().numpy())  # noqa: E731
    if isinstance(module, nn.Linear):
        if not same(node.weight, module.weight):
            return "weight"
        if module.bias is not None and not (isinstance(node, nir.Affine) and same(node.bias, module.bias)):
            return "bias"
        return ""
    if isinstance(module, snn.Leaky):
        tau = np.asarray(node.tau, dtype=np.float64)
        beta = (1.0 - SNNTORCH_DT / tau).astype(np.float32)
        width = tau.shape
        if not same(beta, module.beta.expand(width)):
            return "beta (recovered as 1 - dt/tau)"
        if not same(node.v_threshold, module.threshold.expand(width)):
            return "threshold"
        if np.any(np.asarray(node.v_leak) != 0) or np.any(np.asarray(node.v_reset) != 0):
            return "v_leak or v_reset not zero"
        if not np.allclose(np.asarray(node.r) * SNNTORCH_DT / tau, 1.0, rtol=1e-6, atol=0):
            return "input gain r dt / tau is not 1"
        return ""
    return ""  # other modules: their type is checked, their parameters by the round trip


def check_round_trip(path: str | Path, generator: nn.Sequential, spikes_in: torch.Tensor) -> dict:
    """Read ``path`` back, import it into snnTorch, step it over ``spikes_in`` ``(T, N, D)``; spike agreement."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        imported = import_from_nir(nir.read(path))
    names = [n for n, m in generator.named_children() if isinstance(m, snn.Leaky)]
    recorded: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    hooks = []
    for name, module in imported.named_modules():
        if name in recorded:
            hooks.append(module.register_forward_hook(lambda m, i, o, n=name: recorded[n].append(o.detach())))
    if len(hooks) != len(names):
        raise LorspError(f"the imported NIR graph lacks neuron layers: found {len(hooks)} of {len(names)}")
    with torch.no_grad():
        reference = run_generator(generator, spikes_in)
        reset_state(imported)
        state = None
        for t in range(spikes_in.shape[0]):
            _, state = imported(spikes_in[t], state)
    for h in hooks:
        h.remove()
    layers = []
    for name, ref in zip(names, reference):
        got = torch.stack(recorded[name])
        equal = int((got == ref).sum())
        layers.append({"layer": name, "agreement": equal / ref.numel(), "neuron_steps": ref.numel()})
    agreement = sum(l["agreement"] * l["neuron_steps"] for l in layers) / sum(l["neuron_steps"] for l in layers)
    if agreement != 1.0:
        per_layer = ", ".join(f"{100 * l['agreement']:.3f}%" for l in layers)
        raise LorspError(f"NIR round trip changed spikes: {100 * agreement:.3f}% agree over "
                         f"{spikes_in.shape[1]} samples (per layer {per_layer})")
    return {"samples": int(spikes_in.shape[1]), "time_steps": int(spikes_in.shape[0]), "per_layer": layers,
            "agreement": agreement}


def check_description(generator: nn.Sequential, network: SpikingNetwork) -> dict:
    """hw_sim's description of the NIR file holds the generator's parameters bit for bit."""
    expected = generator.state_dict()
    for key, value in generator_state(network).items():
        ref = expected[key].detach().cpu()
        if not torch.equal(value, ref.expand_as(value).to(value.dtype)):
            raise LorspError(f"hw_sim reads {key} of the NIR file differently from the generator")
    return {"layers": len(network.layers), "parameters_equal": True}
