"""hw_sim: NIR import and its refusals, Lava float == PyTorch, fixed point, energy, reports, CLI errors."""
from __future__ import annotations

import json
import os
import shutil
import signal
from dataclasses import replace
from pathlib import Path

import nir
import numpy as np
import pytest
import snntorch as snn
import torch
from torch import nn

from deploy.manifest import write_manifest
from hw_sim import energy
from hw_sim.backends import get_backend, list_backends
from deploy.bundle import MANIFEST_FILE, NIR_FILE, open_bundle
from deploy.fixed_point import quantise
from deploy.host import rebuild_model
from deploy.network import Layer, SpikingNetwork
from deploy.nir_reader import load_network, network_from_nir
from lorsp.data import load_split_images
from lorsp.plumbing.errors import LorspError
from lorsp.metrics import spiking_layer_stats
from lorsp.prompts.lorsp import leaky_layer, run_generator
from tests.conftest import assert_one_line_error, run_cli
from tests.test_export_loihi import shared_bundle


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    return shared_bundle(tmp_path_factory)


def lif(n: int, threshold: float = 1.0, beta: float = 0.9) -> nir.LIF:
    tau = np.full(n, 1e-4 / (1 - beta), np.float32)
    return nir.LIF(tau=tau, r=tau / 1e-4, v_leak=np.zeros(n, np.float32),
                   v_threshold=np.full(n, threshold, np.float32), v_reset=np.zeros(n, np.float32))


def chain(*named: tuple[str, nir.NIRNode], d: int = 8, type_check: bool = True) -> nir.NIRGraph:
    names = ["input", *(n for n, _ in named), "output"]
    last = named[-1][1]
    width = np.asarray(last.output_type["output"]) if getattr(last, "output_type", None) else np.array([d])
    nodes = {"input": nir.Input(input_type=np.array([d])), **dict(named), "output": nir.Output(output_type=width)}
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:])), type_check=type_check)


def affine(n_out: int, n_in: int, seed: int = 0) -> nir.Affine:
    rng = np.random.default_rng(seed)
    return nir.Affine(weight=rng.normal(size=(n_out, n_in)).astype(np.float32),
                      bias=rng.normal(scale=0.1, size=n_out).astype(np.float32))


# --------------------------------------------------------------------------- importer
@pytest.mark.parametrize("node,kind", [
    (nir.Threshold(threshold=np.ones(4, np.float32)), "Threshold"),
    (nir.Delay(delay=np.ones(4, np.float32)), "Delay"),
    (nir.IF(r=np.ones(4, np.float32), v_threshold=np.ones(4, np.float32), v_reset=np.zeros(4, np.float32)), "IF"),
])
def test_importer_refuses_unsupported_nodes_by_name(tmp_path, node, kind):
    path = tmp_path / "g.nir"
    nir.write(path, chain(("a", affine(4, 8)), ("x", node)))
    with pytest.raises(LorspError, match=f"node 'x' is a {kind}, which hw_sim cannot map") as info:
        load_network(path)
    assert "\n" not in str(info.value)


