"""The pure parts of the benchmark scripts: verdicts, step budgets, grids, run plans, the README block."""
import pytest

import argparse
from pathlib import Path

from benchmarks.baselines import check_train_argv, map_runs, parse_method, plan_run
from benchmarks.few_shot import epochs_for
from benchmarks.lr_select import parse_grid
from benchmarks.results_doc import README_END, README_START, against_lorvp, replace_block, verdict
from benchmarks.robustness import summarise


def row(mean, std):
    return {"test_accuracy_mean": mean, "test_accuracy_std": std}


def test_verdict_calls_a_tie_within_the_larger_std():
    assert verdict(row(0.90, 0.01), row(0.895, 0.002)) == ("ties", pytest.approx(0.5))
    assert verdict(row(0.92, 0.005), row(0.90, 0.005))[0] == "wins"
    assert verdict(row(0.88, 0.005), row(0.90, 0.01))[0] == "loses"


def test_few_shot_epochs_give_the_same_step_budget():
    assert epochs_for(1, 10, 32, 60) == 60      # 10 images: one step per epoch
    assert epochs_for(4, 10, 32, 60) == 30      # 40 images: two steps per epoch
    assert epochs_for(16, 10, 32, 60) == 12     # 160 images: five steps per epoch


def test_method_specs_and_grids_parse():
    assert parse_method("vp:prompt-lr=20") == ("vp", ("--prompt-lr", "20"), "vp-prompt-lr-20")
    assert parse_method("lorsp") == ("lorsp", (), "lorsp")
    assert parse_grid("lorsp:gate=rowcol@0.02,0.2") == ("lorsp:gate=rowcol", [0.02, 0.2])
    from lorsp.plumbing.errors import LorspError

    for bad in ("lorvp", "lorvp@0.2,x"):
        with pytest.raises(LorspError, match="grid entry"):
            parse_grid(bad)


def test_readme_block_is_replaced_and_required():
    text = f"a\n{README_START}\nold\n{README_END}\nb\n"
    assert replace_block(text, "new") == f"a\n{README_START}\nnew\n{README_END}\nb\n"
    with pytest.raises(SystemExit):
        replace_block("no markers", "new")


def test_robustness_summary_averages_severities_and_seeds():
    seed = {"clean": 0.9, **{f"{c}/{s}": 0.9 - 0.1 * s for c in ("gaussian_noise", "gaussian_blur", "contrast")
                             for s in (1, 2, 3)}}
    out = summarise([seed, seed])
    assert out["mean_drop"]["mean"] == pytest.approx(0.2) and out["mean_drop"]["std"] == 0.0
    assert out["per_corruption"]["contrast"]["mean"] == pytest.approx(0.7)


def test_robustness_scores_are_cached_per_model_file(tmp_path, lite0):
    import json

    import torch

    from benchmarks.robustness import cached_score_run
    from lorsp.model import build_model

    cfg = {"dataset": "sklearn-digits", "backbone": "efficientnet_lite0", "prompt": "lorvp", "head": "lp",
           "rank": 2, "image_size": 32}
    model = build_model(cfg, [str(i) for i in range(10)], backbone=lite0)
    path = tmp_path / "seed0" / "model.pt"
    path.parent.mkdir()
    torch.save(model.checkpoint_state(), path)
    first = cached_score_run(path, 4, 0, progress=False)
    assert set(first) == {"clean"} | {f"{c}/{s}" for c in ("gaussian_noise", "gaussian_blur", "contrast")
                                      for s in (1, 2, 3)}
    cache = path.parent / "robustness-limit4-seed0.json"
    record = json.loads(cache.read_text())
    record["scores"]["clean"] = -1.0  # a mark: reused while model.pt is the same file
    cache.write_text(json.dumps(record))
    assert cached_score_run(path, 4, 0, progress=False)["clean"] == -1.0
    with torch.no_grad():
        model.head.weight.add_(1.0)  # a retrained model: scored again
    torch.save(model.checkpoint_state(), path)
    assert cached_score_run(path, 4, 0, progress=False)["clean"] >= 0.0


def test_gate_usage_accounts_for_every_gate(tmp_path, lite0):
    import torch

    from benchmarks.gate_usage import gate_usage
    from lorsp.model import build_model

    cfg = {"dataset": "mnist-5k", "backbone": "efficientnet_lite0", "prompt": "lorsp", "head": "lp",
           "rank": 2, "image_size": 32, "gates": 8, "gate_bias": 0.2,  # some gates silent, some switching
           "gate": "rowcol", "encoding": "pool", "factors": "per-channel", "train_generator": "all"}
    torch.manual_seed(0)
    model = build_model(cfg, [str(i) for i in range(10)], backbone=lite0)
    path = tmp_path / "model.pt"
    torch.save(model.checkpoint_state(), path)
    usage = gate_usage(path, 12)
    assert usage["images"] == 12 and usage["gates_per_side"] == 8
    assert usage["always_open"] + usage["always_closed"] + usage["switching"] == 16
    for side in ("closed_rows", "closed_cols"):
        assert usage[side]["min"] <= usage[side]["mean"] <= usage[side]["max"] <= 8
    shares = usage["open_share_per_gate"]
    assert sum(0 < s < 1 for s in shares) == usage["switching"]
    assert 1 <= usage["distinct_gate_patterns"] <= 12
    from benchmarks.gate_usage import markdown

    text = markdown({"settings": {"runs": "r", "method": "lorsp", "limit": 12}, "table": {"mnist-5k": {"0": usage}}})
    assert "8 row and 8 column gates" in text and f"mean {usage['switching']:.1f} of 16." in text
    assert text.count("| mnist-5k | 0 |") == 1


