"""The training protocol end to end, on real data at a tiny scale."""
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

import lorsp
from lorsp.plumbing.errors import LorspError
from lorsp.train import TrainConfig, train
from tests.conftest import ROOT, assert_one_line_error, run_cli

pytestmark = pytest.mark.slow

TINY = ["--dataset", "sklearn-digits", "--image-size", "32", "--limit-train", "64", "--limit-test", "32",
        "--batch-size", "16", "--quiet"]


def tiny_config(**kw) -> TrainConfig:
    base = dict(dataset="sklearn-digits", image_size=32, limit_train=64, limit_test=32, batch_size=16,
                epochs=3, prompt="lorvp")
    base.update(kw)
    return TrainConfig(**base)


def test_cli_run_writes_a_complete_run_directory(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("lorsp.train", *TINY, "--prompt", "vp", "--epochs", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "curves.png", "last.pt",
                                                     "metrics.json", "model.pt"]
    assert not out.with_name("run.partial").exists()
    m = json.loads((out / "metrics.json").read_text())
    for key in ("dataset", "backbone", "prompt", "head", "rank", "image_size", "epochs", "seed",
                "val_accuracy", "test_accuracy", "params", "train_images_per_s", "versions", "git_commit"):
        assert key in m
    assert m["params"]["prompt"] == 3 * (32 * 32 - 24 * 24) and m["params"]["head"] == 1280 * 10 + 10
    assert 0.0 <= m["test_accuracy"] <= 1.0 and len(m["history"]) == 2
    model = lorsp.load(out / "model.pt")
    assert model.num_trainable_params() == m["params"]
    # an existing --out is refused without --force, and nothing is touched
    before = (out / "metrics.json").read_bytes()
    again = run_cli("lorsp.train", *TINY, "--epochs", "1", "--out", str(out))
    assert_one_line_error(again, "--force")
    assert (out / "metrics.json").read_bytes() == before


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path):
    full = train(tiny_config(), tmp_path / "full", progress=False)
    stopped = train(tiny_config(), tmp_path / "cut", stop_after_epoch=1, progress=False)
    assert stopped == {"stopped_after_epoch": 1}
    assert not (tmp_path / "cut").exists() and (tmp_path / "cut.partial" / "last.pt").exists()
    resumed = train(TrainConfig(), tmp_path / "cut", resume=tmp_path / "cut.partial" / "last.pt",
                    progress=False)
    for key in ("val_accuracy", "test_accuracy", "best_epoch", "test_loss"):
        assert resumed[key] == full[key], key
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in full["history"]]
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "model.pt", weights_only=True)
    for part in ("prompt", "head"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k])


def test_flm_head_maps_labels_and_trains_the_prompt_only(tmp_path):
    m = train(tiny_config(prompt="lorvp", head="flm", epochs=1), tmp_path / "flm", progress=False)
    assert m["params"]["head"] == 0 and m["params"]["prompt"] == 3 * 2 * 32 * 4
    mapping = torch.load(tmp_path / "flm" / "model.pt", weights_only=True)["head"]["mapping"]
    assert len(set(mapping.tolist())) == 10  # one ImageNet class per digit, one to one


def test_nan_loss_is_one_line(tmp_path):
    proc = run_cli("lorsp.train", *TINY, "--epochs", "1", "--lr", "1e30", "--out", str(tmp_path / "nan"))
    assert_one_line_error(proc, "loss became")
    assert not (tmp_path / "nan").exists()


@pytest.mark.parametrize("args,fragment", [
    (["--dataset", "imagenet-99"], "mnist-5k"),
    (["--backbone", "resnet9000"], "efficientnet_lite0"),
    (["--rank", "0"], "--rank"),
    (["--rank", "33"], "--rank"),
    (["--resume", "/nonexistent/last.pt"], "not found"),
])
def test_bad_arguments_are_one_line(tmp_path, args, fragment):
    proc = run_cli("lorsp.train", *TINY, "--epochs", "1", *args, "--out", str(tmp_path / "x"))
    assert_one_line_error(proc, fragment)
    assert not (tmp_path / "x").exists()


