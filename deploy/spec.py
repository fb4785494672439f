"""The bundle spec: everything a third party needs to run an exported bundle without lorsp.

:func:`bundle_spec` builds it at export time from the staged files and the constants the
code runs on (the encoding of :mod:`lorsp.encoding`, the step of :mod:`deploy.nir_reader`,
the integers of :mod:`deploy.fixed_point`, the Lava settings of :mod:`deploy.lava_settings`,
the ONNX contract of :mod:`deploy.onnx_runtime`), so no number has a second copy. It goes
into ``manifest.json`` under ``spec`` (machine-readable, with :data:`SPEC_VERSION`) and, as
``README.md``, into every bundle (:mod:`deploy.spec_readme`). docs/bundle-spec.md describes
it once; ``examples/run_bundle.py`` runs a bundle from it alone, and a bundle with a spiking
generator and an ONNX backbone carries a copy of it (:data:`RUNNER_FILE`). The spec also says
which files the manifest lists and how its integrity is computed (``bundle_files``), and what
``lorsp-cosim`` may write into the directory later (:mod:`deploy.outputs`).

Stages, in order: ``preprocess`` (host), ``encode`` (host), ``generator`` (chip),
``prompt`` (host), ``backbone`` (accelerator); an ONNX-only bundle has ``preprocess``,
the prompt computed by lorsp, and ``backbone``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors import safe_open

from deploy import fixed_point as fp
from deploy import lava_settings as lava
from deploy.bundle import HOST_FILE, NETX_FILE, NIR_FILE
from deploy.host import read_host
from deploy.manifest import MANIFEST_FILE, SPEC_FORMAT, SPEC_VERSION
from deploy import outputs
from deploy.nir_reader import SNNTORCH_DT, load_network
from deploy.onnx_runtime import INPUT_NAME, OUTPUT_NAME
from lorsp.data.registry import DATASETS
from lorsp.data.transforms import RESIZE
from lorsp.encoding import ENCODING_VERSION, NO_CONTENT, Encoding
from lorsp.plumbing.errors import LorspError
from lorsp.model import PromptedClassifier

README_FILE = "README.md"
RUNNER_FILE = "run_bundle.py"
"""The reference runner's name in a bundle: a copy of :data:`RUNNER_SOURCE`."""
RUNNER_SOURCE = Path(__file__).resolve().parent / "runner" / RUNNER_FILE
"""lorsp's reference runner (numpy, h5py, safetensors, onnxruntime), part of the package (:mod:`deploy.runner`),
so every install of lorsp ships it; ``examples/run_bundle.py`` in the source tree links to it."""
RUNNER_NEEDS = ["numpy", "h5py", "safetensors", "onnxruntime"]

ENCODING_FORMULAS = {
    "bands": ("x (3, L, L) widened to float64; grey y = (x_0 + x_1 + x_2) / 3; d = |y - mean(y)|; "
              "row band b (b = 0..G-1) = mean of d over rows b L/G .. (b+1) L/G - 1 (all columns), column band b "
              "likewise over columns; v = [rows, columns] / max(rows, columns), or 0 everywhere when that max "
              f"<= {NO_CONTENT:g}; clipped to [0, 1]; D = 2 G, rows first"),
    "pool": ("x (3, L, L) widened to float64; mean over p x p blocks of L/p x L/p pixels per channel, "
             "flattened channel-major (c, i, j); clipped to [0, 1]; D = 3 p^2"),
}
COUNT_RULE = "k_i = round(v_i T) in float64, half to even, in {0..T}"
SPIKE_TRAIN = ("input i spikes at step t (t = 1..T) iff floor(t k_i / T) - floor((t - 1) k_i / T) = 1: "
               "k_i spikes, evenly spread (an integer accumulator a += k_i, fire and a -= T when a >= T)")
NEURON_MODEL = ("current-based LIF per layer: I[t] = W s[t]; u[t] = alpha u[t-1] + I[t]; "
                "v[t] = beta v[t-1] + u[t] + b; spike s[t] = [v[t] > theta]; u[0] = v[0] = 0 every sample; "
                "s[t] of the first layer is the input's step t, of every later layer the layer below's step t "
                "(no delay between layers)")