def test_an_interrupted_benchmark_run_is_resumed_or_restarted(tmp_path):
    from benchmarks.baselines import restart_options

    out = tmp_path / "mnist-5k" / "lorsp" / "seed0"
    assert restart_options(out) == []  # fresh
    stage = out.with_name("seed0.partial")
    stage.mkdir(parents=True)
    assert restart_options(out) == ["--force"]  # killed before its first checkpoint
    (stage / "last.pt").write_bytes(b"")
    assert restart_options(out) == ["--resume", str(stage / "last.pt")]


@pytest.mark.parametrize("jobs", [1, 2])
def test_map_runs_keeps_order_and_counts_only_trained_runs(jobs, capsys, tmp_path):
    from benchmarks.engine import EngineOptions

    runs = [{"id": i, "reused": i % 3 == 0} for i in range(7)]   # runs 0, 3, 6 were already complete
    engine = EngineOptions(folder=tmp_path / "jobs", jobs=jobs, poll_s=0.2)
    assert map_runs(lambda r: r, runs, jobs, desc="test runs", engine=engine) == runs
    last = capsys.readouterr().err.strip().split("\r")[-1]
    assert last.startswith("test runs") and "4/4" in last
    # with 2 at a time every item was a submitit job of its own (7 job folders); with 1, none
    assert len(list((tmp_path / "jobs").glob("*/*_result.pkl"))) == (7 if jobs > 1 else 0)


def _fails_on_two(x: int) -> int:
    if x == 2:
        raise ValueError("two is refused")
    return x


def test_a_failed_job_stops_the_grid_with_one_line_naming_its_log(tmp_path):
    from benchmarks.engine import EngineOptions, run_jobs
    from lorsp.plumbing.errors import LorspError

    engine = EngineOptions(folder=tmp_path / "jobs", jobs=1, poll_s=0.2)
    seen = []
    with pytest.raises(LorspError) as err:
        run_jobs(_fails_on_two, [0, 1, 2, 3, 4], engine, lambda i, r: seen.append(r))
    message = str(err.value)
    assert "\n" not in message and "ValueError: two is refused" in message and "its log: " in message
    assert Path(message.split("its log: ")[1]).is_file()
    assert seen == [0, 1]  # in order, one at a time; nothing after the failure was submitted
    assert len([d for d in (tmp_path / "jobs").iterdir() if d.name.isdigit()]) == 3  # jobs 0, 1 and 2


