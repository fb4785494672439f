"""lorsp-hwsim's graph interpreter against Norse's own simulation, on graphs Norse 1.1.0 exported.

Norse's ``to_nir`` (``norse/torch/utils/export_nir.py``) writes ``tau = dt / tau_inv`` with
``dt = 1e-3``: ``dt`` times the real time constant (0.01 s becomes 1e-5). Norse's own step is
``v += dt tau_inv (...)``, so forward Euler on the file's ``tau`` reproduces it with a step of
``dt^2 = 1e-6`` (``--dt 1e-6``). Norse's ``LIFCell`` current jumps by its input (``i = i + x``),
not by ``dt / tau_syn`` of it: ``--synaptic-input jump``. With both, every spike matches, step by
step; with snnTorch's (``euler``) reading the CubaLIF differs (docs/hwsim-nir.md). Norse 1.1.0
exports none of its recurrent cells (the last test).
"""
from __future__ import annotations

import io

import nir
import numpy as np
import pytest
import torch

from deploy.nir_graph import flat_graph
from hw_sim.graph.runner import compile_graph, run_graph
from lorsp.plumbing.errors import LorspError

norse = pytest.importorskip("norse.torch")
from norse.torch.functional.iaf import IAFParameters  # noqa: E402
from norse.torch.functional.lif import LIFParameters  # noqa: E402
from norse.torch.module.lif_box import LIFBoxParameters  # noqa: E402
from norse.torch.utils.export_nir import to_nir  # noqa: E402

NORSE_DT = 1e-3
T, N = 30, 5


def full(n, v):
    return torch.full((n,), float(v))


def network() -> torch.nn.Module:
    """Linear -> LIFBoxCell (NIR LIF) -> Linear -> IAFCell (NIR IF) -> Linear -> LIFCell (NIR CubaLIF)."""
    torch.manual_seed(0)
    net = norse.SequentialState(
        torch.nn.Linear(6, 12),
        norse.LIFBoxCell(LIFBoxParameters(tau_mem_inv=full(12, 100), v_th=full(12, 1), v_leak=full(12, 0),
                                          v_reset=full(12, 0))),
        torch.nn.Linear(12, 8),
        norse.IAFCell(IAFParameters(v_th=full(8, 1), v_reset=full(8, 0))),
        torch.nn.Linear(8, 4),
        norse.LIFCell(LIFParameters(tau_syn_inv=full(4, 200), tau_mem_inv=full(4, 100), v_leak=full(4, 0),
                                    v_th=full(4, 1), v_reset=full(4, 0))))
    with torch.no_grad():
        net[0].weight.mul_(30)
        net[2].weight.mul_(3)
        net[4].weight.mul_(40)
    return net


@torch.no_grad()
def norse_spikes(net, x) -> dict[str, np.ndarray]:
    states, out = [None, None, None], {"1": [], "3": [], "5": []}
    for t in range(x.shape[0]):
        h = x[t]
        for k, cell in enumerate((1, 3, 5)):
            h, states[k] = net[cell](net[cell - 1](h), states[k])
            out[str(cell)].append(h)
    return {k: torch.stack(v).numpy() for k, v in out.items()}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    net = network()
    path = tmp_path_factory.mktemp("norse") / "net.nir"
    nir.write(path, to_nir(net, torch.zeros(6), dt=NORSE_DT))
    x = (torch.rand((T, N, 6), generator=torch.Generator().manual_seed(1)) < 0.4).float()
    return flat_graph(nir.read(path)), x, norse_spikes(net, x)


def test_norse_lif_iaf_and_lifcell_match_norse_step_by_step(exported):
    graph, x, reference = exported
    assert [graph.node(n).kind for n in ("1", "3", "5")] == ["LIF", "IF", "CubaLIF"]
    run = run_graph(compile_graph(graph, NORSE_DT ** 2, cuba_input="jump"), x.numpy(), record=list(reference))
    for name, spikes in reference.items():
        assert spikes.sum() > 0, name
        assert np.array_equal(run.outputs[name], spikes), name


def test_the_other_readings_differ_from_norse(exported):
    graph, x, reference = exported
    euler = run_graph(compile_graph(graph, NORSE_DT ** 2, cuba_input="euler"), x.numpy(), record=["5"])
    assert not np.array_equal(euler.outputs["5"], reference["5"])
    nominal = run_graph(compile_graph(graph, NORSE_DT, cuba_input="jump"), x.numpy(), record=["1"])
    assert not np.array_equal(nominal.outputs["1"], reference["1"])


@pytest.mark.parametrize("cell", ["LIFRecurrentCell", "LIFExRecurrentCell", "LIFAdExRecurrentCell",
                                  "LIFRefracRecurrentCell", "LSNNRecurrentCell"])
def test_norse_1_1_exports_a_recurrent_cell_as_no_node(cell):
    """Norse 1.1.0's ``to_nir`` maps ``Conv2d``, ``Linear``, ``LIFCell``, ``LIFBoxCell``, ``LIBoxCell`` and
    ``IAFCell`` only: a recurrent cell (and its recurrent weights) becomes a node that is ``None``, which
    ``nir.write`` cannot write and lorsp refuses by name. So no recurrent Norse graph can be compared."""
    torch.manual_seed(0)
    net = norse.SequentialState(torch.nn.Linear(6, 6), getattr(norse, cell)(6, 8))
    graph = to_nir(net, torch.zeros(6), dt=NORSE_DT)
    assert graph.nodes["1"] is None and isinstance(graph.nodes["0"], nir.Affine)
    assert ("0", "1") in graph.edges and ("1", "output") in graph.edges
    with pytest.raises(AttributeError, match="NoneType"):
        nir.write(io.BytesIO(), graph)
    with pytest.raises(LorspError, match="node '1' is a NoneType, which hw_sim cannot run"):
        flat_graph(graph)