LAYER_DELAY = ("none: in the model a layer reads the spikes the layer below emits on the same step t, and the "
               "gates of step t come from input step t. Only a Lava run delays: each Dense sends one step late "
               "(lava.delay_per_layer), a pipeline latency that lava.stream undoes (read output_lag columns later); "
               "the spikes are the same")
WEIGHT_ORIENTATION = "(out, in): row o holds the synapses into neuron o, I = W s (s a column of the layer below)"
RESIZE_ARITHMETIC = (
    "PyTorch's separable antialiased bilinear resize (aten/src/ATen/native/cpu/UpSampleKernel.cpp), float32 "
    "throughout: first along the width (every row), then along the height (every column of that result); an "
    "axis already L long is skipped. Per axis of n -> L: scale = float32(n / L); support = scale and "
    "inv = 1 / scale when scale >= 1, else support = inv = 1; for output i: center = float32(scale (i + 0.5)); "
    "lo = max(trunc(float32(center - support) + 0.5), 0); count = min(trunc(float32(center + support) + 0.5), n) "
    "- lo; d_j = float32((float32(lo + j - center) + 0.5) inv) and w_j = float32(1 - |d_j|) if |d_j| < 1 else 0 "
    "(j = 0..count-1); s = w_0 + w_1 + ... summed in float32 in order; w_j = float32(w_j / s). "
    "out_i = float32(in_lo w_0), then out_i = fma(in_(lo+j), w_j, out_i) for j = 1..count-1 in order: a fused "
    "multiply-add, one rounding each (in numpy float32(float64(out_i) + float64(in) float64(w)), exact but for "
    "a double rounding that occurred in none of the checks). PyTorch fuses on x86_64 with AVX2 or AVX512 (its "
    "usual dispatch, where the reference images were made); under ATEN_CPU_CAPABILITY=default it rounds the "
    "product and the sum apart and the images differ in the last bit. run_bundle.py's preprocess() is this "
    "arithmetic, checked bit for bit against PyTorch (tests/test_run_bundle.py). Measured on two torch releases: "
    "on 2.3.1 bit for bit for every size checked; on 2.14.1 bit for bit wherever no axis shrinks (every built-in "
    "data set enlarges), while where an axis shrinks (n > L) 7 of 27 checked sizes differ in the last bit: newer "
    "torch accumulates a shrinking axis in another order, which this rule does not reproduce")

RESET_RULE = ("to zero, at once: v <- 0 on the step it spikes (snnTorch reset_mechanism='zero', "
              "reset_delay=False; NIR v_reset = 0); no refractory period; u and v reset to 0 at every sample")
FIXED_POINT_RULE = (f"Lava bit-accurate LIF: u = rz(u (4096 - iDecay) / 2^12) + 2^{fp.STATE_SHIFT} sum_j w_j s_j; "
                    f"v = rz(v (4096 - vDecay) / 2^12) + u + bias 2^{fp.BIAS_EXP}; spike when v > vThMant 2^"
                    f"{fp.STATE_SHIFT}, then v = 0; u, v 24-bit (rz: rounding towards zero); integer = "
                    "round(scale x float), one scale per layer")
EXACT_RULE = ("exact: the integers give the float network's spikes bit for bit, for every input (each weight, "
              "bias and threshold times the scale is an integer, alpha = 0, beta = (4096 - vDecay) / 4096 and the "
              "decay drops no bit within T steps; deploy.fixed_point.exactness); when false, fixed and float "
              "spikes may differ and each layer's why_not says why")
