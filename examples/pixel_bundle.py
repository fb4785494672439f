"""A pixel-gated LoRSP checkpoint deployed as a bundle: export, simulation and co-simulation, summed up in one JSON.

    OMP_NUM_THREADS=1 .venv/bin/python examples/pixel_bundle.py runs/x/model.pt --bundle runs/x-deploy \\
        --hwsim-out runs/x-hwsim --samples 64 --cosim-limit 256 --json docs/data/pixel-gates/x-bundle.json

Runs, as a user would (each command's own checks and one-line errors):

1. ``lorsp-export --target all MODEL.pt -o BUNDLE --samples N`` (skipped when ``BUNDLE`` already holds a
   manifest: that bundle is then opened and used, and the summary says so);
2. ``lorsp-hwsim BUNDLE --mode both --backend fast --samples N -o HWSIM``;
3. ``lorsp-cosim BUNDLE --mode fixed --precision fp32 --limit M`` (its report under ``BUNDLE/cosim``);

then writes the figures of the three reports worth keeping (manifest's kind and exactness, the export's
simulation, spike/prompt/prediction agreement and energy per image per mode, co-simulation agreement and
energy per stage) with the machine and commit to ``--json``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

from deploy.bundle import MANIFEST_FILE
from hw_sim.cli import main as hwsim
from hw_sim.cosim_cli import main as cosim
from lorsp.plumbing.fileio import file_sha256, write_json
from lorsp.plumbing.provenance import git_commit, machine
from pipeline.export_cli import main as export


def quietly(command, argv: list[str]) -> None:
    """Run a CLI ``main`` on ``argv``; SystemExit on any exit code but 0."""
    with contextlib.redirect_stdout(io.StringIO()):
        code = command(argv)
    if code:
        raise SystemExit(code)


def summary(checkpoint: str, bundle: Path, hwsim_out: Path, exported: bool) -> dict:
    """The figures of the bundle's manifest, the simulation report and the co-simulation report."""
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    hw = json.loads((hwsim_out / "report.json").read_text())
    co = json.loads((bundle / "cosim" / "cosim.json").read_text())
    runs = {}
    for mode, run in hw["runs"].items():
        f, a = run["fidelity"], run["activity"]
        runs[mode] = {"gate_spike_agreement": f["spikes"]["overall"], "all_spikes_equal": f["spikes"]["exact"],
                      "prompt_max_abs_diff": f["prompt_max_abs_diff"], "accuracy_chip": f["accuracy_chip"],
                      "accuracy_pytorch": f["accuracy_pytorch"], "prediction_agreement": f["prediction_agreement"],
                      "input_spikes_per_image": a["input_spikes_per_image"],
                      "gate_spikes_per_image": a["spikes_per_image"][0], "synops_per_image": a["synops_total_per_image"],
                      "energy_nj_per_image": {e["table"]: e["total_nj"] for e in run["energy"]},
                      "seconds": run["performance"]["seconds"]}
    energy = co["energy"]
    return {
        "command": "examples/pixel_bundle.py", "machine": machine(), "git_commit": git_commit(),
        "checkpoint": {"path": str(checkpoint), "sha256": file_sha256(checkpoint)},
        "export": {"ran_here": exported, "chip_network": manifest.get("chip_network"),
                   "network": manifest["network"], "fixed_point": manifest["fixed_point"],
                   "fixed_point_exact": manifest["fixed_point_exact"]["exact"],
                   "simulation": manifest.get("simulation"),
                   "files": sorted(manifest["artifacts"]), "integrity": manifest["integrity"]["sha256"]},
        "hwsim": {"dataset": hw["dataset"], "samples": hw["samples"], "backend": hw["backend"], "runs": runs,
                  "chip_fit": {name: {"cores_needed": fit["cores_needed"], "fits": fit["fits"]}
                               for name, fit in hw.get("chip_fit", {}).items()}},
        "cosim": {"dataset": co["dataset"], "split": co["split"], "samples": co["samples"], "mode": co["mode"],
                  "precision": co["precision"], "agreement": co["agreement"], "accuracy": co["accuracy"],
                  "max_abs_logit_diff": co["max_abs_logit_diff"], "gate_spikes_exact": co["spikes"]["exact"],
                  "energy_nj_per_image": {s["stage"]: s["nj"] for s in energy["stages"]},
                  "scenarios_nj_per_image": {s["name"]: s["total_nj"] for s in energy["scenarios"]},
                  "generator_dense_nj_per_image": energy["generator_dense"]["total_nj"],
                  "chip_table": energy["chip_table"], "backbone_precision": energy["precision"],
                  "pipeline_ms_per_image": co["latency"]["pipeline_ms_per_image"]},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", metavar="MODEL.pt")
    p.add_argument("--bundle", required=True, help="the export directory (reused when it holds a manifest)")
    p.add_argument("--hwsim-out", required=True, help="lorsp-hwsim's report directory (replaced)")
    p.add_argument("--samples", type=int, default=64, help="test images for the export's checks and lorsp-hwsim")
    p.add_argument("--cosim-limit", type=int, default=256, help="test images for lorsp-cosim")
    p.add_argument("--json", required=True, help="where the summary goes")
    args = p.parse_args(argv)
    bundle = Path(args.bundle)
    exported = not (bundle / MANIFEST_FILE).is_file()
    if exported:
        quietly(export, ["--target", "all", args.checkpoint, "-o", str(bundle), "--samples", str(args.samples),
                         "--quiet"])
    quietly(hwsim, [str(bundle), "--mode", "both", "--backend", "fast", "--samples", str(args.samples),
                    "-o", args.hwsim_out, "--force", "--quiet"])
    quietly(cosim, [str(bundle), "--mode", "fixed", "--precision", "fp32", "--limit", str(args.cosim_limit),
                    "--force", "--quiet"])
    out = summary(args.checkpoint, bundle, Path(args.hwsim_out), exported)
    write_json(Path(args.json), out)
    print(json.dumps({"hwsim": out["hwsim"]["runs"], "cosim": out["cosim"]["agreement"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
