"""The report writer of a bundle simulation by the bundle's chip network kind (:mod:`deploy.chip_kinds`)."""
from __future__ import annotations

from pathlib import Path

from deploy.chip_kinds import CHAIN, PIXEL_GATES
from hw_sim.pixel_report import write_pixel_report
from hw_sim.report import write_report

WRITERS = {CHAIN: write_report, PIXEL_GATES: write_pixel_report}


def write_bundle_report(report: dict, out_dir: str | Path) -> list[Path]:
    """Write ``report`` (:func:`hw_sim.simulate.simulate`'s) as its kind's documents into ``out_dir``."""
    return WRITERS[report.get("chip_network", CHAIN)](report, out_dir)