GATE_RULE = "a gate is open when its neuron fired at least once in the T steps (rate > 0)"
GATE_LAYOUTS = {
    "band": ("2 G r gates: index = side r G + k G + b, side 0 = rows, 1 = columns, term k = 0..r-1, band "
             "b = 0..G-1; line i (row or column) reads band group_of_line[i], the host file's tensor (floor(i G / L))"),
    "rowcol": ("2 G gates: 0..G-1 rows, G..2G-1 columns; line i reads gate group_of_line[i], the host file's "
               "tensor (floor(i G / L))"),
}
PROMPT_FORMULAS = {
    "band": ("P_c = sum_k mix[c, k] (row_k * B[:, k]) (col_k * A[k, :])^T, row_k[i] = gate(0, k, "
             "group_of_line[i]), col_k[j] = gate(1, k, group_of_line[j]); computed as float32 "
             "matmul(left (N, 3, L, r), right (N, 1, r, L)), left = B mix_c * row gates, right = A * column gates"),
    "rowcol": ("P_c = (B_c diag(mix_c) A) at open rows x open columns, 0 elsewhere (float32 matmul of "
               "B mix_c (L, r) and A (r, L))"),
}
PROMPTED_RULE = "prompted = x + P(x), float32 (x the preprocessed image): P rounded first, then one float32 add"
SUM_ORDER = ("every entry of a matmul above is a float32 sum over the rank k = 0..r-1 in order, fused: p = "
             "float32(l_0 r_0), then p = fma(l_k, r_k, p) (one rounding each; in numpy float32(float64(p) + "
             "float64(l_k) float64(r_k))), what PyTorch's and numpy's sgemm give on x86_64 with FMA; the factors "
             "are rounded first: l = float32(B[c, i, k] mix[c, k]) times its gate (0 or 1, exact), r = A[k, j] "
             "times its gate; an unfused or reordered sum differs in the last bit")
NIR_LAYOUT = ("NIR 1.0 HDF5 (nir.read reads it): node/nodes/NAME/ per node, node/edges (from, to) pairs from "
              "'input' to 'output', node/metadata (dt, time_steps, reset, encoding). A layer is an Affine node "
              f"(weight float32 {WEIGHT_ORIENTATION}, bias float32 (out,): the b of the neuron model) followed by a "
              "LIF node (tau, r, v_leak, v_reset, v_threshold per neuron: beta = 1 - dt / tau, input gain r dt / tau "
              "= 1, v_leak = v_reset = 0, theta = v_threshold)")
NETX_LAYOUT = ("lava-dl netx HDF5 (netx.hdf5.Network reads it): layer/0 type 'input', shape [D]; layer/k "
               f"(k = 1..L) type 'dense', shape [n_k], weight int32 {WEIGHT_ORIENTATION}, bias int32 (out,) the bias "
               "mantissa b_m, neuron/ type 'CUBA', iDecay, vDecay, vThMant, refDelay, gradedSpike; root attributes: "
               "scales (one per layer) and the run settings (lava)")
NETX_FROM_NIR = ("with scale = fixed_point.layers[k].scale (also the netx root attribute scales[k] and host.safetensors' "
                 "fixed_point.scale[k]) and the NIR layer's W, b, theta: weight = round(scale W) (to an even integer "
                 "when the layer's weights have both signs: 2 round(scale W / 2)), b_m = round(scale b), "
                 "vThMant = round(scale theta) (round: half to even; weights clipped to +-254 mixed, +-255 one sign, b_m to "
                 "13 bits: deploy.fixed_point); exact layers give W = weight / scale and "
                 "b = b_m / scale exactly. The chip adds b_m 2^bias_exp to v every step (netx passes bias as Lava's "
                 "bias_mant with bias_exp = 6) and 2^state_shift w_j per input spike, and compares v with "
                 "vThMant 2^state_shift: in float terms v_chip = 2^6 scale v")
DECAY_REGISTERS = ("iDecay (the netx file and the tables here) = du + 1, du being Lava's LIF register (the manifest's "
                   "fixed_point[].du, 12-bit, at most 4095; netx builds LIF(du = iDecay - 1)): the current keeps "
                   "(4096 - iDecay) / 4096 of itself per step, so iDecay 4096 (du 4095) keeps nothing, alpha = 0. "
                   "vDecay = dv (both names): v keeps (4096 - vDecay) / 4096 = beta")
NETX_UNREAD = ("refDelay = 1 and gradedSpike = false are lava-dl's values for a CUBA neuron; netx.hdf5.Network "
               "(lava-dl 0.6.0) reads neither for CUBA. There is no refractory period: a neuron resets v to 0 on the "
               "step it spikes and may spike again on the next step; spikes are binary")
LAYER_NAMES = ("one layer, four places: generator.layers[k] and fixed_point.layers[k] (and the manifest's network[k], "
               "fixed_point[k], fixed_point_exact.layers[k]) by name, the name of its NIR LIF node; its NIR nodes "
               "nir_nodes (Affine, LIF); its netx group netx_group = layer/(k+1) (layer/0 is the input); k the 0-based "
               "index in this list")
