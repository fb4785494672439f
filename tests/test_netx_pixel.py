"""LoRSP's pixel gates as a lava-dl netx file (export/netx_pixel.py, pipeline/netx_pixel.py), run in lava-dl itself.

The prompt is tests/test_pixel_gates_nir.py's: random factors on the grid, its drive bisected until about
half the gates fire on 8 sklearn-digits test images at 16 x 16. The file holds the general fixed-point path's
integers (the kernel the twin's convolution applies, each compartment's bias mantissa, ``vth``, ``du``, ``dv``);
``lava.lib.dl.netx.hdf5.Network`` builds a ``Conv`` block of ``LIFReset`` neurons from it, and, run under
``Loihi2SimCfg(select_tag='fixed_pt')`` with ``reset_interval = T``, gives PyTorch's gate spikes and the fast
fixed path's on every step, neuron and image. The Lava tests are marked ``lava`` (the Lava environment).
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from deploy.fixed_point import BIAS_EXP, STATE_SHIFT
from deploy.lava_settings import NETX_RESET_OFFSET, layer_reset_offset
from deploy.nir_graph import flat_graph
from export.netx_pixel import PixelGateIntegers, pixel_gates_netx_datasets, write_pixel_gates_netx_file
from export.nir_pixel import encoded_input, pixel_gate_parameters, pixel_gates_graph
from hw_sim.graph.fixed import fixed_run
from hw_sim.graph.runner import compile_graph
from lorsp.data import load_split_images
from lorsp.plumbing.errors import LorspError
from lorsp.prompts.lorsp import LowRankSpikePrompt
from hw_sim.pixel_twin import fixed_twin, twin_integers
from pipeline.netx_pixel import write_pixel_gates_netx
from tests.test_pixel_gates_nir import pixel_prompt

SIDE, SAMPLES = 16, 8


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The prompt, its input spikes ``(T, N, 3, L, L)``, PyTorch's gate spikes ``(T, N, 1, L, L)``, the fast fixed
    path's, the written netx file and its integers."""
    x, _ = load_split_images("sklearn-digits", SIDE, SAMPLES)
    prompt = pixel_prompt(x)
    spikes = encoded_input(prompt, x)
    with torch.no_grad():
        reference = prompt.run_generator(x).gate_spikes.numpy().reshape(*spikes.shape[:2], 1, SIDE, SIDE)
    graph = pixel_gates_graph(pixel_gate_parameters(prompt))
    fast = fixed_run(compile_graph(flat_graph(graph), 1e-4), spikes, timeout=120, required=True)
    path = tmp_path_factory.mktemp("netx") / "gates.net"
    ints = write_pixel_gates_netx(prompt, path)
    return prompt, spikes, reference.astype(np.uint8), fast.outputs["output"].astype(np.uint8), path, ints


