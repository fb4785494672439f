"""How much the netx file's own settings matter: lava-dl runs of prompt_generator.net against lorsp's chip simulation.

    python benchmarks/netx_settings.py runs/demo/deploy --limit 64 --json runs/bench/netx_settings.json

Runs the bundle's netx file in lava-dl (``examples/lava_dl_netx.py``) on the first ``--limit``
test images, encoded as the spec says, under four settings, and compares the gates (open:
fired at least once; per image and gate) and the gate spikes with lorsp's fixed-point chip
simulation (the ``fast`` backend, spike-identical to Lava):

* ``file``: what the file carries (``reset_interval = T``, ``reset_offset = 1``, ``fixed_pt``,
  the output read ``output_lag`` steps late);
* ``lava-dl defaults``: ``Network(net_config)`` alone (no reset between samples), still
  ``fixed_pt`` and shifted;
* ``float run config``: the file's reset, but ``Loihi2SimCfg()`` (its default models, floating point) on the
  integers;
* ``no shift``: the file's settings, the output read at the input's steps.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

from deploy.bundle import NETX_FILE, open_bundle  # noqa: E402
from hw_sim.backends import get_backend  # noqa: E402
from hw_sim.lava_runtime import import_lava_runtime  # noqa: E402
from lava_dl_netx import netx_settings, run_netx  # noqa: E402
from lorsp.data import load_split_images  # noqa: E402
from lorsp.plumbing.provenance import machine  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle")
    p.add_argument("--limit", type=int, default=64)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    import_lava_runtime()
    bundle = open_bundle(args.bundle)
    config = bundle.config
    x, _ = load_split_images(config["dataset"], config["image_size"], args.limit, config.get("data_root"))
    spikes = bundle.host.encoding(x).numpy().astype(np.uint8)
    chip = get_backend("fast")(bundle.network, spikes, mode="fixed", timeout=600).layer_spikes[-1]
    own = netx_settings(Path(args.bundle) / NETX_FILE)
    variants = {"file": own, "lava-dl defaults": {**own, "reset_interval": None, "reset_offset": 0},
                "float run config": {**own, "select_tag": None}, "no shift": {**own, "output_lag": 0}}
    rows = {}
    for name, settings in variants.items():
        gates = run_netx(Path(args.bundle) / NETX_FILE, spikes, settings)
        rows[name] = {"gate_agreement": float(np.mean(gates.any(0) == chip.any(0))),
                      "spike_agreement": float(np.mean(gates == chip))}
        print(f"{name:17s} gates agree {100 * rows[name]['gate_agreement']:.2f}%, gate spikes "
              f"{100 * rows[name]['spike_agreement']:.2f}% ({args.limit} {config['dataset']} test images)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"bundle": args.bundle, "samples": args.limit, "machine": machine(),
                                               "variants": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
