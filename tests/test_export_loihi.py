"""lorsp-export --target loihi: NIR checked node by node and spike by spike, netx in lava-dl, manifest."""
from __future__ import annotations

import json
from pathlib import Path

import nir
import numpy as np
import pytest
import torch
from torch import nn

from export.loihi import export_loihi
from pipeline.export_cli import export
from export.nir import check_nodes, check_round_trip, export_generator
from deploy.bundle import HOST_FILE, MANIFEST_FILE, NETX_FILE, NIR_FILE, open_bundle
from deploy.fixed_point import quantise
from deploy.host import read_host
from deploy.spec import README_FILE
from lorsp.data import load_split_images
from lorsp.plumbing.fileio import file_sha256
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.provenance import versions
from lorsp.model import build_model, load
from lorsp.prompts.lorsp import band_flags
from tests.conftest import assert_one_line_error, run_cli

TINY_TRAIN = ["--prompt", "lorsp", *band_flags(), "--dataset", "sklearn-digits", "--image-size", "32", "--epochs", "1",
              "--limit-train", "64", "--limit-test", "32", "--batch-size", "16", "--quiet"]
SAMPLES = 16


def shared_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained band-gated LoRSP checkpoint (its bundle is a chain), made once per session (also used by
    test_hw_sim)."""
    run = tmp_path_factory.getbasetemp() / "loihi-shared" / "run"
    if not (run / "model.pt").exists():
        proc = run_cli("lorsp.train", *TINY_TRAIN, "--out", str(run))
        assert proc.returncode == 0, proc.stderr[-2000:]
    return run / "model.pt"


def shared_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Its Loihi bundle with the simulation report, exported once per session."""
    out = tmp_path_factory.getbasetemp() / "loihi-shared" / "bundle"
    if not out.exists():
        export("loihi", shared_checkpoint(tmp_path_factory), out, samples=SAMPLES, progress=False)
    return out


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    return shared_checkpoint(tmp_path_factory)


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    return shared_bundle(tmp_path_factory)


@pytest.mark.slow
def test_bundle_holds_every_artifact_with_matching_hashes(bundle, checkpoint):
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    listed = set(manifest["artifacts"])
    assert {NIR_FILE, NETX_FILE, HOST_FILE, "hw_sim/report.json", "hw_sim/report.md", "hw_sim/report.html"} <= listed
    on_disk = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()} - {MANIFEST_FILE}
    assert listed == on_disk
    for name, entry in manifest["artifacts"].items():
        assert file_sha256(bundle / name) == entry["sha256"], name
    assert manifest["source_checkpoint"]["sha256"] == file_sha256(checkpoint)
    assert manifest["config"]["prompt"] == "lorsp" and manifest["target"] == "loihi"
    assert manifest["versions"]["lava-nc"] == versions()["lava-nc"] and manifest["git_commit"]
    assert [r["node"] for r in manifest["checks"]["nodes"]] == ["Affine", "LIF", "Affine", "LIF"]
    assert manifest["checks"]["round_trip"]["agreement"] == 1.0
    assert manifest["checks"]["round_trip"]["samples"] == SAMPLES
    assert manifest["simulation"]["float"]["spike_agreement"] == 1.0
    assert not bundle.with_name(bundle.name + ".partial").exists()


@pytest.mark.slow
def test_nir_round_trip_gives_the_same_spikes(checkpoint, tmp_path):
    model = load(checkpoint)
    x, _ = load_split_images("sklearn-digits", 32, 24)
    spikes = model.prompt.encode(x)
    graph = export_generator(model.spiking_generator, spikes.shape[-1])
    assert len(check_nodes(model.spiking_generator, graph)) == 4
    nir.write(tmp_path / "g.nir", graph)
    result = check_round_trip(tmp_path / "g.nir", model.spiking_generator, spikes)
    assert result["agreement"] == 1.0 and [l["agreement"] for l in result["per_layer"]] == [1.0, 1.0]


@pytest.mark.slow
def test_a_module_snntorch_drops_is_caught(checkpoint):
    gen = load(checkpoint).spiking_generator
    with_dropout = nn.Sequential(gen[0], gen[1], nn.Dropout(0.0), gen[2], gen[3])
    with pytest.raises(LorspError, match="Dropout"):  # snnTorch prints a warning and leaves the node out
        check_nodes(with_dropout, export_generator(with_dropout, gen[0].in_features))


