"""A bounded fuzz run: a few hundred mutated NIR, netx, ONNX, host and manifest files, hostile checkpoints, resume
files, image folders and command lines, each refused in one line or read with every promise kept
(benchmarks/fuzz.py runs the same at >= 1,000 per format)."""
from __future__ import annotations

import pytest

from benchmarks.fuzz import FORMATS, Base, contract_onnx, fuzz, tally_table
from tests.test_export_loihi import shared_bundle, shared_checkpoint

CASES = 60
"""Files per format: 540 in all, about a minute here."""


@pytest.mark.slow
def test_every_mutated_file_is_refused_cleanly_or_read_correctly(tmp_path_factory, tmp_path):
    base = Base(shared_checkpoint(tmp_path_factory), shared_bundle(tmp_path_factory),
                contract_onnx(tmp_path / "contract.onnx")).load()
    tally = fuzz(base, FORMATS, CASES, seed=19, case_timeout=60.0)
    table = tally_table(tally)
    assert set(tally.counts) == set(FORMATS)
    for fmt, counts in tally.counts.items():
        assert counts["clean"] == CASES, f"{fmt}:\n{table}\n{[f for f in tally.failures if f['format'] == fmt]}"
        assert tally.refusals[fmt]["refused"] > 0, table  # the mutations do reach the checks
    accepted = sum(tally.refusals[fmt]["accepted"] for fmt in FORMATS)
    assert accepted > 0, table  # and harmless ones are still read
