"""The chip simulation that ``lorsp-export`` runs on a staged Loihi bundle before publishing it.

The writer (:mod:`export`) stages the files; this step opens them as ``lorsp-hwsim``
would (:func:`deploy.bundle.open_bundle`), simulates them in float and fixed point
(:func:`hw_sim.simulate.simulate`), writes the report into ``DIR/hw_sim`` and returns
the headline figures for the manifest.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from deploy.bundle import REPORT_DIR, open_bundle
from export.bundle_writer import Finish
from hw_sim.backends.base import MODES
from hw_sim.reports import write_bundle_report
from hw_sim.simulate import simulate

DEFAULT_TIMEOUT = 600.0


def simulation_step(out: Path, *, dataset: str | None, samples: int, timeout: float = DEFAULT_TIMEOUT,
                    progress: bool = True) -> Finish:
    """A ``finish`` step: simulate the staged bundle as ``lorsp-hwsim`` would, report into ``DIR/hw_sim``.

    ``dataset`` None: the model's own. The step returns the manifest field ``simulation``.
    """
    def run(stage: Path) -> dict[str, Any]:
        report = simulate(open_bundle(stage), dataset=dataset, samples=samples, modes=MODES,
                          timeout=timeout, progress=progress)
        report["bundle"]["path"] = str(out)
        write_bundle_report(report, stage / REPORT_DIR)
        return {"simulation": headline(report)}

    return run


def headline(report: dict) -> dict[str, Any]:
    """The figures of a simulation report worth a line in the manifest."""
    out: dict[str, Any] = {"report": f"{REPORT_DIR}/report.html", "samples": report["samples"],
                           "dataset": report["dataset"], "backend": report["backend"]}
    for mode, run in report["runs"].items():
        f = run["fidelity"]
        out[mode] = {"spike_agreement": f["spikes"]["overall"], "accuracy_chip": f["accuracy_chip"],
                     "accuracy_pytorch": f["accuracy_pytorch"], "prompt_rel_l2_diff": f["prompt_rel_l2_diff"],
                     "energy_nj_per_image": {e["table"]: e["total_nj"] for e in run["energy"]}}
    return out
