"""A stored config (checkpoint, resume file, manifest) with a key no option of lorsp has, a value that is a list or
dict, or lists and dicts nested 100,000 deep (issue 28: a RecursionError traceback): one line naming the key, exit
code 2 through the real console scripts, nothing written."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from benchmarks.fuzz_hostile import DEEP, nested, save_nested
from deploy.bundle import MANIFEST_FILE
from deploy.manifest_schema import manifest_digest
from lorsp.plumbing.nesting import too_deep
from tests.conftest import assert_one_line_error, run_cli
from tests.test_export_loihi import shared_bundle, shared_checkpoint

def test_nesting_is_measured_without_recursion():
    assert too_deep(nested(DEEP), 16) == ("k",) * 16
    assert too_deep({"a": [{"b": torch.zeros(3)}]}, 3) is None
    assert too_deep([[[1]]], 2) == (0, 0)


@pytest.mark.slow
@pytest.mark.parametrize("edit,fragment", [
    (lambda c: c.__setitem__("treshold", 1.0), "config key 'treshold' is no option of this lorsp"),
    (lambda c: c.__setitem__("hidden", {"a": [1, 2]}), "config 'hidden' is a dict, not a single value"),
    (lambda c: c.__setitem__("zzz", nested(DEEP)), "['config']['zzz']['k']... nests lists or dicts deeper than 16"),
    (lambda c: c.__setitem__("hidden", [nested(DEEP)]), "['config']['hidden'][0]... nests lists or dicts deeper"),
], ids=["unknown-key", "dict-value", "deep-unknown-key", "deep-known-key"])
def test_a_checkpoint_config_key_that_is_unknown_or_nested_is_one_line_naming_it(tmp_path_factory, tmp_path, edit,
                                                                                  fragment):
    state = torch.load(shared_checkpoint(tmp_path_factory), weights_only=True)
    edit(state["config"])
    checkpoint = save_nested(state, tmp_path / "model.pt")
    proc = run_cli("pipeline.export_cli", "--target", "loihi", str(checkpoint), "-o", str(tmp_path / "out"),
                   "--no-simulate", timeout=300)
    assert_one_line_error(proc, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


@pytest.mark.slow
def test_a_resume_file_nested_too_deeply_is_one_line(tmp_path_factory, tmp_path):
    state = torch.load(shared_checkpoint(tmp_path_factory).parent / "last.pt", weights_only=True)
    state["optimizer"]["state"][0]["momentum_buffer"] = nested(DEEP)
    resume = save_nested(state, tmp_path / "last.pt")
    proc = run_cli("lorsp.train", "--resume", str(resume), "--out", str(tmp_path / "run"), "--quiet", timeout=300)
    assert_one_line_error(proc, "['optimizer']['state'][0]... nests lists or dicts deeper than 16 levels")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


@pytest.mark.slow
def test_a_manifest_config_with_an_unknown_key_is_one_line_even_resealed(tmp_path_factory, tmp_path):
    root = tmp_path / "b"
    shutil.copytree(shared_bundle(tmp_path_factory), root)
    manifest = json.loads((root / MANIFEST_FILE).read_text())
    manifest["config"]["payload"] = "x" * 1000
    manifest.pop("integrity")
    manifest["integrity"] = {"sha256": manifest_digest(manifest)}
    (root / MANIFEST_FILE).write_text(json.dumps(manifest))
    proc = run_cli("hw_sim.cli", str(root), "-o", str(tmp_path / "r"), "--samples", "4", "--quiet", timeout=120)
    assert_one_line_error(proc, "config key 'payload' is no option of this lorsp")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_options_removed_since_load_at_the_value_kept_and_are_refused_by_name_otherwise():
    """A config written while ``--usage-weight``, ``--border-bands``, ``--band-layout`` and ``--sparsity-feedback``
    existed (every checkpoint of that time holds them) loads when they hold what LoRSP does today; another value, or
    a removed ``--relay``, ``--gate`` or ``--train-generator`` choice, is one line naming the option and the last
    commit that runs it."""
    from lorsp.config import train_config_class
    from lorsp.plumbing.errors import LorspError
    from lorsp.stored_config import check_stored_config

    config = train_config_class()(prompt="lorsp", image_size=32).to_dict()
    old = {**config, "usage_weight": 0.0, "border_bands": 1, "band_layout": "blocks", "sparsity_feedback": 0.0}
    assert check_stored_config(old, "old.pt") is old
    for key, value, fragment, commit in [("usage_weight", 5.0, "--usage-weight", "567fd19"),
                                         ("border_bands", 2, "--border-bands", "567fd19"),
                                         ("usage_weight", 0, "--usage-weight", "567fd19"),
                                         ("band_layout", "comb", "--band-layout", "37f2411"),
                                         ("sparsity_feedback", 0.02, "--sparsity-feedback", "37f2411")]:
        with pytest.raises(LorspError, match=f"old.pt: config '{key}' = .* uses {fragment}, removed from lorsp "
                                             f"after commit {commit}"):
            check_stored_config({**old, key: value}, "old.pt")
    for key, value, commit in [("relay", "frame", "567fd19"), ("relay", "border", "567fd19"),
                               ("train_generator", "gate-biases", "567fd19"), ("relay", "learned", "37f2411"),
                               ("gate", "rank", "37f2411")]:
        with pytest.raises(LorspError, match=f"{value!r} was removed from lorsp after commit {commit}"):
            check_stored_config({**config, key: value}, "old.pt")


@pytest.mark.slow
def test_a_checkpoint_of_a_removed_try_is_one_line_through_the_exporter(tmp_path_factory, tmp_path):
    state = torch.load(shared_checkpoint(tmp_path_factory), weights_only=True)
    state["config"]["relay"] = "frame"
    checkpoint = save_nested(state, tmp_path / "model.pt")
    proc = run_cli("pipeline.export_cli", "--target", "loihi", str(checkpoint), "-o", str(tmp_path / "out"),
                   "--no-simulate", timeout=300)
    assert_one_line_error(proc, "'frame' was removed from lorsp after commit 567fd19")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