def test_the_file_holds_the_fixed_paths_integers_in_netx_conv_layout(setup):
    prompt, _, reference, fast, path, ints = setup
    assert np.array_equal(fast, reference) and 0.35 <= reference.any(0).mean() <= 0.65
    twin = fixed_twin(pixel_gate_parameters(prompt))
    op = twin["gates"].op
    with h5py.File(path, "r") as f:
        conv = f["layer/1"]
        assert f["layer/0/type"][0] == b"input" and list(f["layer/0/shape"][()]) == [3, SIDE, SIDE]
        assert conv["type"][0] == b"conv" and list(conv["shape"][()]) == [1, SIDE, SIDE]
        assert [list(conv[k][()]) for k in ("stride", "padding", "dilation")] == [[1, 1], [1, 1], [1, 1]]
        assert conv["groups"][()] == 1 and conv["weight"].dtype == np.int32 and conv["weight"].shape == (1, 3, 3, 3)
        bias = conv["bias"][()]  # netx's x, y, z order
        assert bias.shape == (SIDE, SIDE, 1)
        # the compartments' bias, vth and decays are the twin's: bias_mant << 6, vth << 6, beta = (4096 - dv) / 4096
        assert np.array_equal(bias[..., 0].T.reshape(-1).astype(np.float64) * 2 ** BIAS_EXP, op.bias.numpy())
        assert np.all(op.vth.numpy() == conv["neuron/vThMant"][()] * 2 ** STATE_SHIFT)
        assert conv["neuron/iDecay"][()] == 4096 and conv["neuron/vDecay"][()] == 2048
        assert f.attrs["reset_interval"] == 8 and f.attrs["reset_offset"] == NETX_RESET_OFFSET
        assert f.attrs["output_lag"] == 1 and f.attrs["select_tag"] == "fixed_pt"
        assert list(f.attrs["scales"]) == [op.scale]
        weight = conv["weight"][()].astype(np.float64)
    # the kernel, times the scale, is the float kernel (on the grid: exact), and runs as the twin's convolution
    params = pixel_gate_parameters(prompt)
    assert np.array_equal(weight, ints.weight) and np.array_equal(weight / op.scale, params.weight.astype(np.float64))
    bias_float = ints.bias_mant.astype(np.float64) / op.scale
    assert np.array_equal(bias_float, params.drive.astype(np.float64)) and np.unique(ints.bias_mant).size > 4
    probe = torch.from_numpy(encoded_input(prompt, load_split_images("sklearn-digits", SIDE, 2)[0])[0])
    assert torch.equal(twin["conv"].op.apply(probe).double(),
                       torch.nn.functional.conv2d(probe.double(), torch.from_numpy(weight), padding=1))


def test_refusals_are_one_line(setup, tmp_path):
    _, _, _, _, _, ints = setup
    with pytest.raises(LorspError, match=r"^the pixel gates' NIR graph needs a LoRSP prompt with --gate pixel, "
                                         r"got 'band'$"):
        write_pixel_gates_netx(LowRankSpikePrompt(SIDE, gate="band"), tmp_path / "band.net")
    too_big = PixelGateIntegers(**{**ints.__dict__, "bias_mant": ints.bias_mant + 5000})
    with pytest.raises(LorspError, match=r"^the gates' bias mantissa does not fit Loihi's register \(-4096..4095\)$"):
        write_pixel_gates_netx_file(too_big, tmp_path / "big.net")
    wide = PixelGateIntegers(**{**ints.__dict__, "padding": (2, 2)})
    with pytest.raises(LorspError, match=r"^the gates' kernel \[1, 3, 3, 3\] with padding \[2, 2\] is not"):
        pixel_gates_netx_datasets(wide)
    assert not (tmp_path / "band.net").exists() and not (tmp_path / "big.net").exists()


def lava_run(path, spikes):
    from hw_sim.netx_conv import run_conv_netx

    return run_conv_netx(str(path), spikes, timeout=180)


@pytest.mark.lava
def test_lava_dl_builds_a_conv_block_of_lifreset_neurons_with_the_files_integers(setup):
    from hw_sim.lava_runtime import import_lava_runtime

    import_lava_runtime()
    from lava.lib.dl.netx.hdf5 import Network

    _, _, _, _, path, ints = setup
    net = Network(net_config=str(path), reset_interval=8, reset_offset=NETX_RESET_OFFSET)
    (block,) = net.layers
    assert type(block).__name__ == "Conv" and type(block.neuron).__name__ == "LIFReset"
    assert tuple(net.inp.shape) == (SIDE, SIDE, 3) and tuple(net.out.shape) == (SIDE, SIDE, 1)
    neuron = block.neuron
    assert np.array_equal(neuron.bias_mant.init[..., 0].T, ints.bias_mant[0])
    assert np.all(neuron.bias_exp.init == BIAS_EXP)
    assert (neuron.vth.init, neuron.du.init, neuron.dv.init) == (ints.vth, ints.du, ints.dv)
    assert neuron.proc_params["reset_interval"] == 8 and neuron.proc_params["reset_offset"] == layer_reset_offset(0)