INTEGRITY_RULE = ("integrity.sha256 = sha256 of the manifest without its integrity field, serialised as Python's "
                  "json.dumps(m, sort_keys=True, separators=(',', ':'), ensure_ascii=True) and encoded as ASCII: keys "
                  "sorted by code point, no spaces, non-ASCII characters as \\uxxxx escapes (lowercase hex), numbers "
                  "as manifest.json writes them (Python's shortest float repr), so re-serialising the parsed file "
                  "that way gives the bytes")
ARTIFACTS_RULE = ("manifest.json's artifacts: every file under the bundle directory when the export finished (the "
                  "export's own chip simulation in hw_sim/ included), manifest.json excepted, by path relative to "
                  "the directory with '/' separators, each with its sha256 (hex, of its bytes) and size in bytes")


def onnx_stage(onnx: dict[str, Any] | None, classes: list[str]) -> dict[str, Any] | None:
    """The spec's ``backbone`` stage from the manifest's ``onnx`` fields (None: no ONNX files)."""
    if not onnx:
        return None
    L = onnx["image_size"]
    return {"where": "accelerator (onnxruntime, TensorRT)", "files": onnx["files"],
            "input": {"name": INPUT_NAME, "shape": ["N", 3, L, L], "dtype": "float32",
                      "value": "x + P(x): the preprocessed image plus the prompt, before normalisation"},
            "output": {"name": OUTPUT_NAME, "shape": ["N", len(classes)], "dtype": "float32"},
            "prediction": "argmax of the logits over classes (index into classes)",
            "quantisation": onnx.get("quantisation", {})}


def nir_metadata(encoding: Encoding, dt: float = SNNTORCH_DT) -> dict[str, Any]:
    """What ``prompt_generator.nir`` carries in its graph metadata: the step, ``T``, the reset, the encoding."""
    return {"lorsp.spec_version": SPEC_VERSION, "dt": dt, "time_steps": encoding.time_steps,
            "reset_interval": encoding.time_steps, "reset": RESET_RULE, "encoding": encoding.name,
            "encoding_version": ENCODING_VERSION, "encoding_size": encoding.size}


def netx_attributes(time_steps: int, layers: int) -> dict[str, Any]:
    """What ``prompt_generator.net`` carries as root attributes: ``T``, the pipelined reset, delay, fixed point."""
    return {"lorsp.spec_version": SPEC_VERSION, "time_steps": time_steps, "reset_interval": time_steps,
            "reset_offset": lava.NETX_RESET_OFFSET, "delay_per_layer": lava.DENSE_DELAY_STEPS,
            "output_lag": lava.output_lag(layers - 1), "select_tag": "fixed_pt", "run_config": lava.FIXED_RUN_CONFIG,
            "input_message_bits": 0,
            "usage": (f"netx.hdf5.Network(net_config=path, reset_interval={time_steps}, reset_offset="
                      f"{lava.NETX_RESET_OFFSET}); run with {lava.FIXED_RUN_CONFIG}; the output of input step t "
                      f"appears output_lag steps later")}


def host_tensor_shapes(path: Path) -> dict[str, list[int]]:
    """``{tensor name: shape}`` of a safetensors file, as stored."""
    with safe_open(str(path), framework="np") as f:
        return {name: list(f.get_slice(name).get_shape()) for name in f.keys()}