@pytest.mark.slow
def test_a_tiny_grid_fans_out_as_submitit_jobs_and_a_rerun_reuses_every_run(tmp_path):
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT

    out = tmp_path / "grid"
    argv = [sys.executable, "benchmarks/baselines.py", "--datasets", "sklearn-digits", "--methods", "vp", "lorvp",
            "--seeds", "0", "--image-size", "32", "--epochs", "1", "--batch-size", "16", "--limit-train", "32",
            "--limit-test", "16", "--jobs", "2", "--device", "cpu", "--out", str(out)]
    first = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    table = json.loads((out / "results.json").read_text())["table"]["sklearn-digits"]
    assert set(table) == {"vp", "lorvp"} and all(0 <= t["test_accuracy_mean"] <= 1 for t in table.values())
    jobs = sorted(p.name for p in (out / ".submitit").iterdir() if p.name.isdigit())
    assert len(jobs) == 2  # one job per run
    from benchmarks.baselines import running_commit, same_code

    clean = same_code(running_commit(), running_commit())  # a modified checkout reuses only with --reuse-stale
    again = subprocess.run(argv + ([] if clean else ["--reuse-stale"]), cwd=ROOT, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert sorted(p.name for p in (out / ".submitit").iterdir() if p.name.isdigit()) == jobs  # none submitted again
    rerun = json.loads((out / "results.json").read_text())
    assert rerun["table"]["sklearn-digits"] == table and len(rerun["reused_stale"]) == (0 if clean else 2)


def protocol(**over) -> argparse.Namespace:
    base = dict(backbone="efficientnet_lite0", rank=4, image_size=128, epochs=5, batch_size=32, lr=0.02,
                limit_train=1000, limit_test=1000, prompt_lr=None, out="runs/x", jobs=2)
    return argparse.Namespace(**{**base, **over})


def test_a_run_plan_is_lorsp_train_options_and_a_folder():
    run = plan_run("mnist-5k", "lorsp", 2, protocol(prompt_lr=0.2), ("--gate", "rowcol"), "lorsp-gate-rowcol")
    assert str(run.out) == "runs/x/mnist-5k/lorsp-gate-rowcol/seed2" and not run.complete
    assert run.command.startswith("lorsp-train --dataset mnist-5k --backbone efficientnet_lite0 --prompt lorsp")
    assert "--seed 2 --prompt-lr 0.2 --gate rowcol --quiet --out runs/x/mnist-5k/lorsp-gate-rowcol/seed2" in run.command


def test_a_finished_run_is_reused_only_under_the_config_it_was_trained_with(tmp_path):
    """A run finished before a default changed (LoRSP's beta 0.9 -> 0.5) is stale and trained again; options the
    method does not declare, and options added later that take their legacy value, do not make it stale (its
    commit is left aside here with --reuse-stale: the next tests check that part)."""
    import json

    run = plan_run("mnist-5k", "lorsp", 0, protocol(out=str(tmp_path), prompt_lr=0.2, reuse_stale=True),
                   ("--rank", "8"), "lorsp")
    run.out.mkdir(parents=True)
    (run.out / "metrics.json").write_text("{}")
    saved = dict(run.config, mask_width=run.config["mask_width"] + 1)  # an SMM option: not LoRSP's
    del saved["relay_noise"]  # added later; its legacy value is the default
    del saved["precision"]  # added by --precision; every run before it was fp32
    (run.out / "config.json").write_text(json.dumps(saved))
    assert run.complete and not run.stale
    (run.out / "config.json").write_text(json.dumps(dict(saved, beta=0.9)))
    assert run.stale and not run.complete
    (run.out / "config.json").write_text(json.dumps(dict(saved, precision="bf16")))
    assert run.stale
    (run.out / "config.json").write_text("{not json")
    assert run.stale


def test_a_removed_option_at_the_value_it_kept_does_not_make_a_run_stale(tmp_path):
    """A config written while an option existed still defines the run it did when the option holds the value the
    method kept (``band_layout`` "blocks"); at a removed value (``"comb"``) the run is of removed code: stale."""
    import json

    run = plan_run("mnist-5k", "lorsp", 0, protocol(out=str(tmp_path), prompt_lr=0.2, reuse_stale=True),
                   ("--rank", "8"), "lorsp")
    run.out.mkdir(parents=True)
    (run.out / "metrics.json").write_text("{}")
    (run.out / "config.json").write_text(json.dumps(dict(run.config, band_layout="blocks", sparsity_feedback=0.0)))
    assert run.complete and not run.stale
    (run.out / "config.json").write_text(json.dumps(dict(run.config, band_layout="comb")))
    assert run.stale and not run.complete
    (run.out / "config.json").write_text(json.dumps(dict(run.config, sparsity_feedback=0.02)))
    assert run.stale


def test_an_option_the_runs_mode_does_not_use_does_not_make_it_stale(tmp_path):
    """A band-gated run's config written before ``pixel_input`` existed (pixel gating's option) defines the same run
    as today's planned config, which holds it; an option the mode uses (``relay``) still does."""
    import json

    run = plan_run("mnist-5k", "lorsp", 0, protocol(out=str(tmp_path), prompt_lr=0.2, reuse_stale=True),
                   ("--gate", "band", "--rank", "8"), "lorsp-gate-band")
    run.out.mkdir(parents=True)
    (run.out / "metrics.json").write_text("{}")
    older = {k: v for k, v in run.config.items() if k != "pixel_input"}
    (run.out / "config.json").write_text(json.dumps(older))
    assert run.complete and not run.stale
    (run.out / "config.json").write_text(json.dumps(dict(older, relay="open")))
    assert run.stale


OTHER_COMMIT = "0123456789abcdef0123456789abcdef01234567"
"""A commit that is not the running code's: the fake finished runs below were "trained" there."""


def finished_run(run, accuracy: float = 0.5, commit: str = OTHER_COMMIT) -> None:
    """Fixture data: ``run``'s folder as lorsp-train leaves a finished run (its planned config, a metrics.json
    recording ``commit``); nothing is trained."""
    import json

    run.out.mkdir(parents=True)
    (run.out / "config.json").write_text(json.dumps(run.config))
    seed = int(run.out.name.removeprefix("seed"))
    (run.out / "metrics.json").write_text(json.dumps({
        "test_accuracy": accuracy, "val_accuracy": accuracy, "seed": seed, "params": {"prompt": 10, "head": 20},
        "train_images_per_s": 1.0, "git_commit": commit}))


def test_only_a_clean_run_of_the_running_commit_is_the_same_code():
    from benchmarks.baselines import same_code

    commit = OTHER_COMMIT
    assert same_code(commit, commit)
    assert not same_code("f" * 40, commit)                      # another commit
    assert not same_code(commit + "+dirty", commit + "+dirty")  # a modified checkout trained it, or runs now
    assert not same_code(commit, commit + "+dirty") and not same_code(commit + "+dirty", commit)
    assert not same_code("unknown", "unknown") and not same_code(None, commit)


def test_a_run_from_another_commit_is_trained_again_unless_reuse_stale(tmp_path):
    """Reuse is keyed on the code too: a finished run of the planned config made at another commit is not
    complete (its folder is replaced: --force), whatever the running checkout; --reuse-stale reuses it."""
    from benchmarks.baselines import retrain_options, why_retrained

    run = plan_run("sklearn-digits", "vp", 0, protocol(out=str(tmp_path)))
    finished_run(run)
    assert run.made_at == OTHER_COMMIT and run.other_code and not run.stale
    assert not run.complete and retrain_options(run) == ["--force"]
    assert f"trained at commit {OTHER_COMMIT}, not by the running code" in why_retrained(run)
    (run.out / "metrics.json").write_text("{}")  # no commit recorded: not known to be this code either
    assert run.made_at is None and run.other_code and not run.complete
    again = plan_run("sklearn-digits", "vp", 0, protocol(out=str(tmp_path), reuse_stale=True))
    assert again.complete and again.other_code


def test_reuse_stale_reuses_runs_of_another_commit_and_the_table_says_so(tmp_path, capsys):
    """baselines.py --reuse-stale on finished runs of another commit: nothing is trained, and the JSON lists every
    run with its commit (reused_stale), the Markdown says how many came from another commit."""
    import json

    from benchmarks.baselines import main

    options = dict(out=str(tmp_path), image_size=32, epochs=1, batch_size=16, limit_train=32, limit_test=16)
    for seed in (0, 1):
        finished_run(plan_run("sklearn-digits", "vp", seed, protocol(**options)), accuracy=0.5 + seed / 10)
    argv = ["--datasets", "sklearn-digits", "--methods", "vp", "--seeds", "0", "1", "--image-size", "32", "--epochs",
            "1", "--batch-size", "16", "--limit-train", "32", "--limit-test", "16", "--out", str(tmp_path),
            "--reuse-stale"]
    assert main(argv) == 0
    assert "$ lorsp-train" not in capsys.readouterr().out  # no run was trained
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["settings"]["reuse_stale"] is True
    assert result["reused_stale"] == [{"run": str(tmp_path / "sklearn-digits" / "vp" / f"seed{k}"),
                                       "git_commit": OTHER_COMMIT} for k in (0, 1)]
    assert result["table"]["sklearn-digits"]["vp"]["test_accuracy_mean"] == pytest.approx(0.55)
    text = (tmp_path / "results.md").read_text()
    note = next(line for line in text.splitlines() if line.startswith("Reused with --reuse-stale"))
    assert "2 of 2 runs come from another commit" in note and "(0123456789ab)" in note
    from benchmarks.results_doc import stale_line

    assert stale_line(result) == note  # docs/results.md says it too, for a table collected from such runs


def test_a_run_plan_passes_the_device_and_refuses_cuda_where_there_is_none():
    import torch

    from lorsp.plumbing.errors import LorspError

    assert "--device" not in plan_run("mnist-5k", "vp", 0, protocol(device="auto")).command
    run = plan_run("mnist-5k", "vp", 0, protocol(device="cpu"))
    assert "--seed 0 --device cpu --quiet" in run.command and str(run.out) == "runs/x/mnist-5k/vp/seed0"
    if not torch.cuda.is_available():
        with pytest.raises(LorspError, match="--device cuda:1: torch was built without CUDA|no CUDA device"):
            plan_run("mnist-5k", "vp", 0, protocol(device="cuda:1"))


@pytest.mark.parametrize("change, fragment", [
    (dict(dataset="mnist5k"), "unknown dataset 'mnist5k'"),
    (dict(extra=("--gates-per-row", "3")), "unrecognized arguments: --gates-per-row 3"),
    (dict(extra=("--gate", "ranks")), "invalid choice: 'ranks'"),
    (dict(extra=("--sparsity-warmup", "nan")), "--sparsity-warmup: must be a finite number >= 0"),
    (dict(protocol=protocol(backbone="resnet9000")), "unknown backbone 'resnet9000'"),
    (dict(protocol=protocol(prompt_lr=-1.0)), "--prompt-lr: must be a finite number > 0"),
])
def test_bad_runs_are_refused_before_any_training(change, fragment):
    from lorsp.plumbing.errors import LorspError

    with pytest.raises(LorspError) as err:
        plan_run(change.get("dataset", "mnist-5k"), "lorsp", 0, change.get("protocol", protocol()),
                 change.get("extra", ()))
    assert fragment in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("prompt, options, expected", [
    ("vp", ("--prompt-lr", "20"), {"prompt_lr": 20.0}),
    ("lorvp", ("--rank", "8"), {"rank": 8}),
    ("lorsp", ("--gate", "rowcol", "--time-steps", "4"), {"gate": "rowcol", "time_steps": 4, "gates": 16}),
])
def test_good_lorsp_train_commands_pass_the_check_with_their_options(prompt, options, expected):
    config = check_train_argv(["--dataset", "sklearn-digits", "--prompt", prompt, *options, "--out", "x"])
    assert config.dataset == "sklearn-digits" and config.prompt == prompt
    assert {k: getattr(config, k) for k in expected} == expected


@pytest.mark.parametrize("argv, fragment", [
    (("--prompt", "vp", "--rank", "8"), "--rank does not apply to --prompt vp"),
    (("--prompt", "lorsp", "--gate", "pixel", "--gates", "8"), "--gates does not apply to --gate pixel"),
])
def test_the_check_refuses_options_the_method_does_not_take(argv, fragment):
    from lorsp.plumbing.errors import LorspError

    with pytest.raises(LorspError, match=fragment):
        check_train_argv(["--dataset", "sklearn-digits", *argv, "--out", "x"])


def test_one_line_says_where_lorsp_wins_ties_and_loses_against_lorvp():
    table = {"a": {"lorvp:prompt-lr=0.2": row(0.90, 0.01), "lorsp:prompt-lr=0.2": row(0.93, 0.01)},
             "b": {"lorvp": row(0.90, 0.01), "lorsp": row(0.905, 0.01), "lorsp:gate=rowcol": row(0.5, 0.0)},
             "c": {"none": row(0.9, 0.0), "lorvp": row(0.90, 0.005), "lorsp": row(0.88, 0.005)},
             "d": {"none": row(0.9, 0.0), "lorsp": row(0.99, 0.0)}}   # no LoR-VP row: not counted
    line = against_lorvp({"table": table, "settings": {"backbone": "efficientnet_lite2", "seeds": [0, 1, 2]}})
    assert line == ("- **efficientnet_lite2**, LoRSP against LoR-VP over 3 seeds (points): wins on a (+3.0); "
                    "ties on b (+0.5); loses on c (-2.0).")
    assert against_lorvp({"table": {"d": table["d"]}, "settings": {"backbone": "x", "seeds": [0]}}) is None


def test_train_speed_summary_takes_medians_over_rounds():
    from benchmarks.train_speed import summarise

    without = {"lorvp": [40.0, 50.0, 45.0], "lorsp": [30.0, 40.0, 35.0]}
    with_fix = {"lorvp": [100.0, 80.0, 90.0], "lorsp": [100.0, 50.0, 90.0]}
    interleaved = {"lorvp": [100.0, 80.0, 80.0], "lorsp": [100.0, 50.0, 100.0]}
    rows = summarise(without, with_fix, interleaved)
    assert rows["lorvp"]["with_fix"] == 90.0 and rows["lorsp"]["without_fix"] == 35.0
    assert rows["lorsp"]["fix_gain"] == pytest.approx(90 / 35)
    assert rows["lorsp"]["ratio_to_lorvp"] == pytest.approx(1.0)
    # LoRSP against LoR-VP comes from the interleaved rounds: medians 80 and 100, rounds 1.0, 1.6, 0.8
    assert rows["lorsp"]["step_time_vs_lorvp"] == pytest.approx(0.8)
    assert rows["lorsp"]["step_time_vs_lorvp_range"] == pytest.approx([0.8, 1.6])
    assert rows["lorsp"]["rounds"]["interleaved_with_fix"] == [100.0, 50.0, 100.0]
    assert "step_time_vs_lorvp" not in rows["lorvp"]


@pytest.mark.slow
def test_train_speed_times_every_method_in_every_round():
    from benchmarks.train_speed import measure_rounds

    rates = measure_rounds(["lorvp", "lorsp", "lorsp:rank=2"], image_size=32, batch_size=4, steps=1, rounds=3)
    assert set(rates) == {"lorvp", "lorsp", "lorsp:rank=2"}
    assert all(len(r) == 3 and all(v > 0 for v in r) for r in rates.values())


@pytest.mark.slow
def test_train_speed_times_another_revision_beside_this_tree(capsys):
    import argparse

    from benchmarks.train_speed import against_baseline

    args = argparse.Namespace(methods=["lorvp", "lorsp"], image_size=32, batch_size=2, steps=1, rounds=2,
                              baseline="HEAD", baseline_alternations=1)
    rows = against_baseline(args)
    assert rows["revision"] == "HEAD" and set(rows["now_over_then"]) == {"lorvp", "lorsp"}
    assert all(len(rows[k][m]) == 2 for k in ("images_per_s_now", "images_per_s_then") for m in args.methods)
    assert rows["step_time_vs_lorvp"]["lorsp"]["then"] > 0 and rows["step_time_vs_lorvp"]["lorsp"]["now"] > 0
    with pytest.raises(SystemExit) as e:   # a revision git does not know: one line, exit 2
        against_baseline(argparse.Namespace(**{**vars(args), "baseline": "no-such-revision"}))
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--baseline no-such-revision: git archive failed" in err and err.count("\n") == 1


def test_train_speed_takes_method_specs_as_the_benchmarks_write_them():
    from benchmarks.train_speed import method_config, summarise
    from lorsp.plumbing.errors import LorspError

    cfg = method_config("lorsp:gate=band,rank=2,relay=open,train-generator=none", 32)
    assert (cfg.prompt, cfg.image_size, cfg.rank, cfg.gate, cfg.relay, cfg.train_generator) == \
        ("lorsp", 32, 2, "band", "open", "none")
    with pytest.raises(LorspError, match="--relay does not apply to --gate pixel"):  # the default gates every pixel
        method_config("lorsp:rank=2,relay=open", 32)
    runs = {"lorvp": [80.0, 80.0], "lorsp": [100.0, 100.0], "lorsp:rank=2": [40.0, 40.0]}
    rows = summarise(runs, runs, runs)
    assert rows["lorsp"]["step_time_vs_lorvp"] == pytest.approx(0.8)
    assert rows["lorsp:rank=2"]["step_time_vs_lorvp"] == pytest.approx(2.0)


def test_speed_section_is_replaced_in_place():
    from benchmarks.results_doc import replace_section

    text = "# R\n\n## Ablation\n\nA\n\n## Speed\n\nold 1\nold 2\n\n## Not in this document yet\n\nx\n"
    new = replace_section(text, ["## Speed", "", "new", ""])
    assert new == "# R\n\n## Ablation\n\nA\n\n## Speed\n\nnew\n\n## Not in this document yet\n\nx\n"
    assert replace_section("# R\n\n## Speed\n\nold\n", ["## Speed", "", "new", ""]) == "# R\n\n## Speed\n\nnew\n\n"
    with pytest.raises(SystemExit):
        replace_section("# R\n\n## Ablation\n", ["## Speed", "", "new", ""])


def test_only_speed_rewrites_one_section_from_the_bench_json(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    bench = tmp_path / "bench"
    bench.mkdir()
    rows = {"lorvp": {"fix_gain": 2.0}, "lorsp": {"fix_gain": 2.5, "step_time_vs_lorvp": 1.04,
                                                  "step_time_vs_lorvp_range": [0.98, 1.07]}}
    (bench / "train_speed.json").write_text(json.dumps({"machine": "test machine", "git_commit": "0123456789abcdef",
                                                        "images_per_s": rows}))
    out = tmp_path / "results.md"
    out.write_text("# Results\n\n## Few-shot\n\nkept\n\n## Speed\n\nstale\n")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "results_doc.py"
    cmd = [sys.executable, str(script), "--only-speed", "--speed-dir", str(bench), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "## Few-shot\n\nkept\n" in text and "stale" not in text
    assert "Machine: test machine; measured at commit 0123456789ab." in text and "| 1.040x (rounds 0.98-1.07) | <= 1.2x: met |" in text
    empty = subprocess.run(cmd[:-4] + ["--speed-dir", str(tmp_path / "none"), "--out", str(out)],
                           capture_output=True, text=True, timeout=120)
    assert empty.returncode == 2 and empty.stderr.startswith("error: no benchmark JSON")


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--rounds", "-1"], ["--methods", "lorsp", "nope"]])
def test_train_speed_refuses_bad_options_before_timing(argv):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "train_speed.py"
    done = subprocess.run([sys.executable, str(script), *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1].count("error") == 1


def test_accuracy_tables_show_the_per_instance_figures_as_means_over_seeds_or_na():
    from benchmarks.results_doc import accuracy_markdown

    def summary(method, seeds=(0, 1)):
        return {**row(0.9, 0.01), "val_accuracy_mean": 0.9, "params": {"prompt": 10, "head": 20},
                "prompt_sparsity_mean": 0.5, "firing_rate_mean": None, "seeds": list(seeds),
                "command": f"lorsp-train --prompt {method} --quiet --out runs/x/a/{method}/seedS"}

    table = {"a": {"lorsp": summary("lorsp"), "lorvp": summary("lorvp"), "none": summary("none")}}
    settings = dict(backbone="efficientnet_lite0", image_size=32, epochs=1, batch_size=16, lr=0.02,
                    limit_train=64, limit_test=32, seeds=[0, 1])
    runs = {("a", "lorsp"): [{"prompt_unique_mask_share": 0.5, "prompt_mask_flip_share": 0.2},
                             {"prompt_unique_mask_share": 0.7, "prompt_mask_flip_share": 0.3}],
            ("a", "lorvp"): [{"prompt_unique_mask_share": 0.0, "prompt_mask_flip_share": 0.0},
                             {"test_accuracy": 0.9}],   # a seed from before the figures
            ("a", "none"): [{}, {}]}                     # metrics.json missing
    text = accuracy_markdown(table, settings, runs)
    lines = text.splitlines()
    header = next(k for k, line in enumerate(lines) if line.startswith("| dataset |"))
    assert lines[header].endswith("| firing rate | unique zero masks (%) | zero-mask flips (%) |")
    assert lines[header + 1] == "|" + "---|" * 10
    assert lines[header + 2].startswith("| a | LoRSP |") and lines[header + 2].endswith("| - | 60.0 | 25.0 |")
    assert lines[header + 3].endswith("| - | n/a | n/a |") and lines[header + 4].endswith("| - | n/a | n/a |")
    assert lines[header + 5] == "" and lines[header + 6].startswith("Unique zero masks:")
    assert "    lorsp-train --prompt lorsp --quiet --out runs/x/a/lorsp/seedS" in lines


def test_accuracy_tables_read_the_figures_from_the_runs_metrics_json(tmp_path):
    import json

    from benchmarks.results_doc import accuracy_markdown, seed_metrics

    for seed, share in ((0, 0.25), (1, 0.75)):
        run = tmp_path / "a" / "lorsp-gate-rowcol" / f"seed{seed}"
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(json.dumps({"prompt_unique_mask_share": share,
                                                      "prompt_mask_flip_share": share / 10}))
    cell = {**row(0.9, 0.0), "val_accuracy_mean": 0.9, "params": {"prompt": 1, "head": 1},
            "prompt_sparsity_mean": 0.0, "firing_rate_mean": 0.1, "seeds": [0, 1],
            "command": f"lorsp-train --gate rowcol --out {tmp_path}/a/lorsp-gate-rowcol/seedS"}
    table = {"a": {"lorsp:gate=rowcol": cell, "vp": {**cell, "command": "lorsp-train --prompt vp"}}}
    settings = dict(backbone="b", image_size=32, epochs=1, batch_size=16, lr=0.02, limit_train=64,
                    limit_test=32, seeds=[0, 1], out=str(tmp_path))
    found = seed_metrics(table, settings)
    assert [m["prompt_unique_mask_share"] for m in found[("a", "lorsp:gate=rowcol")]] == [0.25, 0.75]
    assert found[("a", "vp")] == [{}, {}]   # OUT/a/vp/seed<k> has no metrics.json
    rows = [line for line in accuracy_markdown(table, settings).splitlines() if line.startswith("| a |")]
    assert rows[0].endswith("| 0.100 | 50.0 | 5.0 |") and rows[1].endswith("| 0.100 | n/a | n/a |")


def test_precision_benchmark_measures_gradient_error_and_picks_its_seeds():
    import torch

    from benchmarks.precision import gradient_error, seeds_of

    ref = torch.tensor([[[[3.0, 4.0]]], [[[1.0, 0.0]]]])  # two images, norms 5 and 1
    moved = ref.clone()
    moved[0, 0, 0, 0] = 0.0  # image 0 off by 3 (relative 0.6), one entry flushed to zero
    e = gradient_error(ref, moved)
    assert e["relative_error"] == pytest.approx(3 / 26 ** 0.5)
    assert e["per_image_max"] == pytest.approx(0.6) and e["per_image_median"] == pytest.approx(0.3)
    assert e["underflow_share"] == pytest.approx(0.25)
    assert gradient_error(ref, ref)["relative_error"] == 0.0
    args = argparse.Namespace(seeds=[0, 1, 2], fp16_seeds=[0])
    assert seeds_of("fp16", args) == [0] and seeds_of("bf16", args) == [0, 1, 2]
    assert seeds_of("fp16", argparse.Namespace(seeds=[4], fp16_seeds=None)) == [4]


@pytest.mark.slow
def test_device_compare_finds_no_difference_between_two_cpu_runs_and_refuses_unlike_ones(tmp_path):
    from benchmarks.device_compare import compare
    from lorsp.plumbing.errors import LorspError
    from lorsp.train import TrainConfig, train

    cfg = dict(dataset="sklearn-digits", image_size=32, limit_train=32, limit_test=16, batch_size=16, epochs=1,
               prompt="lorsp")
    for name in ("a", "b"):
        train(TrainConfig(**cfg), tmp_path / name, progress=False, device="cpu")
    train(TrainConfig(**{**cfg, "seed": 1}), tmp_path / "c", progress=False, device="cpu")
    pair = compare(tmp_path / "a", tmp_path / "b")
    assert pair["a"]["device"] == pair["b"]["device"] == "cpu" and pair["prompt"] == "lorsp"
    assert pair["test_accuracy_difference"] == 0 and pair["train_loss_largest_difference"] == 0
    assert pair["prompt_tensors_largest_difference"] == 0 and pair["head_tensors_largest_difference"] == 0
    with pytest.raises(LorspError, match="configs differ in seed"):
        compare(tmp_path / "a", tmp_path / "c")


def test_slurm_is_refused_in_one_line_where_there_is_none_and_its_job_script_carries_the_options(tmp_path,
                                                                                                  monkeypatch):
    import shutil as sh

    from benchmarks.engine import EngineOptions, _executor, engine_options
    from lorsp.plumbing.errors import LorspError

    args = argparse.Namespace(jobs=8, timeout_min=90, slurm_gpus=1, engine="slurm", engine_folder=None,
                              out=str(tmp_path), slurm_partition="gpu", device="cuda")
    if sh.which("srun") is None:
        with pytest.raises(LorspError, match="--engine slurm: no SLURM here"):
            engine_options(args)
    # no SLURM here to submit to: an executable named srun on PATH only gets past submitit's check for
    # one, so that the sbatch script it would submit can be read; nothing is submitted
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 1\n")
    (fake / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{__import__('os').environ['PATH']}")
    options = engine_options(args)
    assert options == EngineOptions(folder=tmp_path / ".submitit", engine="slurm", jobs=8, gpus=1, timeout_min=90,
                                    slurm_partition="gpu")
    script = _executor(options)._make_submission_file_text("python -m x", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --gpus-per-node=1"):
        assert line in script


@pytest.mark.parametrize("script,args,fragment", [
    ("baselines.py", ["--jobs", "0"], "argument --jobs: must be an integer from 1 to"),
    ("baselines.py", ["--device", "gpu"], "argument --device: must be one of auto|cpu|cuda|cuda:N"),
    ("precision.py", ["--fp16-seeds", "-1"], "argument --fp16-seeds: must be an integer from 0 to"),
])
def test_issue18s_benchmark_options_are_range_checked_while_parsed(script, args, fragment, capsys):
    import importlib
    module = importlib.import_module(f"benchmarks.{script[:-3]}")
    with pytest.raises(SystemExit) as exit_info:
        module.main(args)
    assert exit_info.value.code == 2 and fragment in capsys.readouterr().err


def test_prompt_scale_measures_the_start_gradient_and_refuses_nothing_to_do():
    import subprocess
    import sys

    from benchmarks.prompt_scale import start_gradient

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "prompt_scale.py")], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: nothing to measure")
    rows = [start_gradient("sklearn-digits", spec, 8, 0, 32) for spec in ("lorvp", "lorsp:rank=2")]
    assert [r["b_entries"] for r in rows] == [3 * 32 * 4, 32 * 2]
    assert all(r["b_gradient_norm"] > 0 for r in rows)  # B = 0 at the start, but its gradient is not


def test_masked_prompt_lays_each_mask_over_the_dense_prompt_and_refuses_a_missing_run(tmp_path, capsys):
    """benchmarks/masked_prompt.py: each variant's zeros are the ones it names (none everywhere, the comb on
    odd rows, a LoRSP run's per-image mask or its complement), the refit head separates separable features,
    and a run that is not there is one ``error:`` line with exit code 2."""
    import numpy as np
    import torch

    from benchmarks.masked_prompt import main, refit_accuracy, variants
    from lorsp.data import create_splits
    from lorsp.model import build_model
    from lorsp.prompts.lorsp import BAND_DEFAULTS
    from lorsp.train import TrainConfig

    splits = create_splits("sklearn-digits", 32, limit_train=32, limit_test=8)
    x = torch.stack([splits.train[i][0] for i in range(32)])
    torch.manual_seed(0)
    dense = build_model(TrainConfig(prompt="lorvp", image_size=32).to_dict(), splits.classes).eval()
    sparse = build_model(TrainConfig(prompt="lorsp", image_size=32, **BAND_DEFAULTS).to_dict(),  # band masks, calibrated
                         splits.classes).eval()
    sparse.prompt.calibrate(x)
    with torch.no_grad():
        dense.prompt.B.normal_()
        sparse.prompt.B.normal_()
        prompts = {name: fn(x) for name, fn in variants(dense, {"s": sparse}, [0.5], 32).items()}
        own_open = (sparse.prompt(x) != 0).any(1, keepdim=True).expand_as(x)
    assert torch.all(prompts["none"] == 0) and torch.all(prompts["dense"] != 0)
    assert torch.equal(prompts["dense x 0.5"], 0.5 * prompts["dense"])
    assert torch.all(prompts["dense * comb"][:, :, 1::2] == 0) and torch.all(prompts["dense * comb"][:, :, 0::2] != 0)
    assert torch.equal(prompts["dense * mask(s)"] != 0, own_open) and 0 < own_open.float().mean() < 1
    assert torch.equal(prompts["dense * (1 - mask(s))"] != 0, ~own_open)
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 20)
    separable = rng.normal(size=(40, 5)) + 4.0 * labels[:, None]
    assert refit_accuracy(separable, labels, separable, labels) == 1.0
    with pytest.raises(SystemExit) as exit_info:
        main(["--runs", str(tmp_path), "--dataset", "sklearn-digits"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: no such model:") and err.count("\n") == 1