def test_importer_refuses_inconsistent_shapes_and_bad_files(tmp_path):
    bad = chain(("a", affine(4, 8)), ("l", lif(5)), type_check=False)
    nir.write(tmp_path / "shapes.nir", bad)
    with pytest.raises(LorspError, match="inconsistent shapes"):
        load_network(tmp_path / "shapes.nir")
    with pytest.raises(LorspError, match="not found"):
        load_network(tmp_path / "missing.nir")
    (tmp_path / "junk.nir").write_text("junk")
    with pytest.raises(LorspError, match="not a readable NIR graph"):
        load_network(tmp_path / "junk.nir")
    good = (tmp_path / "shapes.nir").read_bytes()
    (tmp_path / "cut.nir").write_bytes(good[: len(good) // 2])
    with pytest.raises(LorspError, match="not a readable NIR graph"):
        load_network(tmp_path / "cut.nir")


def test_importer_refuses_branches_and_trailing_linear_nodes():
    nodes = {"input": nir.Input(input_type=np.array([8])), "a": affine(4, 8), "b": affine(4, 8, 1), "l": lif(4),
             "output": nir.Output(output_type=np.array([4]))}
    branched = nir.NIRGraph(nodes=nodes, edges=[("input", "a"), ("input", "b"), ("a", "l"), ("b", "l"),
                                                ("l", "output")], type_check=False)
    with pytest.raises(LorspError, match="feed-forward chains only"):
        network_from_nir(branched)
    with pytest.raises(LorspError, match="ends in linear node"):
        network_from_nir(chain(("a", affine(4, 8)), ("l", lif(4)), ("b", affine(3, 4))))


def test_importer_maps_conv_pool_flatten_to_dense_matrices():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), leaky_layer(3 * 6 * 6, 0.9, 1.0), nn.AvgPool2d(2),
                        nn.Flatten(), nn.Linear(27, 5), leaky_layer(5, 0.8, 0.5))
    net[1] = snn.Leaky(beta=torch.full((3, 6, 6), 0.9), threshold=torch.full((3, 6, 6), 1.0), init_hidden=True,
                       reset_mechanism="zero", reset_delay=False)
    from snntorch.export_nir import export_to_nir
    graph = export_to_nir(net, torch.zeros(1, 2, 6, 6), ignore_dims=[0])
    network = network_from_nir(graph)
    assert network.input_size == 72 and network.sizes == [108, 5]
    x = (torch.rand(4, 2, 6, 6) > 0.5).float()
    conv = net[0](x).flatten(1)
    np.testing.assert_allclose(x.flatten(1).numpy() @ network.layers[0].weight.T + network.layers[0].bias,
                               conv.detach().numpy(), rtol=1e-5, atol=1e-5)
    s = (torch.rand(4, 3, 6, 6) > 0.5).float()
    second = net[4](net[3](net[2](s)))
    np.testing.assert_allclose(s.flatten(1).numpy() @ network.layers[1].weight.T + network.layers[1].bias,
                               second.detach().numpy(), rtol=1e-5, atol=1e-5)
    assert np.allclose(network.layers[1].beta, 0.8) and np.allclose(network.layers[1].threshold, 0.5)


# --------------------------------------------------------------------------- fixed point and energy
def test_fixed_point_follows_loihi_registers():
    rng = np.random.default_rng(0)
    layer = Layer("l", rng.normal(size=(6, 10)).astype(np.float32), rng.normal(scale=0.2, size=6).astype(np.float32),
                  np.full(6, 0.9, np.float32), np.full(6, 1.5, np.float32), np.zeros(6, np.float32))
    fx = quantise(SpikingNetwork(10, (layer,)))[0]
    assert fx.sign_mode == "mixed" and np.all(fx.weight % 2 == 0) and np.abs(fx.weight).max() <= 254
    assert fx.vth[0] == fx.scale * 1.5 and float(fx.vth[0]).is_integer()  # the threshold is exact
    assert fx.dv[0] == 410 and fx.du[0] == 4095 and fx.bias_exp == 6
    assert np.abs(fx.weight / fx.scale - layer.weight).max() <= 1.0 / fx.scale + 1e-9
    excitatory = Layer("e", np.abs(layer.weight), layer.bias, layer.beta, layer.threshold, layer.alpha)
    fx_e = quantise(SpikingNetwork(10, (excitatory,)))[0]
    assert fx_e.sign_mode == "excitatory" and fx_e.weight.max() <= 255 and fx_e.weight.min() >= 0


