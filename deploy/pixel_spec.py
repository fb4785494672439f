"""The bundle spec of a pixel bundle (``chip_network: pixel-gates``): what its files hold and what the host does.

The stages are a chain bundle's (:func:`deploy.spec.bundle_spec`): ``preprocess`` (host),
``encode`` (host: the image's own pixels as ``3 x L x L`` binary spikes, rate or latency code),
``generator`` (chip: the gates' convolution into one LIF per pixel), ``prompt`` (host: the low-rank
prompt times the mask of gates that fired), ``backbone`` (ONNX). lorsp's numpy reference runner
(``run_bundle.py``) runs chain bundles only, so a pixel bundle carries none and says so.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from deploy import fixed_point as fp
from deploy.bundle import HOST_FILE, NETX_FILE, NIR_FILE
from deploy.host import read_host
from deploy.pixel_bundle import read_pixel_network
from deploy.spec import COUNT_RULE, EXACT_RULE, FIXED_POINT_RULE, GATE_RULE, PROMPTED_RULE, RESET_RULE, \
    base_spec, bundle_files, host_tensor_shapes, netx_attributes, onnx_stage
from lorsp.encoding import ENCODING_VERSION
from lorsp.model import PromptedClassifier

NO_RUNNER = ("lorsp's reference runner (run_bundle.py) runs chain bundles only; a pixel bundle runs with lorsp-cosim, "
             "or from this spec")
ENCODE_VALUES = ("x (3, L, L) widened to float64 and clipped to [0, 1]; one input per pixel and channel, flattened "
                 "channel-major (c, i, j); D = 3 L^2 (the pool encoding at p = L)")
SPIKE_CODES = {"rate": ("input i spikes at step t (t = 1..T) iff floor(t k_i / T) - floor((t - 1) k_i / T) = 1: "
                        "k_i spikes, evenly spread"),
               "latency": "one spike per input with k_i > 0, at step T - k_i + 1 (brightest first); none when k_i = 0"}
NEURON_RULE = ("one LIF gate neuron per pixel (i, j): I[t] = sum_c sum_(a, b) W[0, c, a, b] s[t, c, i + a - p, j + b - "
               "p] (zero outside the image: a k x k convolution with padding p = (k - 1) / 2, PyTorch's "
               "cross-correlation order), v[t] = beta v[t-1] + I[t] + drive[i, j], spike s = [v[t] > theta], then v = 0; "
               "v[0] = 0 every sample; the gate of step t reads input step t")
NIR_RULE = ("NIR 1.0 HDF5: nodes input (Input, [3, L, L]), conv (Conv2d: weight (1, 3, k, k) float32, stride 1, padding "
            "p, dilation 1, groups 1, bias 0), gates (LIF, (1, L, L) each: tau = dt / (1 - beta), r = tau / dt so the "
            "input gain r dt / tau is 1, v_leak = (tau / dt) drive, v_threshold = theta, v_reset = 0), output (Output); "
            "edges input -> conv -> gates -> output; one Euler step of dt: v = (1 - dt/tau) v + (dt/tau) v_leak + "
            "(r dt/tau) I = beta v + drive + I")
NETX_RULE = ("lava-dl netx HDF5: layer/0 type 'input', shape [3, L, L]; layer/1 type 'conv', shape [1, L, L], weight "
             "(1, 3, k, k) int32 = the kernel at the scale (PyTorch's order), stride [1, 1], padding [p, p], dilation "
             "[1, 1], groups 1, bias (L, L, 1) int32 = round(scale drive) in netx's (x, y, z) order, neuron/ type "
             "'CUBA', iDecay = du + 1, vDecay = dv, vThMant, refDelay 1, gradedSpike false; root attributes: scales "
             "[scale] and the run settings")
PROMPT_RULE = ("P = (B_c diag(mix_c) A) for c = 0, 1, 2, a float32 matmul of (L, r) and (r, L), times the mask M[i, j] = "
               "1 where gate (i, j) fired at least once in the T steps, 0 elsewhere; gate index = i L + j")


def pixel_bundle_spec(root: Path, model: PromptedClassifier, fields: dict[str, Any]) -> dict[str, Any]:
    """The spec of the pixel bundle staged at ``root`` (manifest ``fields`` so far, the exported ``model``)."""
    config, classes = model.config, list(model.classes)
    L = int(config["image_size"])
    spec = base_spec(model, fields)
    host = read_host(root / HOST_FILE)
    network = read_pixel_network(root / NIR_FILE)
    params, ints = network.params, network.integers
    fixed_point, exact = network.fixed_point()
    e, T, n = host.encoding, host.time_steps, network.gates
    spec["encode"] = {"where": "host", "input": {"shape": ["N", 3, L, L], "dtype": "float32", "name": "x"},
                      "name": e.name, "version": ENCODING_VERSION, "size": e.size, "inputs": e.inputs,
                      "time_steps": T, "values": ENCODE_VALUES, "counts": COUNT_RULE, "code": e.code,
                      "spike_train": SPIKE_CODES.get(e.code, e.code),
                      "output": {"shape": [T, "N", 3, L, L], "dtype": "uint8", "values": [0, 1]}}
    spec["generator"] = {
        "where": "chip (Loihi 2)", "kind": "pixel-gates", "files": {"nir": NIR_FILE, "netx": NETX_FILE},
        "input": {"shape": [T, "N", 3, L, L], "dtype": "uint8", "kind": "binary spikes"},
        "output": {"shape": [T, "N", n], "dtype": "uint8", "kind": "gate spikes, index i L + j"},
        "time_steps": T, "dt": network.dt, "neuron": NEURON_RULE, "reset": RESET_RULE,
        "kernel": list(params.weight.shape), "padding": list(params.padding), "beta": params.beta,
        "threshold": params.threshold,
        "layers": [{"name": "gates", "index": 0, "nir_nodes": ["conv", "gates"], "netx_group": "layer/1",
                    "inputs": 3 * n, "neurons": n, "beta": [params.beta], "threshold": [params.threshold]}],
        "file_layout": {"nir": NIR_RULE, "netx": NETX_RULE},
        "lava": {"netx_attributes": {k: v for k, v in netx_attributes(T, layers=1).items() if k != "usage"},
                 "note": "a Lava run delays the gates by output_lag steps; hw_sim/netx_conv.py removes the lag"},
        "fixed_point": {"rule": FIXED_POINT_RULE, "state_shift": fp.STATE_SHIFT, "bias_exp": fp.BIAS_EXP,
                        "decay_unity": fp.DECAY_UNITY, "exact": exact["exact"], "exact_rule": EXACT_RULE,
                        "layers": [{"name": "gates", "netx_group": "layer/1", "scale": ints.scale, "vth": ints.vth,
                                    "iDecay": ints.du + 1, "du": ints.du, "vDecay": ints.dv,
                                    "exact": exact["layers"][0]["exact"],
                                    **({"why_not": exact["layers"][0]["why_not"]}
                                       if exact["layers"][0]["why_not"] else {})}]},
    }
    spec["prompt"] = {"where": "host",
                      "input": [{"name": "gate spikes", "shape": [T, "N", n], "dtype": "uint8"},
                                {"name": "x", "shape": ["N", 3, L, L], "dtype": "float32"}],
                      "output": {"name": "prompted", "shape": ["N", 3, L, L], "dtype": "float32"},
                      "gate": host.gate, "factors": host.factors, "gates": n, "rank": int(host.A.shape[-2]),
                      "gate_rule": GATE_RULE, "formula": PROMPT_RULE, "prompted": PROMPTED_RULE,
                      "tensors": {"file": HOST_FILE, **host_tensor_shapes(root / HOST_FILE)},
                      "reference_tensors": ("prompt.spiking_generator.conv.weight, .conv.bias and .kappa rebuild "
                                            "the PyTorch gates (drive = bias + kappa M / mean(M), M = sum_c |P_c|, on "
                                            "the 2^-5 grid); the NIR graph holds the result")}
    spec["backbone"] = onnx_stage(fields.get("onnx"), classes)
    spec["bundle_files"] = bundle_files(fields, runner=False, why_not=NO_RUNNER)
    return spec
