"""What an ONNX file says about itself (``metadata_props``) and the opset domains it declares.

Every backbone file carries, beside lorsp's names (backbone, head, prompt, image size,
class names one per line):

* ``lorsp.preprocessing``: JSON, how the input image is made (value range, resize, the
  normalisation the graph does inside; :mod:`deploy.spec`'s ``preprocess`` stage);
* ``lorsp.precision``: ``fp32``, ``fp16``, ``int8`` or ``int8-trt``;
* ``lorsp.quantisation``: JSON, the scheme of that precision (none for fp32; for the int8
  files the QDQ format, activation and weight types, symmetry, per-channel weights, the
  calibration method and images).
"""
from __future__ import annotations

import json
from typing import Any, Mapping

import onnx

from lorsp.data.transforms import RESIZE
from lorsp.model import PromptedClassifier

STANDARD_DOMAINS = ("", "ai.onnx")


def preprocessing(model: PromptedClassifier, image_size: int) -> dict[str, Any]:
    """The input contract's preprocessing, from the transform's and the backbone's own constants."""
    return {"input": "x + P(x), x the image in [0, 1] (uint8 / 255, grey repeated to 3 channels) and P the prompt",
            "value_range": [0.0, 1.0], "image_size": image_size, "resize": dict(RESIZE),
            "normalisation_inside": {"mean": model.backbone.mean.flatten().tolist(),
                                     "std": model.backbone.std.flatten().tolist(), "rule": "(input - mean) / std"}}


def backbone_metadata(model: PromptedClassifier, image_size: int) -> dict[str, str]:
    """``metadata_props`` of the fp32 backbone file."""
    return {"lorsp.backbone": str(model.config.get("backbone")), "lorsp.head": str(model.config.get("head")),
            "lorsp.prompt": str(model.config.get("prompt")), "lorsp.image_size": str(image_size),
            "lorsp.classes": "\n".join(model.classes),
            "lorsp.preprocessing": json.dumps(preprocessing(model, image_size)),
            "lorsp.precision": "fp32", "lorsp.quantisation": json.dumps({"scheme": "none"})}


def update_metadata(proto: onnx.ModelProto, updates: Mapping[str, str]) -> None:
    """Set ``updates`` in ``proto.metadata_props``, keeping the other entries."""
    merged = {p.key: p.value for p in proto.metadata_props}
    merged.update(updates)
    onnx.helper.set_model_props(proto, merged)


def metadata(proto: onnx.ModelProto) -> dict[str, str]:
    """``metadata_props`` as a dict."""
    return {p.key: p.value for p in proto.metadata_props}


def drop_unused_opsets(proto: onnx.ModelProto) -> list[str]:
    """Remove the opset imports of domains no node uses (the standard domain stays); returns the dropped ones."""
    used = {node.domain for node in proto.graph.node} | {""}
    for function in proto.functions:
        used |= {node.domain for node in function.node} | {function.domain}
    keep = [o for o in proto.opset_import if o.domain in used or o.domain in STANDARD_DOMAINS]
    dropped = [o.domain for o in proto.opset_import if o not in keep]
    del proto.opset_import[:]
    proto.opset_import.extend(keep)
    return dropped
