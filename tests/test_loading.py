"""``--workers``: the training order and the figures do not depend on the number of loader processes."""
from __future__ import annotations

import json

import pytest
import torch

from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.loading import EpochSampler, check_workers, epoch_indices, make_loader
from tests.conftest import assert_one_line_error, run_cli

TIMING = ("train_images_per_s", "train_seconds", "git_commit")
"""Keys that measure the machine, not the run (and the commit, the same here anyway)."""


def without_timing(value):
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def test_the_sampler_gives_each_epoch_its_own_order_and_every_rank_a_share():
    sampler = EpochSampler(10, seed=3)
    first = list(sampler)
    sampler.set_epoch(1)
    assert sorted(first) == list(range(10)) and list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first == epoch_indices(10, 3, 0)
    shares = [epoch_indices(10, 3, 0, rank, 3) for rank in range(3)]
    assert [len(s) for s in shares] == [4, 4, 4] and set(sum(shares, [])) == set(range(10))


def test_a_loader_with_workers_yields_the_batches_of_one_without():
    data = torch.utils.data.TensorDataset(torch.arange(40.0).view(20, 2), torch.arange(20))
    batches = {}
    for workers in (0, 2):
        sampler = EpochSampler(20, seed=1)
        loader = make_loader(data, 6, seed=1, workers=workers, sampler=sampler)
        assert loader.persistent_workers == (workers > 0) and not loader.pin_memory
        batches[workers] = [[b.tolist() for b in batch] for epoch in (0, 1)
                            for batch in (sampler.set_epoch(epoch), loader)[1]]
    assert batches[0] == batches[2]
    # batches for a GPU come in pinned memory (the loader is only built here: pinning needs CUDA to iterate)
    assert make_loader(data, 6, seed=1, workers=2, device=torch.device("cuda", 0)).pin_memory
    before = torch.get_rng_state()
    list(make_loader(data, 6, seed=1, workers=0))
    assert torch.equal(torch.get_rng_state(), before)  # the global generator is not drawn from


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_a_bad_worker_count_is_refused(bad):
    with pytest.raises(LorspError, match="--workers must be a whole number >= 0"):
        check_workers(bad)


@pytest.mark.slow
def test_zero_and_two_workers_give_the_same_metrics_json(tmp_path):
    args = ["--prompt", "lorsp", "--dataset", "sklearn-digits", "--image-size", "32", "--epochs", "2",
            "--limit-train", "48", "--limit-test", "16", "--batch-size", "16", "--device", "cpu", "--quiet"]
    metrics = {}
    for workers in (0, 2):
        out = tmp_path / f"w{workers}"
        proc = run_cli("lorsp.train", *args, "--workers", str(workers), "--out", str(out))
        assert proc.returncode == 0, proc.stderr[-2000:]
        metrics[workers] = json.loads((out / "metrics.json").read_text())
    assert len(metrics[0]["history"]) == 2 and "firing_rate" in metrics[0]
    assert without_timing(metrics[0]) == without_timing(metrics[2])
    a = torch.load(tmp_path / "w0" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "w2" / "model.pt", weights_only=True)
    assert all(torch.equal(a["prompt"][k], b["prompt"][k]) for k in a["prompt"])


@pytest.mark.slow
def test_lorsp_train_refuses_negative_workers_in_one_line(tmp_path):
    proc = run_cli("lorsp.train", "--dataset", "sklearn-digits", "--workers", "-2", "--out", str(tmp_path / "x"))
    assert_one_line_error(proc, "argument --workers", "from 0 to 1024", "'-2'")
    assert not (tmp_path / "x").exists()