def test_torchrun_trains_with_two_processes(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    out = tmp_path / "ddp"
    import subprocess

    proc = subprocess.run([str(torchrun), "--nproc-per-node", "2", "-m", "lorsp.train", *TINY,
                           "--epochs", "2", "--device", "cpu", "--workers", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["world_size"] == 2 and m["n_train"] == 64 and m["device"] == "cpu"
    # rank 0 alone evaluates and writes: one summary line, one run directory, nothing left beside it
    assert proc.stdout.count("-> ") == 1 and [h["epoch"] for h in m["history"]] == [1, 2]
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "curves.png", "last.pt", "metrics.json",
                                                     "model.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]
    assert lorsp.load(out / "model.pt").num_trainable_params() == m["params"]
    shutil.rmtree(out)


def test_torchrun_refuses_an_existing_output_on_every_rank_without_hanging(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    out = tmp_path / "ddp"
    out.mkdir()
    (out / "keep.txt").write_text("keep")
    import subprocess

    proc = subprocess.run([str(torchrun), "--nproc-per-node", "2", "-m", "lorsp.train", *TINY,
                           "--epochs", "1", "--device", "cpu", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode != 0 and proc.stderr.count("error: ") == 2, proc.stderr[-3000:]  # one line per rank
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert all("already exists" in line for line in errors)  # (the Traceback after them is torchrun's own)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"] and sorted(tmp_path.iterdir()) == [out]


def test_few_shot_run_trains_on_k_images_per_class(tmp_path):
    out = tmp_path / "fs"
    proc = run_cli("lorsp.train", *TINY, "--prompt", "lorvp", "--epochs", "1", "--shots", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["shots"] == 2 and metrics["n_train"] == 20


def test_generator_learning_rate_scale_applies_to_the_generator_only():
    from lorsp.data import create_splits
    from lorsp.model import build_model
    from lorsp.prompts.lorsp import BAND_DEFAULTS
    from lorsp.train import make_optimizer

    cfg = tiny_config(prompt="lorsp", generator_lr_scale=10.0, prompt_lr=0.5, train_generator="all")
    model = build_model(cfg.to_dict(), create_splits("sklearn-digits", 32, limit_train=8).classes)
    opt, _ = make_optimizer(model, cfg, steps=4)
    generator = {id(p) for p in model.prompt.spiking_generator.parameters()}
    by_lr = {g["lr"]: {id(p) for p in g["params"]} for g in opt.param_groups}
    factors = {id(model.prompt.A), id(model.prompt.B), id(model.prompt.mix)}
    assert by_lr[cfg.lr * 10.0] == generator
    assert by_lr[0.5] == factors
    assert by_lr[cfg.lr] == {id(p) for p in model.head.parameters()}
    # band gating as measured keeps its generator's start: no group trains it
    frozen = tiny_config(prompt="lorsp", prompt_lr=0.5, **BAND_DEFAULTS)
    model = build_model(frozen.to_dict(), create_splits("sklearn-digits", 32, limit_train=8).classes)
    opt, _ = make_optimizer(model, frozen, steps=4)
    trained = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not trained & {id(p) for p in model.prompt.spiking_generator.parameters()}
    with pytest.raises(LorspError, match="generator-lr-scale"):
        tiny_config(prompt="lorsp", generator_lr_scale=0.0).validate()


@pytest.mark.parametrize("args,fragments", [
    (["--prompt", "vp", "--rank", "8"], ("--rank", "--prompt vp")),
    (["--prompt", "lorsp", "--gate", "pixel", "--gates", "8"], ("--gates", "--gate pixel")),
    (["--prompt", "none", "--time-steps", "4"], ("--time-steps", "--prompt none")),
])
def test_an_option_the_method_does_not_take_is_one_line_before_any_data(tmp_path, args, fragments):
    # a dataset that cannot load: the refusal must come before anything is loaded or trained
    data = tmp_path / "no-such-folder"
    proc = run_cli("lorsp.train", *TINY, "--dataset", f"imagefolder:{data}", "--epochs", "1", *args,
                   "--out", str(tmp_path / "x"))
    assert_one_line_error(proc, "does not apply", *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("args,fragment", [
    (["--relay", "learned"], "argument --relay: 'learned' was removed from lorsp after commit 37f2411"),
    (["--gate", "rank"], "argument --gate: 'rank' was removed from lorsp after commit 37f2411"),
    (["--band-layout", "comb"], "argument --band-layout: it was removed from lorsp after commit 37f2411"),
    (["--sparsity-feedback", "0.02"], "argument --sparsity-feedback: it was removed from lorsp after commit 37f2411"),
    (["--relay", "frame"], "argument --relay: 'frame' was removed from lorsp after commit 567fd19"),
])
def test_a_retired_mode_is_refused_naming_the_commit_that_last_ran_it(args, fragment):
    """A removed choice or option is one line naming the commit where its code lived (docs/method.md keeps its
    figures); a kept choice of the same option still parses."""
    from lorsp.train import build_parser

    with pytest.raises(LorspError) as refused:
        build_parser().parse_args(["--prompt", "lorsp", *args, "--out", "x"])
    assert fragment in str(refused.value) and "\n" not in str(refused.value)
    assert vars(build_parser().parse_args(["--prompt", "lorsp", "--relay", "open", "--out", "x"]))["relay"] == "open"


def test_a_retired_mode_on_the_command_line_exits_2_before_any_data(tmp_path):
    proc = run_cli("lorsp.train", *TINY, "--dataset", f"imagefolder:{tmp_path / 'none'}", "--prompt", "lorsp",
                   "--relay", "learned", "--out", str(tmp_path / "x"))
    assert_one_line_error(proc, "'learned' was removed from lorsp after commit 37f2411", "run that commit")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_default_lorsp_metrics_keep_their_keys(tmp_path):
    m = train(tiny_config(prompt="lorsp", epochs=1, limit_train=16, limit_test=16), tmp_path / "l", progress=False)
    for key in ("rank", "time_steps", "pool", "hidden", "gates", "beta", "threshold", "gate", "sparsity_weight",
                "sparsity_target", "sparsity_warmup", "gate_bias", "surrogate_slope", "generator_lr_scale"):
        assert key in m, key
    assert json.loads((tmp_path / "l" / "config.json").read_text()) == tiny_config(
        prompt="lorsp", epochs=1, limit_train=16, limit_test=16).to_dict()


def test_resume_refuses_a_typed_option_that_differs_and_a_resume_file_with_a_negative_rate(tmp_path):
    """``--resume`` continues the run's own config: ``--epochs 3`` against its 2 is refused in one line (the same
    value typed again is accepted); a resume file whose learning rate is -1 (gradient ascent) is refused too."""
    import torch

    from tests.conftest import assert_one_line_error, run_cli

    out = tmp_path / "run"
    args = ["--prompt", "lorvp", "--dataset", "sklearn-digits", "--image-size", "32", "--epochs", "2",
            "--limit-train", "32", "--limit-test", "16", "--batch-size", "16", "--quiet"]
    train(TrainConfig(prompt="lorvp", dataset="sklearn-digits", image_size=32, epochs=2, limit_train=32,
                      limit_test=16, batch_size=16), out, stop_after_epoch=1, progress=False)
    last = out.with_name("run.partial") / "last.pt"
    assert_one_line_error(run_cli("lorsp.train", *args, "--epochs", "3", "--resume", str(last), "--out", str(out)),
                          "--epochs 3 differs from its 2")
    state = torch.load(last, weights_only=True)
    state["optimizer"]["param_groups"][0]["lr"] = -1.0
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    assert_one_line_error(run_cli("lorsp.train", "--resume", str(bad), "--out", str(tmp_path / "other")),
                          "lr -1.0 must be a finite number at least 0")
    done = run_cli("lorsp.train", *args, "--resume", str(last), "--out", str(out))
    assert done.returncode == 0, done.stderr[-1500:]


def test_a_run_records_the_commit_its_process_built_it_with(monkeypatch):
    from lorsp.train import stages

    monkeypatch.setattr(stages, "git_commit", lambda: "commit-at-start")
    t = stages.Training(*[None] * 6)
    monkeypatch.setattr(stages, "git_commit", lambda: "commit-at-the-end")   # a commit made while it trains
    assert t.git_commit == "commit-at-start"