def bundle_spec(root: Path, model: PromptedClassifier, fields: dict[str, Any]) -> dict[str, Any]:
    """The spec of the bundle staged at ``root`` (manifest ``fields`` so far, the exported ``model``)."""
    config, classes = model.config, list(model.classes)
    L = int(config["image_size"])
    spec = base_spec(model, fields)
    onnx = onnx_stage(fields.get("onnx"), classes)
    if not (root / NIR_FILE).is_file():
        spec["prompt"] = {"where": "host (lorsp, PyTorch)", "method": config.get("prompt"),
                          "rule": "the prompt of this method is not part of the spec; lorsp computes it"}
        spec["backbone"] = onnx
        spec["bundle_files"] = bundle_files(fields, runner=False)
        return spec
    host = read_host(root / HOST_FILE)
    network = load_network(root / NIR_FILE)
    fixed = fp.quantise(network)
    e, T = host.encoding, host.time_steps
    exact = fp.exactness(network, fixed, T)  # the manifest's fixed_point_exact, from the bundle's own files
    if e.name not in ENCODING_FORMULAS or host.gate not in PROMPT_FORMULAS:
        raise LorspError(f"no spec for encoding {e.name!r} with gate mode {host.gate!r}")
    n_gates = network.sizes[-1]
    rank = int(host.A.shape[-2])
    spec["encode"] = {"where": "host", "input": {"shape": ["N", 3, L, L], "dtype": "float32", "name": "x"},
                      "name": e.name, "version": ENCODING_VERSION, "size": e.size,
                      "inputs": e.inputs, "time_steps": T, "values": ENCODING_FORMULAS[e.name],
                      "counts": COUNT_RULE, "spike_train": SPIKE_TRAIN,
                      "output": {"shape": [T, "N", e.inputs], "dtype": "uint8", "values": [0, 1]}}
    spec["generator"] = {
        "where": "chip (Loihi 2)", "files": {"nir": NIR_FILE, "netx": NETX_FILE},
        "input": {"shape": [T, "N", network.input_size], "dtype": "uint8", "kind": "binary spikes"},
        "output": {"shape": [T, "N", n_gates], "dtype": "uint8", "kind": "gate spikes"},
        "time_steps": T, "dt": network.dt, "neuron": NEURON_MODEL, "reset": RESET_RULE,
        "delay_between_layers": 0, "delay_rule": LAYER_DELAY, "layer_names": LAYER_NAMES,
        "file_layout": {"nir": NIR_LAYOUT, "netx": NETX_LAYOUT, "weight_orientation": WEIGHT_ORIENTATION,
                        "netx_from_nir": NETX_FROM_NIR, "decay_registers": DECAY_REGISTERS,
                        "netx_unread": NETX_UNREAD},
        "layers": [{"name": l.name, "index": k, "nir_nodes": list(l.sources), "netx_group": f"layer/{k + 1}",
                    "inputs": l.fan_in, "neurons": l.size,
                    "beta": sorted({float(b) for b in l.beta}), "threshold": sorted({float(t) for t in l.threshold}),
                    "alpha": sorted({float(a) for a in l.alpha})} for k, l in enumerate(network.layers)],
        "lava": {"netx_network": {"reset_interval": T, "reset_offset": lava.NETX_RESET_OFFSET},
                 "reset_offset_per_layer": [lava.layer_reset_offset(k) for k in range(len(network.layers))],
                 "delay_per_layer": lava.DENSE_DELAY_STEPS,
                 "output_lag": lava.output_lag(len(network.layers) - 1),
                 "run_config": lava.FIXED_RUN_CONFIG, "input_message_bits": 0,
                 "stream": ("samples back to back, T columns each, then output_lag empty columns; the gates "
                            "of sample n, step t (0-based) are read at column n T + t + output_lag")},
        "fixed_point": {"rule": FIXED_POINT_RULE, "state_shift": fp.STATE_SHIFT, "bias_exp": fp.BIAS_EXP,
                        "decay_unity": fp.DECAY_UNITY, "exact": exact["exact"], "exact_rule": EXACT_RULE,
                        "layers": [{"name": fx.name, "netx_group": f"layer/{k + 1}", "scale": fx.scale,
                                    "vth": int(fx.vth[0]), "iDecay": int(fx.du[0]) + 1, "du": int(fx.du[0]),
                                    "vDecay": int(fx.dv[0]), "exact": row["exact"],
                                    **({"why_not": row["why_not"]} if row["why_not"] else {})}
                                   for k, (fx, row) in enumerate(zip(fixed, exact["layers"]))]},
    }
    spec["prompt"] = {"where": "host",
                      "input": [{"name": "gate spikes", "shape": [T, "N", n_gates], "dtype": "uint8"},
                                {"name": "x", "shape": ["N", 3, L, L], "dtype": "float32"}],
                      "output": {"name": "prompted", "shape": ["N", 3, L, L], "dtype": "float32"},
                      "gate": host.gate, "factors": host.factors, "gates": n_gates,
                      "rank": rank, "bands": int(config.get("gates", 0)),
                      "gate_rule": GATE_RULE, "gate_layout": GATE_LAYOUTS[host.gate],
                      "formula": PROMPT_FORMULAS[host.gate], "sum_order": SUM_ORDER, "prompted": PROMPTED_RULE,
                      "tensors": {"file": HOST_FILE, **host_tensor_shapes(root / HOST_FILE)},
                      "factor_shapes": "prompt.B (copies, L, r), prompt.A (copies, r, L), prompt.mix (3, r) "
                                       "(shared factors; copies 1), prompt.group_of_line (L,) int64"}
    spec["backbone"] = onnx
    spec["bundle_files"] = bundle_files(fields, runner=onnx is not None)
    return spec


