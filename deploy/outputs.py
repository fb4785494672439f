"""What tools write into a bundle's directory after the export, described once: for the bundle spec and for them.

``lorsp-cosim DIR`` writes its report into ``DIR/cosim`` by default, among it
``cosim_images.safetensors`` (:mod:`hw_sim.cosim_images` writes it; its tensors are named and
explained here, so that the bundle's README, written at export time, says what they hold). Such
outputs are results about the bundle, not part of it: the manifest does not list them and its
integrity does not cover them (:data:`NOT_LISTED_RULE`).
"""
from __future__ import annotations

COSIM_DIR = "cosim"
"""``lorsp-cosim``'s default output directory, inside the bundle's."""
IMAGES_FILE = "cosim_images.safetensors"
IMAGES_FORMAT = "lorsp-cosim-images"
INDEX_RULE = ("the image's index in its data set's list of items, not its position in the split (0..N-1): in the "
              "data set's own test list when it has one, else in its one list of items (in the order its loader "
              "gives; lorsp.data.splits). "
              "The test split's order is seeded: rng = numpy.random.default_rng(0); perm = rng.permutation(n) (n: "
              "the items of that one list, or of the training list); a set with its own test list of m items "
              "takes rng.permutation(m), the second draw; a set without takes perm[:round(0.2 n)]. "
              "lorsp-cosim --limit N runs the first N of that order")
MEANINGS = {
    "index": ("int64", INDEX_RULE),
    "label": ("int64", "its label"),
    "pred_pipeline": ("int64", "the split pipeline's prediction (chip simulator + ONNX backbone)"),
    "pred_pytorch": ("int64", "the PyTorch model's prediction"),
    "logits_pipeline": ("float32", "the ONNX backbone's logits in the pipeline"),
    "gate_counts": ("int32", "spikes of every gate neuron in the T steps, from the chip simulator"),
    "gates": ("uint8", "1 where a gate is open: its neuron fired at least once"),
    "prompted_sha256": ("uint8", "sha256 of each prompted image x + P(x) as float32 bytes in C order"),
}
"""Every tensor of ``cosim_images.safetensors``: dtype and meaning (one row per image, in the split's order)."""
NOT_LISTED_RULE = ("files written into the bundle's directory after the export (lorsp-cosim's report, by default "
                   f"{COSIM_DIR}/: cosim.json, cosim.md, cosim.html, PNG figures and {IMAGES_FILE}; a lorsp-hwsim "
                   "report written there with -o) are results about the bundle, not part of it: manifest.json does "
                   "not list them, its integrity does not cover them, and no reader of the bundle reads them. "
                   "cosim.json names the bundle it ran on by the manifest's integrity sha256 (bundle.manifest_integrity)"
                   f" and describes {IMAGES_FILE} under per_image")
