"""Rockpool 3.1.0's NIR export against its own simulation: the file holds another model than Rockpool runs.

Rockpool's ``to_nir`` (``rockpool/nn/modules/torch/nir.py``) writes ``LIFNeuronTorch`` as NIR's ``LIF``
and ``LIFTorch`` as ``CubaLIF`` with ``r = tau exp(-dt/tau) / dt``, ``v_leak = 0`` and no ``v_reset``
(NIR's 0). Rockpool's own step (``lif_neuron_torch.py``, ``lif_torch.py``) is
``i = exp(-dt/tau_syn) (i + x)``, ``v = exp(-dt/tau_mem) v + i + bias``, then ``floor(v / v_th)`` spikes
where ``v >= v_th`` (several in one step) and ``v -= spikes * v_th``. So no reading of the file gives
Rockpool's spikes: Euler's input gain ``r dt / tau`` is ``exp(-dt/tau)`` where Rockpool adds its input
with gain 1, the reset subtracts instead of setting ``v_reset``, one step can carry several spikes
(a NIR ``LIF`` emits 0 or 1), and the bias and the recurrent weights ``w_rec`` are not written at all.
These tests pin those facts (docs/hwsim-nir.md, "Which framework's discretisation"); lorsp adds no
Rockpool reading, which would have to ignore the file's ``r``.
"""
from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from deploy.nir_graph import flat_graph
from deploy.nir_reader import read_nir
from hw_sim.graph.neurons import CUBA_INPUTS
from hw_sim.graph.runner import compile_graph, run_graph

pytest.importorskip("rockpool.nn.modules.torch.nir", reason="Rockpool (a test dependency, pyproject's extra `test`) "
                                                            "is not installed")
from rockpool.nn.combinators import Sequential  # noqa: E402
from rockpool.nn.modules import LIFNeuronTorch, LIFTorch, LinearTorch  # noqa: E402
from rockpool.nn.modules.torch.nir import to_nir  # noqa: E402

DT = 1e-3  # Rockpool's default step, not written into the file
T, N = 30, 5


def network() -> Sequential:
    """LinearTorch -> LIFNeuronTorch (NIR LIF) -> LinearTorch -> LIFTorch (NIR CubaLIF), Rockpool's random init."""
    torch.manual_seed(0)
    return Sequential(LinearTorch((6, 12)), LIFNeuronTorch(12, tau_mem=0.01, dt=DT),
                      LinearTorch((12, 4)), LIFTorch(4, tau_mem=0.02, tau_syn=0.01, dt=DT))


def export(net, path) -> nir.NIRGraph:
    """Rockpool's own export, written and read back as ``lorsp-hwsim`` reads it."""
    nir.write(path, to_nir(net, torch.zeros(6)))
    return read_nir(path)


@torch.no_grad()
def rockpool_spikes(net: Sequential, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Rockpool's own evolution of ``x`` ``(T, N, 6)``: every neuron module's output ``(T, N, n)``."""
    _, _, record = net(x.transpose(0, 1), record=True)
    return {name: record[f"{name}_output"].transpose(0, 1).numpy() for name in ("1_LIFNeuronTorch", "3_LIFTorch")}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    net = network()
    graph = export(net, tmp_path_factory.mktemp("rockpool") / "net.nir")
    x = (torch.rand((T, N, 6), generator=torch.Generator().manual_seed(1)) < 0.4).float()
    return net, graph, x, rockpool_spikes(net, x)


def test_the_file_writes_euler_gain_exp_decay_and_no_reset_rule(exported):
    _, graph, _, _ = exported
    lif, cuba = graph.nodes["1_LIFNeuronTorch"], graph.nodes["3_LIFTorch"]
    assert (type(lif).__name__, type(cuba).__name__) == ("LIF", "CubaLIF")
    for node, tau in ((lif, lif.tau), (cuba, cuba.tau_mem)):
        # Euler's input gain r dt / tau is the decay exp(-dt/tau); Rockpool's own gain is 1
        np.testing.assert_allclose(np.asarray(node.r) * DT / tau, np.exp(-DT / np.asarray(tau)), rtol=1e-6)
        assert not np.any(node.v_reset) and not np.any(node.v_leak)
    np.testing.assert_array_equal(cuba.w_in, 1.0)


def test_rockpool_fires_several_spikes_a_step_and_no_reading_matches(exported):
    _, graph, x, reference = exported
    counts = np.concatenate([s.ravel() for s in reference.values()])
    assert counts.max() > 1  # a NIR LIF emits 0 or 1 per step
    flat = flat_graph(graph)
    for cuba_input in CUBA_INPUTS:
        run = run_graph(compile_graph(flat, DT, cuba_input=cuba_input), x.numpy(), record=list(reference))
        for name, spikes in reference.items():
            assert spikes.sum() > 0, name
            assert set(np.unique(run.outputs[name])) <= {0.0, 1.0}
            assert not np.array_equal(run.outputs[name], spikes), (cuba_input, name)


def test_the_export_leaves_out_bias_and_recurrent_weights(tmp_path):
    torch.manual_seed(2)
    net = Sequential(LinearTorch((6, 4)), LIFNeuronTorch(4, bias=0.25, dt=DT), LinearTorch((4, 3)),
                     LIFTorch(3, has_rec=True, dt=DT))
    assert float(net[3].w_rec.detach().abs().sum()) > 0
    graph = export(net, tmp_path / "rec.nir")
    assert not np.any(graph.nodes["1_LIFNeuronTorch"].v_leak)
    flat = flat_graph(graph)
    assert not any(node.recurrent for node in flat.nodes)
    assert sorted(type(n).__name__ for n in graph.nodes.values()) == ["CubaLIF", "Input", "LIF", "Linear", "Linear",
                                                                      "Output"]