def base_spec(model: PromptedClassifier, fields: dict[str, Any]) -> dict[str, Any]:
    """What every bundle's spec begins with: format, version, target, classes and the ``preprocess`` stage."""
    config, classes = model.config, list(model.classes)
    L = int(config["image_size"])
    return {
        "format": SPEC_FORMAT, "version": SPEC_VERSION, "target": fields.get("target"), "classes": classes,
        "preprocess": {"where": "host",
                       "input": "an image: uint8 pixels (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA, any size",
                       "output": {"shape": ["N", 3, L, L], "dtype": "float32", "range": [0, 1]},
                       "rule": ("uint8 pixels / 255; grayscale repeated to 3 channels, RGBA drops alpha; resized to "
                                f"{L} x {L} with torch.nn.functional.interpolate(**resize) when the size differs, "
                                "then clipped to [0, 1]; no normalisation (it is inside the ONNX graph)"),
                       "resize": dict(RESIZE), "arithmetic": RESIZE_ARITHMETIC, "image_size": L,
                       "normalisation_inside_onnx": {"mean": model.backbone.mean.flatten().tolist(),
                                                     "std": model.backbone.std.flatten().tolist(),
                                                     "rule": "(prompted - mean) / std per channel"}},
    }


def runner_fields(ship: bool, why_not: str | None = None) -> dict[str, Any]:
    """``bundle_files.runner``: the copy of the reference runner this bundle carries, or why it carries none."""
    if ship:
        return {"file": RUNNER_FILE, "needs": RUNNER_NEEDS, "python": ">= 3.9",
                "usage": (f"cd into the bundle; python {RUNNER_FILE} . --images x.npy --mode fixed --precision fp32 "
                          "--out out.safetensors [--compare cosim/cosim_images.safetensors]"),
                "images": ("x.npy: uint8 pixels (N, H, W) grey or (N, 3, H, W), any size (preprocessed as the spec "
                           "says), or float32 (N, 3, L, L) already preprocessed"),
                "copy_of": "lorsp's deploy/runner/run_bundle.py (examples/run_bundle.py in the source tree)"}
    return {"file": None,
            "why_not_shipped": why_not or "this bundle has no spiking generator with an ONNX backbone to run"}


def bundle_files(fields: dict[str, Any], runner: bool, why_not: str | None = None) -> dict[str, Any]:
    """``bundle_files``: what the manifest lists, how its integrity is computed, what may be added later."""
    dataset = (fields.get("config") or {}).get("dataset")
    entry = DATASETS.get(dataset) if isinstance(dataset, str) and dataset in DATASETS.names() else None
    return {"manifest": MANIFEST_FILE, "artifacts": ARTIFACTS_RULE, "integrity": INTEGRITY_RULE,
            "not_listed": outputs.NOT_LISTED_RULE, "runner": runner_fields(runner, why_not),
            "cosim_images": {"file": f"{outputs.COSIM_DIR}/{outputs.IMAGES_FILE}", "format": outputs.IMAGES_FORMAT,
                             "rows": "one per image, in the split's order",
                             "tensors": {k: {"dtype": d, "meaning": m} for k, (d, m) in outputs.MEANINGS.items()},
                             "index": outputs.INDEX_RULE,
                             "images": ("the data set's uint8 pixels at those indices, preprocessed by the preprocess "
                                        "stage (run_bundle.py --images takes them at any size)"),
                             "dataset": dataset, "dataset_description": entry.description if entry else None}}