@pytest.mark.lava
@pytest.mark.slow
def test_netx_file_opens_in_lava_dl_and_runs_like_the_fixed_point_simulation(bundle):
    from hw_sim.lava_runtime import import_lava_runtime

    import_lava_runtime()  # Lava's first import sets the fork start method; whichever test imports it first
    from lava.lib.dl.netx.hdf5 import Network
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    from hw_sim.backends import get_backend

    b = open_bundle(bundle)
    T = b.host.time_steps
    net = Network(net_config=str(bundle / NETX_FILE), reset_interval=T, reset_offset=1)
    fixed = quantise(b.network)
    assert len(net) == len(fixed) == 2
    for block, fx in zip(net.layers, fixed):
        assert type(block).__name__ == "Dense" and type(block.neuron).__name__ == "LIFReset"
        assert np.array_equal(block.synapse.weights.init, fx.weight)
        assert (block.neuron.vth.init, block.neuron.du.init, block.neuron.dv.init) == \
               (fx.vth[0], fx.du[0], fx.dv[0])
        assert np.array_equal(block.neuron.bias_mant.init, fx.bias_mant)
    x, _ = load_split_images("sklearn-digits", 32, 6)
    spikes = b.host.encoding(x).numpy().astype(np.int32)
    _, n, d = spikes.shape
    data = np.concatenate([spikes.transpose(2, 1, 0).reshape(d, n * T), np.zeros((d, len(net)), np.int32)], 1)
    source, sink = Source(data=data), Sink(shape=net.out.shape, buffer=data.shape[1])
    source.s_out.connect(net.inp)
    net.out.connect(sink.a_in)
    net.run(condition=RunSteps(num_steps=data.shape[1]), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    recorded = sink.data.get()
    net.stop()
    gates = recorded[:, len(net): len(net) + n * T].reshape(-1, n, T).transpose(2, 1, 0)
    ours = get_backend("lava")(b.network, spikes.astype(np.uint8), mode="fixed", timeout=120)
    assert np.array_equal(gates, ours.layer_spikes[-1]) and gates.sum() > 0


@pytest.mark.slow
def test_host_file_holds_what_the_chip_does_not_run(bundle, checkpoint):
    model = load(checkpoint)
    host = read_host(bundle / HOST_FILE)
    assert (host.encoding, host.gate, host.factors) == (model.prompt.encoding, model.prompt.gate, model.prompt.factors)
    assert torch.equal(host.B, model.prompt.B) and torch.equal(host.A, model.prompt.A)
    assert torch.equal(host.group_of_line, model.prompt.group_of_line)
    assert all(torch.equal(host.head[k], v) for k, v in model.head.state_dict().items())
    assert host.fixed_point_scale.shape == (2,) and bool((host.fixed_point_scale > 0).all())


@pytest.mark.slow
def test_force_replaces_and_no_simulate_skips_the_report(checkpoint, tmp_path):
    out = tmp_path / "b"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(LorspError, match="--force"):
        export_loihi(checkpoint, out, samples=4)
    assert (out / "old.txt").exists()
    manifest = export_loihi(checkpoint, out, samples=4, force=True)
    assert sorted(p.name for p in out.iterdir()) == sorted([NIR_FILE, NETX_FILE, HOST_FILE, README_FILE, MANIFEST_FILE])
    assert "simulation" not in manifest


@pytest.fixture(scope="module")
def bad_checkpoints(checkpoint, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad-checkpoints")
    state = torch.load(checkpoint, weights_only=True)
    lorvp = build_model({**state["config"], "prompt": "lorvp"}, state["classes"])
    torch.save(lorvp.checkpoint_state(), root / "lorvp.pt")
    data = checkpoint.read_bytes()
    (root / "truncated.pt").write_bytes(data[: len(data) // 2])
    (root / "notes.pt").write_text("not a checkpoint\n")
    return {"lorvp": root / "lorvp.pt", "truncated": root / "truncated.pt", "text": root / "notes.pt",
            "missing": root / "nope.pt"}


@pytest.mark.slow
@pytest.mark.parametrize("case,fragment", [("lorvp", "'lorvp' checkpoint"), ("missing", "not found"),
                                           ("truncated", "not a readable lorsp checkpoint"),
                                           ("text", "not a readable lorsp checkpoint")])
def test_cli_refuses_bad_checkpoints_in_one_line_writing_nothing(bad_checkpoints, tmp_path, case, fragment):
    out = tmp_path / "out"
    proc = run_cli("pipeline.export_cli", "--target", "loihi", str(bad_checkpoints[case]), "-o", str(out), "--samples", "4")
    assert_one_line_error(proc, fragment)
    assert not out.exists() and not out.with_name("out.partial").exists()


@pytest.mark.slow
def test_cli_refuses_an_existing_output_without_force(checkpoint, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("keep")
    proc = run_cli("pipeline.export_cli", "--target", "loihi", str(checkpoint), "-o", str(out), "--no-simulate")
    assert_one_line_error(proc, "--force")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_a_benchmark_reuses_a_bundle_only_while_it_is_of_the_checkpoint(bundle, checkpoint, tmp_path):
    """benchmarks.bundles: the bundle is current for the model it was exported from, not after that file
    changed (a run trained again in the same folder) and not when the manifest is missing."""
    import shutil

    from benchmarks.bundles import bundle_is_current

    assert bundle_is_current(bundle, checkpoint)
    retrained = tmp_path / "model.pt"
    shutil.copyfile(checkpoint, retrained)
    assert bundle_is_current(bundle, retrained)  # same bytes
    retrained.write_bytes(retrained.read_bytes() + b"\0")
    assert not bundle_is_current(bundle, retrained)
    assert not bundle_is_current(tmp_path / "no-bundle", checkpoint)