DAVIES_2018_TABLE_2 = {  # pJ. M. Davies et al., "Loihi: A Neuromorphic Manycore Processor with On-Chip
    # Learning", IEEE Micro 38(1), 2018, Table 2 (pre-silicon figures, 14 nm)
    "synaptic spike op (min)": 23.6, "synaptic update (per synapse)": 120.0,
    "neuron update, active": 81.0, "neuron update, inactive": 52.0, "within-tile spike energy": 1.7,
}
SANA_FE_LOIHI_YAML = {  # pJ (the file gives joules, e.g. 51.2e-12). github.com/SLAM-Lab/SANA-FE arch/loihi.yaml at
    # commit 8951ab0711676a773261284d2e8c9d995156cb3d (the SANA-FE of Boyle et al., IEEE TCAD 2025): soma
    # loihi_lif, synapse loihi_dense_synapse, axon_out loihi_out. axon_out was 76.8 pJ before commit 95a76c0
    # ("Update energy and latency costs", January 2024).
    "energy_access_neuron": 51.2, "energy_update_neuron": 21.6, "energy_spike_out": 69.3,
    "energy_process_spike": 35.5, "energy_message_out": 111.0,
}
HOROWITZ_2014_FIG_1_1_9 = {  # pJ. M. Horowitz, "Computing's energy problem (and what we can do about it)",
    # ISSCC 2014, pp. 10-14, Figure 1.1.9 (rough energy costs per operation, 45 nm, 0.9 V)
    "8b add": 0.03, "8b mult": 0.2, "16b FP add": 0.4, "16b FP mult": 1.1, "32b FP add": 0.9, "32b FP mult": 3.7,
}


def test_energy_tables_hold_the_published_figures():
    """Every pJ figure of every table, against the publication (above) or derived from it as written here."""
    assert energy.get_table("loihi-davies2018").pj == {
        "synop": DAVIES_2018_TABLE_2["synaptic spike op (min)"],
        "neuron_update_active": DAVIES_2018_TABLE_2["neuron update, active"],
        "neuron_update_inactive": DAVIES_2018_TABLE_2["neuron update, inactive"],
        "spike_packet": DAVIES_2018_TABLE_2["within-tile spike energy"]}  # learning (synaptic update) not priced
    s = SANA_FE_LOIHI_YAML
    assert energy.get_table("loihi-sanafe").pj == pytest.approx({
        "synop": s["energy_process_spike"],                                    # per (spike, synapse) of a dense layer
        "neuron_update_inactive": s["energy_access_neuron"],                   # every neuron is read every step
        "neuron_update_active": s["energy_access_neuron"] + s["energy_update_neuron"],  # 51.2 + 21.6 = 72.8
        "spike": s["energy_spike_out"],
        "spike_packet": s["energy_message_out"]})                              # one message per spike sent on
    h = HOROWITZ_2014_FIG_1_1_9
    for name, mult, add in (("fp32", "32b FP mult", "32b FP add"), ("fp16", "16b FP mult", "16b FP add"),
                            ("int8", "8b mult", "8b add")):
        table = energy.get_table(energy.DENSE_TABLES[name])  # a MAC is one multiply and one add
        assert table.pj == pytest.approx({"mac": h[mult] + h[add]}) and "Horowitz" in table.source, name
    assert [energy.get_table(n).pj["mac"] for n in energy.DENSE_TABLES.values()] == pytest.approx([4.6, 1.5, 0.23])
    assert "Davies" in energy.get_table("loihi-davies2018").source and "Table 2" in energy.get_table(
        "loihi-davies2018").source and "SANA-FE" in energy.get_table("loihi-sanafe").source


