"""``README.md`` of a bundle: the spec of :mod:`deploy.spec` written out for people.

Every value comes from the spec dict (the manifest's ``spec``); nothing is typed twice.
"""
from __future__ import annotations

import json
from typing import Any

CUDA_SNIPPET = '''```python
import numpy as np, onnxruntime as ort
wanted = ["CUDAExecutionProvider"]            # or ["TensorrtExecutionProvider"] with {file_trt}
session = ort.InferenceSession("{file}", providers=wanted)
if session.get_providers()[0] != wanted[0]:   # onnxruntime falls back to the CPU without a word
    raise SystemExit(f"{{wanted[0]}} is not available here: {{session.get_providers()}}")
logits = session.run(["{output}"], {{"{input}": prompted.astype(np.float32)}})[0]
```'''


def _json(value: Any) -> str:
    return f"`{json.dumps(value)}`"


def _rows(pairs: list[tuple[str, Any]]) -> list[str]:
    out = ["| field | value |", "|---|---|"]
    for key, value in pairs:
        text = value if isinstance(value, str) else json.dumps(value)
        escaped = text.replace("|", "\\|")
        out.append(f"| {key} | {escaped} |")
    return out


def _runner_line(files: dict[str, Any]) -> str:
    runner = files["runner"]
    if runner["file"]:
        return (f"A reference runner that uses only {', '.join(runner['needs'])} is `{runner['file']}` in this "
                f"bundle (a copy of {runner['copy_of']}): {runner['usage']}.")
    return (f"No reference runner is shipped: {runner['why_not_shipped']} (lorsp's runner, "
            f"deploy/runner/run_bundle.py, runs a spiking generator with an ONNX backbone).")


def _files_section(files: dict[str, Any]) -> list[str]:
    lines = ["## Files of this bundle", ""] + _rows([(k, files[k]) for k in ("manifest", "artifacts", "integrity",
                                                                               "not_listed")]) + [""]
    lines += ["Reference runner:", "", _runner_line(files), ""]
    cosim = files["cosim_images"]
    lines += [f"A co-simulation's per-image file, `{cosim['file']}` (format {cosim['format']}, "
              f"{cosim['rows']}; written by lorsp-cosim, not part of the bundle):", ""]
    lines += _rows([(name, f"{t['dtype']}: {t['meaning']}")
                    for name, t in cosim["tensors"].items()])
    lines += ["", f"Those images: {cosim['images']}. Data set {_json(cosim['dataset'])}"
              + (f": {cosim['dataset_description']}." if cosim.get("dataset_description") else "."), ""]
    return lines


def render_readme(spec: dict[str, Any]) -> str:
    """The README of a bundle with ``spec``."""
    bundle_files = spec["bundle_files"]
    lines = [f"# lorsp bundle ({spec['target']}), bundle spec version {spec['version']}", "",
             "Everything needed to run this bundle without lorsp. The same content, machine-readable, is "
             "`manifest.json`'s `spec` (a reader must refuse another `spec.version`); `manifest.json` also "
             "lists the sha256 of every file the export wrote (see 'Files of this bundle' for what it lists and "
             f"how its integrity is computed). {_runner_line(bundle_files)} A lava-dl recipe (it needs Lava and lava-dl) "
             "is examples/lava_dl_netx.py in lorsp's source tree, not in this bundle.",
             "", f"Classes (logit index order): {_json(spec['classes'])}.", ""]
    stages = [("preprocess", "1. Preprocessing"), ("encode", "2. Encoding (host)"),
              ("generator", "3. Spiking prompt generator (chip)"), ("prompt", "4. Prompt (host)"),
              ("backbone", "5. Backbone and head (ONNX)")]
    for key, title in stages:
        stage = spec.get(key)
        if not stage:
            continue
        lines += [f"## {title}", "", f"Runs on: {stage.get('where', '')}.", ""]
        flat = [(k, v) for k, v in stage.items() if k not in ("where", "lava", "fixed_point", "layers", "file_layout")]
        lines += _rows(flat) + [""]
        if key == "generator":
            lines += ["Layers (by name; the same layer's NIR nodes and netx group beside it):", ""]
            lines += _rows([(l["name"], {k: v for k, v in l.items() if k != "name"}) for l in stage["layers"]]) + [""]
            lines += ["The files (`prompt_generator.nir`, `prompt_generator.net`) and how their numbers relate:", ""]
            lines += _rows(list(stage["file_layout"].items())) + [""]
            lines += ["Lava / lava-dl settings:", ""] + _rows(list(stage["lava"].items())) + [""]
            fixed = stage["fixed_point"]
            lines += ["Fixed point (the integers in prompt_generator.net):", ""]
            lines += _rows([(k, v) for k, v in fixed.items() if k != "layers"])
            lines += _rows([(f"layer {layer['name']} ({layer['netx_group']})",
                             {k: v for k, v in layer.items() if k not in ("name", "netx_group")})
                            for layer in fixed["layers"]])[2:] + [""]
        if key == "backbone":
            files = stage["files"]
            lines += ["Open it on a GPU and check that the provider you asked for is the one in use:", "",
                      CUDA_SNIPPET.format(file=files.get("fp32", ""),
                                          file_trt=files.get("int8-trt", "the int8-trt file"),
                                          input=stage["input"]["name"], output=stage["output"]["name"]), ""]
    lines += _files_section(bundle_files)
    return "\n".join(lines) + "\n"