@pytest.mark.lava
def test_lava_gives_pytorchs_and_the_fast_fixed_paths_gate_spikes_on_every_step_neuron_and_image(setup, tmp_path):
    _, spikes, reference, fast, path, ints = setup
    gates, details = lava_run(path, spikes)
    assert gates.shape == reference.shape == (8, SAMPLES, 1, SIDE, SIDE)
    assert np.array_equal(gates, reference) and np.array_equal(gates, fast)
    assert details["lava_steps"] == SAMPLES * 8 + 1 and details["output_lag"] == 1
    assert 0 < reference.mean() < reference.any(0).mean()  # not every gate fires every step
    # the bias is read per neuron in netx's x, y order: written as (y, x) the spikes differ
    swapped = PixelGateIntegers(**{**ints.__dict__, "bias_mant": ints.bias_mant.transpose(0, 2, 1).copy()})
    write_pixel_gates_netx_file(swapped, tmp_path / "swapped.net")
    assert not np.array_equal(lava_run(tmp_path / "swapped.net", spikes)[0], reference)


@pytest.mark.lava
def test_every_image_starts_from_rest(setup):
    """An image's gate spikes do not depend on the images before it: the first two, run in the other order."""
    _, spikes, reference, _, path, _ = setup
    swapped, _ = lava_run(path, spikes[:, [1, 0]].copy())
    assert np.array_equal(swapped, reference[:, [1, 0]])
    assert not np.array_equal(reference[:, 0], reference[:, 1])


def test_integers_of_another_gate_size_and_beta():
    """The integers follow the fixed path at another size (L = 10) and ``beta`` (3/4: dv 1024)."""
    torch.manual_seed(4)
    prompt = LowRankSpikePrompt(10, gate="pixel", train_generator="all", gates=10)
    params = pixel_gate_parameters(prompt)
    params = type(params)(**{**params.__dict__, "beta": 0.75})
    ints = twin_integers(params)
    op = fixed_twin(params)["gates"].op
    assert ints.bias_mant.shape == (1, 10, 10) and ints.dv == 1024 and ints.du == 4095
    assert np.array_equal(ints.bias_mant.reshape(-1) * 2.0 ** BIAS_EXP, op.bias.numpy())


@pytest.mark.lava
def test_the_example_runs_a_pixel_checkpoint_in_lava_and_refuses_a_band_one(setup, tmp_path):
    """examples/netx_pixel_gates.py on a checkpoint of this file's prompt (a 16 x 16 sklearn-digits model, not
    trained): Lava's gate spikes equal PyTorch's and the fast fixed path's; a band-gated checkpoint is refused in
    one line and nothing is written."""
    import dataclasses
    import json
    import subprocess
    import sys

    from lorsp.model import build_model
    from tests.conftest import ROOT, assert_one_line_error

    prompt = setup[0]
    config = {"dataset": "sklearn-digits", "backbone": "efficientnet_lite0", "weights": None, "prompt": "lorsp",
              "head": "lp", "image_size": SIDE, **dataclasses.asdict(prompt.options)}
    classes = [str(d) for d in range(10)]
    pixel = build_model(config, classes)
    pixel.prompt.load_state_dict(prompt.state_dict())
    torch.save(pixel.checkpoint_state(), tmp_path / "pixel.pt")
    torch.save(build_model({**config, "gate": "band"}, classes).checkpoint_state(), tmp_path / "band.pt")
    example = [sys.executable, str(ROOT / "examples" / "netx_pixel_gates.py")]
    done = subprocess.run([*example, str(tmp_path / "pixel.pt"), "-o", str(tmp_path / "out"), "--samples", "4",
                           "--timeout", "120"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["lava_equal_pytorch"] and summary["lava_equal_fast_fixed"] and summary["fast_fixed_equal_pytorch"]
    assert summary["samples"] == 4 and summary["image_size"] == SIDE and 0 < summary["gates_fired_share"] < 1
    assert (tmp_path / "out" / "gates.net").is_file()
    refused = subprocess.run([*example, str(tmp_path / "band.pt"), "-o", str(tmp_path / "no")],
                             capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert_one_line_error(refused, "the pixel gates' NIR graph needs a LoRSP prompt with --gate pixel, got 'band'")
    assert not (tmp_path / "no").exists()