def test_energy_tables_name_their_sources_and_add_up():
    assert {"loihi-davies2018", "loihi-sanafe", "horowitz-fp32-dense", "horowitz-int8-dense"} <= set(
        energy.list_tables())
    w = [np.array([[1.0, 0.0], [0.5, -1.0]], np.float32)]
    spikes_in = np.array([[[1, 1]], [[0, 1]]], np.uint8)  # (T=2, N=1, D=2)
    out = [np.array([[[1, 0]], [[0, 0]]], np.uint8)]
    counts = energy.count_operations(w, [np.zeros(2, np.float32)], spikes_in, out)
    assert counts.synops == [3.0 + 1.0] and counts.spikes == [1.0] and counts.input_spikes == 3.0
    assert counts.neuron_updates == [4.0] and counts.active_neuron_updates == [3.0]
    for name in energy.list_tables():
        table = energy.get_table(name)
        e = energy.energy_per_image(counts, table)
        assert table.source and e["total_pj"] == pytest.approx(sum(l["pj"] for l in e["lines"]))
    davies = energy.energy_per_image(counts, energy.get_table("loihi-davies2018"))  # one layer: no spike packet
    assert davies["total_pj"] == pytest.approx(4 * DAVIES_2018_TABLE_2["synaptic spike op (min)"]
                                               + 3 * DAVIES_2018_TABLE_2["neuron update, active"]
                                               + 1 * DAVIES_2018_TABLE_2["neuron update, inactive"])
    assert {x["line"] for x in energy.left_out(counts)} >= {"host -> chip input spikes", "mesh hops between cores"}
    with pytest.raises(LorspError, match="loihi-davies2018"):
        energy.get_table("nope")


# --------------------------------------------------------------------------- Lava
@pytest.mark.lava
@pytest.mark.slow
def test_lava_float_spikes_equal_pytorch_on_every_neuron_and_step(bundle):
    b = open_bundle(bundle)
    m = b.manifest
    model = rebuild_model(m["config"], m["classes"], m["backbone_weights_sha256"], b.network, b.host)
    x, _ = load_split_images("sklearn-digits", 32, 24)
    spikes = b.host.encoding(x)
    with torch.no_grad():
        reference = [s.numpy() for s in run_generator(model.spiking_generator, spikes)]
    result = get_backend("lava")(b.network, spikes.numpy().astype(np.uint8), mode="float", timeout=120)
    assert result.steps == b.host.time_steps and result.details["simulated_steps"] == 24 * b.host.time_steps + 2
    for got, ref in zip(result.layer_spikes, reference):
        assert got.shape == ref.shape and np.array_equal(got, ref)
    assert sum(int(s.sum()) for s in reference) > 0
    # the count rule is the one training reports use
    stats = spiking_layer_stats(model.spiking_generator, spikes, [torch.from_numpy(r) for r in reference])
    counts = energy.count_operations([l.weight for l in b.network.layers], [l.bias for l in b.network.layers],
                                     spikes.numpy(), result.layer_spikes)
    assert sum(counts.synops) == pytest.approx(sum(float(stats[f"synops/{k}"]) for k in range(2)) / 24)


@pytest.mark.lava
@pytest.mark.slow
def test_lava_runs_a_layer_of_unlike_neurons_as_separate_processes():
    torch.manual_seed(1)
    gen = nn.Sequential(nn.Linear(12, 6), leaky_layer(6, 0.9, 1.0), nn.Linear(6, 4), leaky_layer(4, 0.7, 0.8))
    with torch.no_grad():
        gen[0].weight.mul_(3)
        gen[1].threshold.copy_(torch.tensor([1.0, 0.5, 1.0, 0.5, 2.0, 1.0]))
        gen[1].beta.copy_(torch.tensor([0.9, 0.9, 0.5, 0.9, 0.9, 0.9]))
    layers = tuple(Layer(str(k), gen[2 * k].weight.detach().numpy(), gen[2 * k].bias.detach().numpy(),
                         gen[2 * k + 1].beta.numpy(), gen[2 * k + 1].threshold.numpy(),
                         np.zeros(gen[2 * k].out_features, np.float32)) for k in range(2))
    network = SpikingNetwork(12, layers)
    spikes = (torch.rand(6, 5, 12) > 0.6).float()
    with torch.no_grad():
        reference = [s.numpy() for s in run_generator(gen, spikes)]
    result = get_backend("lava")(network, spikes.numpy().astype(np.uint8), mode="float", timeout=120)
    assert result.details["processes"]["LIFReset"] == 4 + 1
    assert all(np.array_equal(g, r) for g, r in zip(result.layer_spikes, reference))


@pytest.mark.lava
@pytest.mark.slow
def test_cubalif_maps_to_lava_current_decay_in_both_modes():
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    neuron = snn.Synaptic(alpha=torch.full((5,), 0.6), beta=torch.full((5,), 0.85), threshold=torch.full((5,), 1.0),
                          init_hidden=True, reset_mechanism="zero", reset_delay=False)
    net = nn.Sequential(nn.Linear(10, 5, bias=False), neuron)
    with torch.no_grad():
        net[0].weight.mul_(2)
    network = network_from_nir(export_to_nir(net, torch.zeros(1, 10), ignore_dims=[0]))
    assert np.allclose(network.layers[0].alpha, 0.6) and np.allclose(network.layers[0].beta, 0.85)
    spikes = (torch.rand(10, 6, 10) > 0.5).float()
    neuron.reset_mem()
    with torch.no_grad():
        reference = torch.stack([net(spikes[t]) for t in range(10)]).numpy()
    assert reference.sum() > 0
    for mode in ("float", "fixed"):
        result = get_backend("lava")(network, spikes.numpy().astype(np.uint8), mode=mode, timeout=120)
        assert np.array_equal(result.layer_spikes[0], reference), mode


@pytest.mark.lava
@pytest.mark.slow
def test_fixed_mode_report_figures_equal_a_recount_from_the_bundle_and_a_lava_run(bundle):
    """The report export wrote (fast backend) against figures made apart from hw_sim.simulate: the same images
    through Lava itself, spikes counted from its raster, synops and active updates from the chip's weights with
    numpy, energy as counts x the table's pJ, spike agreement and accuracy against the PyTorch model."""
    report = json.loads((bundle / "hw_sim" / "report.json").read_text())
    assert report["backend"] == "fast" and list_backends() == ["fast", "lava"]  # export simulates with the default
    b = open_bundle(bundle)
    T, N = b.host.time_steps, report["samples"]
    x, y = load_split_images(report["dataset"], b.config["image_size"], N, b.config.get("data_root"))
    spikes_in = b.host.encoding(x)
    model = rebuild_model(b.config, b.manifest["classes"], b.manifest["backbone_weights_sha256"], b.network, b.host)
    with torch.no_grad():
        reference = [s.numpy() for s in run_generator(model.spiking_generator, spikes_in)]
        accuracy_pytorch = float((model(x).argmax(1) == y).float().mean())
    x_np = spikes_in.numpy().astype(np.uint8)
    lava = get_backend("lava")(b.network, x_np, mode="fixed", timeout=300).layer_spikes
    fixed_run = report["runs"]["fixed"]
    a, f = fixed_run["activity"], fixed_run["fidelity"]

    # spikes per image from Lava's raster; synops = sum of spikes x nonzero weights leaving the spiking input
    weights = [fx.weight for fx in quantise(b.network)]
    biases = [fx.bias_mant for fx in quantise(b.network)]
    inputs = [x_np, *lava[:-1]]
    spikes = [float(s.sum()) / N for s in lava]
    synops = [float((xi.astype(np.int64) * (w != 0).sum(axis=0)).sum()) / N for xi, w in zip(inputs, weights)]
    active = [float(((xi.astype(np.int64) @ (w != 0).T > 0) | (bias != 0)).sum()) / N
              for xi, w, bias in zip(inputs, weights, biases)]
    updates = [float(T * w.shape[0]) for w in weights]
    macs = [float(T * w.size) for w in weights]
    assert a["spikes_per_image"] == pytest.approx(spikes) and sum(spikes) > 0
    assert a["synops_per_image"] == pytest.approx(synops) and a["synops_total_per_image"] == pytest.approx(sum(synops))
    assert a["active_neuron_updates_per_image"] == pytest.approx(active)
    assert a["neuron_updates_per_image"] == updates and a["dense_macs_per_image"] == macs
    assert a["firing_rate"] == pytest.approx([s / (T * w.shape[0]) for s, w in zip(spikes, weights)])
    assert a["input_spikes_per_image"] == pytest.approx(float(x_np.sum()) / N)

    # energy: every table, each operation count x its pJ figure (the figures: test_energy_tables_hold_...)
    count = {"synop": sum(synops), "neuron_update_active": sum(active),
             "neuron_update_inactive": sum(updates) - sum(active), "spike": sum(spikes),
             "spike_packet": sum(spikes[:-1]), "mac": sum(macs) + sum(updates)}
    assert [e["table"] for e in fixed_run["energy"]] == energy.list_tables()
    for e in fixed_run["energy"]:
        pj = energy.get_table(e["table"]).pj
        assert {line["operation"]: line["count"] for line in e["lines"]} == pytest.approx({op: count[op] for op in pj})
        assert e["total_pj"] == pytest.approx(sum(count[op] * pj[op] for op in pj))
        assert e["total_nj"] == pytest.approx(e["total_pj"] / 1e3) and e["total_nj"] > 0
    assert fixed_run["left_out"][0]["count"] == pytest.approx(float(x_np.sum()) / N)

    # fidelity: the share of neuron-steps where the chip's spikes equal PyTorch's, per layer and overall
    same = [int((s == r).sum()) for s, r in zip(lava, reference)]
    sizes = [s.size for s in lava]
    assert [l["agreement"] for l in f["spikes"]["per_layer"]] == pytest.approx([m / n for m, n in zip(same, sizes)])
    assert f["spikes"]["overall"] == pytest.approx(sum(same) / sum(sizes)) and 0.9 <= f["spikes"]["overall"] <= 1.0
    assert f["accuracy_pytorch"] == pytest.approx(accuracy_pytorch) == report["pytorch"]["accuracy"]
    assert 0.0 <= f["accuracy_chip"] <= 1.0
    assert f["accuracy_change"] == pytest.approx(f["accuracy_chip"] - f["accuracy_pytorch"])
    assert [fx["scale"] for fx in fixed_run["fixed_point"]] == [fx.scale for fx in quantise(b.network)]
    float_run = report["runs"]["float"]
    assert float_run["fidelity"]["spikes"]["exact"] and float_run["fidelity"]["prompt_max_abs_diff"] == 0.0
    assert fixed_run["performance"]["steps"] == float_run["performance"]["steps"] == T
    assert fixed_run["performance"]["images_per_s"] == pytest.approx(N / fixed_run["performance"]["seconds"])
    html = (bundle / "hw_sim" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "Davies" in html
    md = (bundle / "hw_sim" / "report.md").read_text()
    assert "Left out" in md and all((bundle / "hw_sim" / p).exists() for p in ("raster.png", "energy.png"))


def hanging_lava_args() -> tuple:
    """The arguments of ``hw_sim.backends.lava._simulate`` for a fixed-point run that never ends: the trap of the
    notes, a float vth under fixed_pt makes Lava wait forever, with no error."""
    from hw_sim.backends.lava import lava_layers

    rng = np.random.default_rng(0)
    net = SpikingNetwork(6, (Layer("l", rng.normal(size=(4, 6)).astype(np.float32), np.zeros(4, np.float32),
                                   np.full(4, 0.9, np.float32), np.ones(4, np.float32), np.zeros(4, np.float32)),))
    hanging = [replace(layer, groups=tuple(replace(g, vth=g.vth + 0.5) for g in layer.groups))
               for layer in lava_layers(net, "fixed")]
    data = (rng.random((6, 13)) > 0.5).astype(np.int32)
    return hanging, data, 3, 4, 4, "fixed_pt"


@pytest.mark.lava
@pytest.mark.slow
def test_a_hanging_lava_run_is_stopped_with_all_its_workers():

    from hw_sim.backends.lava import _simulate
    from lorsp.plumbing.deadline import run_with_deadline

    args = hanging_lava_args()
    before = set(os.listdir("/proc"))
    with pytest.raises(LorspError, match="exceeded --timeout 4 s and was stopped"):
        run_with_deadline(_simulate, args, timeout=4, what="the Lava fixed run")
    assert _forks_of_this_process(set(os.listdir("/proc")) - before) == []  # no worker left, orphaned or not


def _forks_of_this_process(pids: set[str]) -> list[int]:
    """Live processes among ``pids`` running this interpreter's command line (forks keep it)."""
    def cmdline(pid: str) -> bytes | None:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return f.read()
        except OSError:
            return None

    ours = cmdline("self")
    return [int(p) for p in pids if p.isdigit() and cmdline(p) == ours]


# --------------------------------------------------------------------------- CLI
@pytest.mark.slow
def test_cli_writes_a_report(bundle, tmp_path):
    out = tmp_path / "report"
    proc = run_cli("hw_sim.cli", str(bundle), "--samples", "6", "--mode", "float", "-o", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["samples"] == 6 and report["runs"]["float"]["fidelity"]["spikes"]["exact"]
    assert "float: spike agreement 100.00%" in proc.stdout


@pytest.fixture(scope="module")
def broken_bundles(bundle, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("broken-bundles")
    unsupported = root / "unsupported"
    shutil.copytree(bundle, unsupported)
    nir.write(unsupported / NIR_FILE, chain(("0", affine(16, 48)), ("1", nir.Threshold(np.ones(16, np.float32))),
                                            d=48))
    fields = {k: v for k, v in json.loads((bundle / MANIFEST_FILE).read_text()).items()
              if k not in ("format", "format_version", "artifacts")}
    write_manifest(unsupported, fields)
    tampered = root / "tampered"
    shutil.copytree(bundle, tampered)
    with open(tampered / NIR_FILE, "ab") as f:
        f.write(b"\0")
    return {"unsupported": unsupported, "tampered": tampered, "missing": root / "nope"}


@pytest.mark.slow
@pytest.mark.parametrize("case,extra,fragment", [
    ("unsupported", [], "node '1' is a Threshold"),
    ("tampered", [], "does not match its sha256"),
    ("missing", [], "bundle directory not found"),
    pytest.param(None, ["--backend", "lava", "--timeout", "0.05"], "exceeded --timeout 0.05 s", marks=pytest.mark.lava),
])
def test_cli_errors_are_one_line_and_write_nothing(bundle, broken_bundles, tmp_path, case, extra, fragment):
    out = tmp_path / "report"
    source = bundle if case is None else broken_bundles[case]
    proc = run_cli("hw_sim.cli", str(source), "--samples", "4", "-o", str(out), "--quiet", *extra)
    assert_one_line_error(proc, fragment)
    assert not out.exists() and not out.with_name("report.partial").exists()


@pytest.mark.slow
def test_cli_refuses_an_existing_output_without_force(bundle, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    proc = run_cli("hw_sim.cli", str(bundle), "-o", str(out))
    assert_one_line_error(proc, "--force")
    assert list(out.iterdir()) == []


LAVA_AFTER_A_PROGRESS_BAR = """
import multiprocessing as mp
from tqdm import tqdm
for _ in tqdm(range(2)):       # a tqdm bar makes a multiprocessing lock, which fixes the start method
    pass
assert mp.get_start_method(allow_none=True) == "fork"
import numpy as np
from hw_sim.backends import get_backend
from deploy.network import Layer, SpikingNetwork
one = np.ones(1, dtype=np.float32)
net = SpikingNetwork(8, (Layer("0", np.full((1, 8), 0.25, np.float32), 0 * one, 0 * one, one, 0 * one),))
spikes = (np.arange(8)[None, None, :] < np.arange(9)[None, :, None]).astype(np.uint8)  # sample k: k inputs on
result = get_backend("lava")(net, spikes, mode="float", timeout=120)
print("spikes", result.layer_spikes[0][0, :, 0].tolist())
"""


@pytest.mark.lava
@pytest.mark.slow
def test_lava_runs_in_a_process_whose_start_method_is_already_set():
    """Lava's first import calls mp.set_start_method("fork"), which raised once a progress bar had run."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", LAVA_AFTER_A_PROGRESS_BAR], cwd=root, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "spikes [0, 0, 0, 0, 0, 1, 1, 1, 1]" in done.stdout   # 5 or more inputs of 0.25 cross threshold 1


def test_lava_refuses_a_process_that_spawns_with_one_line():
    import subprocess
    import sys

    code = ("import multiprocessing as mp; mp.set_start_method('spawn')\n"
            "from hw_sim.lava_runtime import import_lava_runtime\n"
            "from lorsp.plumbing.errors import LorspError\n"
            "try:\n    import_lava_runtime()\nexcept LorspError as e:\n    print('refused:', e)\n")
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("refused: Lava runs its processes with the 'fork' start method")
    assert done.stdout.count("\n") == 1


HANGING_LAVA_RUN = """
from hw_sim.backends.lava import _simulate
from lorsp.plumbing.deadline import run_with_deadline
from tests.test_hw_sim import hanging_lava_args
run_with_deadline(_simulate, hanging_lava_args(), timeout=120, what="the Lava fixed run")
"""


def _process_table() -> dict[int, tuple[int, int]]:
    """``{pid: (parent pid, process group)}`` of every live process."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                table[int(name)] = (int(fields[1]), int(fields[2]))
    return table


@pytest.mark.lava
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_the_lava_process_group_dies_with_its_parent(sig):
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    parent = subprocess.Popen([sys.executable, "-c", HANGING_LAVA_RUN], cwd=ROOT)
    group, workers = None, []
    for _ in range(300):  # until the child has forked Lava's workers into its own group
        time.sleep(0.1)
        table = _process_table()
        children = [pid for pid, (ppid, _) in table.items() if ppid == parent.pid]
        if children:
            group = children[0]
            workers = [pid for pid, (_, pgrp) in table.items() if pgrp == group and pid != group]
            if workers:
                break
    assert group is not None and workers, "the Lava run did not start"
    os.kill(parent.pid, sig)
    parent.wait(timeout=30)
    for _ in range(100):
        if not any(pgrp == group for _, pgrp in _process_table().values()):
            break
        time.sleep(0.1)
    left = [pid for pid, (_, pgrp) in _process_table().items() if pgrp == group]
    for pid in left:  # do not leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert left == [], f"the Lava group {group} outlived its parent by 10 s"


def test_rebuild_takes_the_trained_host_tensors_and_refuses_a_file_the_config_does_not_declare(bundle):
    """``rebuild_model`` reads what the prompt declares of itself (``host_state``): a trained ``prompt.*`` tensor
    comes from the file, a fixed one (the line-to-band map) and the metadata must be the config's, and a tensor
    the config's prompt does not declare, or one of another shape, is refused."""
    b = open_bundle(bundle)
    m = b.manifest
    args = (m["config"], m["classes"], m["backbone_weights_sha256"], b.network)
    model = rebuild_model(*args, b.host)
    assert torch.equal(model.prompt.B, b.host.prompt_state["prompt.B"])
    assert torch.equal(model.prompt.A, b.host.prompt_state["prompt.A"])
    state = b.host.prompt_state
    changed = {"prompt.group_of_line": torch.flip(state["prompt.group_of_line"], [0])}
    cases = [({**state, **changed}, b.host.prompt_metadata, "gate mapping differs"),
             (state, {**b.host.prompt_metadata, "gate": "rank"}, "gate mapping differs"),
             ({**state, "prompt.B": state["prompt.B"][..., :1]}, b.host.prompt_metadata, r"'prompt.B' \(1, 32, 1\) does not fit"),
             ({**state, "prompt.C": state["prompt.B"]}, b.host.prompt_metadata, "'prompt.C'")]
    for tensors, metadata, fragment in cases:
        with pytest.raises(LorspError, match=fragment):
            rebuild_model(*args, replace(b.host, prompt_state=tensors, prompt_metadata=metadata))
