"""docs/results.md from committed data: the collect step (benchmarks/results_data.py), the rebuild, the Targets."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import results_data, results_doc, results_targets, results_union

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = dict(backbone="efficientnet_lite0", image_size=32, epochs=1, batch_size=16, lr=0.02, limit_train=64,
                limit_test=32, seeds=[0, 1], datasets=["a"], methods=["lorsp", "lorvp"], table_name="results",
                out="runs/t")


def cell(method, mean=0.9, std=0.01, prompt=10, sparsity=0.0, seeds=(0, 1)):
    return {"test_accuracy_mean": mean, "test_accuracy_std": std, "val_accuracy_mean": mean,
            "params": {"prompt": prompt, "head": 20}, "prompt_sparsity_mean": sparsity, "firing_rate_mean": None,
            "seeds": list(seeds), "command": f"lorsp-train --prompt {method} --out runs/t/a/{method}/seedS"}


def table(**by_dataset):
    return {"settings": SETTINGS, "machine": "test machine", "git_commit": "0123456789abcdef", "table": by_dataset}


def make_runs(root: Path) -> Path:
    """A baselines table under ``root``/runs/t with two cells of two seeds, each run with a metrics.json."""
    res = table(a={"lorsp": cell("lorsp", sparsity=0.6), "lorvp": cell("lorvp", prompt=20)})
    (root / "runs" / "t").mkdir(parents=True)
    (root / "runs" / "t" / "results.json").write_text(json.dumps(res))
    for method in ("lorsp", "lorvp"):
        for seed in (0, 1):
            run = root / "runs" / "t" / "a" / method / f"seed{seed}"
            run.mkdir(parents=True)
            (run / "metrics.json").write_text(json.dumps({
                "test_accuracy": 0.9, "prompt_unique_mask_share": 0.95 + seed / 100, "prompt_mask_flip_share": 0.2,
                "git_commit": "abc", "history": [{"epoch": 1}], "versions": {"torch": "x"}, "prompt": method}))
    return root / "runs" / "t" / "results.json"


def collect(root: Path, data: Path, *extra: str) -> None:
    results_data.main(["--root", str(root), "--data", str(data), "--baselines", "runs/t/results.json",
                       "--other-backbones", *extra])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_collect_is_idempotent_slims_the_seeds_and_mirrors_what_exists(tmp_path):
    source = make_runs(tmp_path / "repo")
    data = tmp_path / "data"
    collect(tmp_path / "repo", data)   # relative inputs and recorded --out from --root, not the cwd
    first = snapshot(data)
    assert set(first) == {"baselines.json"} | {f"seeds/baselines/a/{m}/seed{k}.json"
                                                for m in ("lorsp", "lorvp") for k in (0, 1)}
    seed = json.loads(first["seeds/baselines/a/lorsp/seed1.json"])
    assert seed == {"test_accuracy": 0.9, "prompt_unique_mask_share": 0.96, "prompt_mask_flip_share": 0.2,
                    "git_commit": "abc", "prompt": "lorsp"}   # no history, no versions
    assert list(seed) == sorted(seed)
    assert list(json.loads(first["baselines.json"])["table"]["a"]) == ["lorsp", "lorvp"]   # the table's order
    collect(tmp_path / "repo", data)
    assert snapshot(data) == first
    shutil.rmtree(tmp_path / "repo" / "runs" / "t" / "a" / "lorvp")   # a run gone: its copies go
    collect(tmp_path / "repo", data)
    assert set(snapshot(data)) == set(first) - {f"seeds/baselines/a/lorvp/seed{k}.json" for k in (0, 1)}
    assert not (data / "seeds" / "baselines" / "a" / "lorvp").exists()
    source.unlink()   # nothing left to collect: refused, the data folder kept
    with pytest.raises(SystemExit):
        collect(tmp_path / "repo", data)
    assert (data / "baselines.json").exists()


def test_speed_only_collects_make_bench_json_and_leaves_the_rest(tmp_path):
    make_runs(tmp_path / "repo")
    data = tmp_path / "data"
    collect(tmp_path / "repo", data)
    before = snapshot(data)
    (tmp_path / "repo" / "runs" / "t" / "results.json").unlink()   # would go in a whole collect, stays here
    (tmp_path / "repo" / "runs" / "bench").mkdir()
    (tmp_path / "repo" / "runs" / "bench" / "fastsim.json").write_text('{"b": 1, "a": 2}')
    results_data.main(["--root", str(tmp_path / "repo"), "--data", str(data), "--speed-only"])
    assert snapshot(data) == before | {"bench/fastsim.json": b'{\n "b": 1,\n "a": 2\n}\n'}


def test_the_doc_is_rebuilt_from_the_collected_data_without_the_runs(tmp_path):
    repo = tmp_path / "repo"
    make_runs(repo)
    shutil.copy(repo / "runs" / "t" / "results.json", repo / "lite2.json")
    collect(repo, tmp_path / "data", "lite2.json")
    assert (tmp_path / "data" / "backbone-1-efficientnet_lite0.json").exists()
    shutil.rmtree(repo)
    out = tmp_path / "doc" / "results.md"
    results_doc.main(["--data", str(tmp_path / "data"), "--out", str(out), "--figures", str(tmp_path / "doc" / "fig"),
                      "--readme", "", "--example-prompts", str(tmp_path / "none.png")])
    rows = [line for line in out.read_text().splitlines() if line.startswith("| a | LoRSP |")]
    assert len(rows) == 2 and all(r.endswith("| 95.5 | 20.0 |") for r in rows)   # main table and the other backbone
    assert "## Targets" in out.read_text()


def test_results_doc_rebuilds_its_doc_byte_for_byte_from_the_committed_json(tmp_path):
    """docs/results.md is generated from docs/data/results/ alone (the figures are not compared)."""
    if not results_data.DATA.is_dir():
        pytest.skip("docs/data/results/ is not committed yet: run `python benchmarks/results_data.py` after the "
                    "benchmarks, then commit it with docs/results.md")
    out = tmp_path / "results.md"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "results_doc.py"), "--out", str(out),
                    "--figures", str(tmp_path / "figures"), "--readme", ""], check=True, capture_output=True)
    assert out.read_text() == (ROOT / "docs" / "results.md").read_text()


def seeds(unique, flip):
    return [{"prompt_unique_mask_share": u, "prompt_mask_flip_share": f} for u, f in zip(unique, flip)]


def at_threshold():
    """Every input of the Targets, each target's figure exactly at its threshold (or count at its minimum)."""
    lorsp = "lorsp:prompt-lr=0.1,rank=8"
    datasets = {d: {"none": cell("none", 0.900, prompt=0), lorsp: cell("lorsp", 0.915, sparsity=0.5, prompt=3072),
                    f"{lorsp},relay=open": cell("lorsp", 0.920, prompt=3072),
                    f"{lorsp},pixel-input=none": cell("lorsp", 0.910, sparsity=0.5, prompt=3074),
                    "lorvp:prompt-lr=0.2": cell("lorvp", 0.95 if d == "e" else 0.915, prompt=3072),
                    "smm:prompt-lr=0.02": cell("smm", 0.95 if d in "de" else 0.915, prompt=75651)}
                for d in "abcde"}
    runs = {(d, lorsp): seeds([0.9, 0.95], [0.2, 0.2]) for d in "abcde"}
    diagnostics = {"settings": {"runs": "runs/t", "datasets": list("abcde"), "methods": ["lorsp-prompt-lr-0.1_rank-8"],
                                "seeds": [0], "limit_test": 32, "perm_seed": 0},
                   "machine": "test machine", "git_commit": "0123456789abcdef",
                   "rows": [{"dataset": d, "method": "lorsp-prompt-lr-0.1_rank-8", "seed": 0, "own": 0.915,
                             "other": 0.910, "generator reset": 0.905, "zero_prompt_pixels": 0.5} for d in "abcde"]}
    lorvp = [(768, 0.80), (1536, 0.81), (3072, 0.82), (6144, 0.83), (12288, 0.84)]
    param = table(**{d: {**{f"lorvp:prompt-lr=0.2,rank={2 ** k}": cell("lorvp", acc, prompt=n)
                            for k, (n, acc) in enumerate(lorvp)},
                         **{f"lorsp:prompt-lr=0.1,rank={2 ** k}": cell("lorsp", acc - (0.01 if d == "e" else 0), prompt=n)
                            for k, (n, acc) in enumerate(lorvp[:3])}} for d in "abcde"})
    energy = {"settings": {"samples": 64}, "git_commit": "abc", "rows": [
        {"dataset": d, "energy_nj": {"loihi-davies2018": 100.0, "horowitz-fp32-dense": 100.0,
                                     "horowitz-int8-dense": 5.0}} for d in "abcde"]}
    step = {"git_commit": "abc", "images_per_s": {"lorvp": {}, lorsp: {"step_time_vs_lorvp": 1.2}}}
    return table(**datasets), runs, diagnostics, param, energy, step


TARGET_NAMES = ["gain over the linear probe", "against LoR-VP and SMM", "within 0.5 point of the dense twin",
                "zero prompt pixels", "another image's mask", "best static mask", "own zero masks",
                "the spiking network learns", "parameters", "parameter curve", "energy", "training-step cost"]


def test_targets_exactly_at_their_thresholds_are_met_with_their_figures():
    lines = results_targets.targets_section(*at_threshold())
    assert lines[:2] == ["## Targets", ""] and lines[-1] == ""
    body = lines[4:-1]
    assert [line.split("**")[1] for line in body] == TARGET_NAMES
    assert all(line.split("**: ")[1].startswith("met. ") for line in body), body
    assert "+1.50 points over the linear probe" in body[0]
    assert "LoR-VP on 4 of 5" in body[1] and "SMM on 3 of 5" in body[1]
    assert "-0.50 points" in body[2] and "+0.50 points" in body[4] and "+0.50 points" in body[5]
    assert "50.0%" in body[3] and "90.0%" in body[6] and "+1.00 points" in body[7]
    assert "on 4 of 5 data sets (a, b, c, d;" in body[9] and "1.20x" in body[11]


def test_a_target_a_hair_below_its_threshold_is_missed():
    main, runs, diagnostics, param, energy, step = at_threshold()
    for d in "abcde":
        main["table"][d]["lorsp:prompt-lr=0.1,rank=8,relay=open"]["test_accuracy_mean"] = 0.92001
        main["table"][d]["lorsp:prompt-lr=0.1,rank=8"]["prompt_sparsity_mean"] = 0.4999
    energy["rows"][2]["energy_nj"]["loihi-davies2018"] = 100.5
    step["images_per_s"]["lorsp:prompt-lr=0.1,rank=8"]["step_time_vs_lorvp"] = 1.21
    body = results_targets.targets_section(main, runs, diagnostics, param, energy, step)[4:-1]
    verdicts = {line.split("**")[1]: line.split("**: ")[1].split(".")[0] for line in body}
    assert {k for k, v in verdicts.items() if v == "missed"} == {
        "within 0.5 point of the dense twin", "zero prompt pixels", "energy", "training-step cost"}


def test_targets_without_their_data_say_not_measured_never_met():
    main, runs, *_ = at_threshold()
    for d in "abcde":   # no twin, no static mask, no LoR-VP
        for spec in ("lorsp:prompt-lr=0.1,rank=8,relay=open", "lorsp:prompt-lr=0.1,rank=8,pixel-input=none",
                     "lorvp:prompt-lr=0.2"):
            del main["table"][d][spec]
    runs[("c", "lorsp:prompt-lr=0.1,rank=8")] = [{}, {}]   # a run without the per-instance figures
    body = results_targets.targets_section(main, runs)[4:-1]
    verdicts = {line.split("**")[1]: line.split("**: ")[1] for line in body}
    measured = {"gain over the linear probe", "zero prompt pixels"}
    assert set(verdicts) == set(TARGET_NAMES)
    assert all(v.startswith("not measured: ") for k, v in verdicts.items() if k not in measured), verdicts
    assert verdicts["own zero masks"] == "not measured: LoRSP's runs on c lack the per-instance figures."
    assert verdicts["against LoR-VP and SMM"] == "not measured: no row of lorvp on a, b, c, d, e."
    # a parameter table short of points is not measured either
    param = at_threshold()[3]
    del param["table"]["b"]["lorsp:prompt-lr=0.1,rank=4"]
    line = results_targets.param_curve_target(param)
    assert line.startswith("- **parameter curve**: not measured: ") and "b (LoR-VP 5, LoRSP 2)" in line
    assert results_targets.targets_section(table(a={"vp": cell("vp")}), {}) == []


def test_lorvps_curve_is_linear_in_log_parameters_and_flat_beyond_its_ends():
    points = [(100, 80.0), (10000, 90.0)]
    assert results_targets.curve_at(points, 1000) == pytest.approx(85.0)
    assert results_targets.curve_at(points, 10) == 80.0 and results_targets.curve_at(points, 10 ** 6) == 90.0
    assert results_targets.on_or_above([(1000, 85.0), (50, 80.0)], points)
    assert not results_targets.on_or_above([(1000, 84.9)], points)


def test_the_headline_sets_lorsp_against_smm_too():
    res = table(a={"lorsp": cell("lorsp", 0.90, sparsity=0.6), "smm": cell("smm", 0.85),
                   "none": cell("none", 0.90)})
    assert results_doc.headline(res) == ["- **a**: LoRSP 90.0 +- 1.0 with 60% exactly-zero prompt pixels; wins "
                                         "against SMM (+5.0 points); ties against linear probe (+0.0 points)."]


def test_the_tries_table_counts_each_try_on_par_with_the_main_tables_rows():
    main = table(a={"lorvp": cell("lorvp", 0.90), "smm": cell("smm", 0.95)},
                 b={"lorvp": cell("lorvp", 0.90), "smm": cell("smm", 0.95)})
    tries = {"settings": {**SETTINGS, "methods": ["lorsp", "lorsp:relay=frame", "lorsp:beta=0.9"]},
             "table": {"a": {"lorsp": cell("lorsp", 0.895, sparsity=0.6), "lorsp:relay=frame": cell("f", 0.95, sparsity=0.7),
                             "lorsp:beta=0.9": cell("b", 0.99)},
                       "b": {"lorsp": cell("lorsp", 0.855, sparsity=0.55), "lorsp:relay=frame": cell("f", 0.91, sparsity=0.7)}}}
    runs = {("a", "lorsp"): seeds([0.95, 0.91], [0.2, 0.1]), ("b", "lorsp"): seeds([0.97], [0.2]),
            ("a", "lorsp:relay=frame"): seeds([0.5], [0.2])}
    lines = results_doc.tries_markdown(tries, main, runs).splitlines()
    assert lines[0] == ("| try | mean val (%) | mean test (%) | lowest zeros (%) | lowest unique masks (%) | "
                        "on par with LoR-VP | on par with SMM |")
    # a try without a row on every data set (beta=0.9) is left out; unique masks: the lowest seed, n/a without any
    assert lines[2:] == ["| LoRSP | 87.5 | 87.5 | 55.0 | 91.0 | 1 of 2 | 0 of 2 |",
                         "| LoRSP (relay=frame) | 93.0 | 93.0 | 70.0 | 50.0 | 2 of 2 | 1 of 2 |"]
    assert "on par" not in results_doc.tries_markdown(tries, None, runs).splitlines()[0]


def test_every_collected_file_is_tracked_by_git():
    """The data folder must not hold paths .gitignore drops (a seeds folder named runs/ was ignored, so a
    clean clone rebuilt docs/results.md without the per-instance figures)."""
    if not results_data.DATA.is_dir():
        pytest.skip("docs/data/results/ is not committed yet")
    files = [str(p.relative_to(ROOT)) for p in results_data.DATA.rglob("*") if p.is_file()]
    proc = subprocess.run(["git", "check-ignore", "--no-index", *files], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode > 1:  # 0: some ignored, 1: none; more: not a git checkout
        pytest.skip(f"git check-ignore cannot run here: {proc.stderr.strip()[:200]}")
    assert files and not proc.stdout.split()


# --------------------------------------------------------------------------- tables assembled from several
def write_table(root: Path, name: str, res: dict, metrics: dict[str, float] | None = None) -> str:
    """``res`` at ``root``/runs/t/<name>.json, and a metrics.json for every seed of every cell (its test
    accuracy from ``metrics``, by method tag) unless ``metrics`` is None; the path relative to ``root``."""
    path = root / "runs" / "t" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res))
    for dataset, by_spec in res["table"].items():
        for spec, summary in by_spec.items():
            for seed in summary["seeds"]:
                run = results_data.run_dir(summary, res["settings"], dataset, spec, seed, root)
                if metrics is not None:
                    run.mkdir(parents=True, exist_ok=True)
                    (run / "metrics.json").write_text(json.dumps({"test_accuracy": metrics[spec], "seed": seed,
                                                                  "history": []}))
    return str(path.relative_to(root))


def peers_and_new(seeds=(0, 1)):
    """An older table (linear probe, LoR-VP, the old LoRSP) and a newer one (the new LoRSP, its twin)."""
    old = table(a={"none": cell("none"), "lorvp": cell("lorvp"), "lorsp": cell("lorsp", 0.85)},
                b={"none": cell("none"), "lorvp": cell("lorvp"), "lorsp": cell("lorsp", 0.86)})
    new = {**table(a={"lorsp": cell("lorsp", 0.93, seeds=seeds), "lorsp:relay=open": cell("lorsp-open", seeds=seeds)},
                   b={"lorsp": cell("lorsp", 0.94, seeds=seeds)}), "git_commit": "fedcba9876543210"}
    new["settings"] = {**SETTINGS, "methods": ["lorsp", "lorsp:relay=open"], "table_name": "new", "seeds": list(seeds),
                       "jobs": 4}
    return old, new


def test_union_keeps_each_rows_source_and_drops_only_what_it_is_told():
    old, new = peers_and_new(seeds=(0, 1, 2))
    res, origin = results_union.assemble([("old.json", old), ("new.json", new)], [("old.json", "lorsp")])
    assert list(res["table"]["a"]) == ["none", "lorvp", "lorsp", "lorsp:relay=open"]
    assert res["table"]["a"]["lorsp"]["test_accuracy_mean"] == 0.93 and res["table"]["a"]["lorsp"]["source"] == 1
    assert res["table"]["a"]["none"]["source"] == 0
    assert [s["input"] for s in res["sources"]] == ["old.json", "new.json"]
    assert res["sources"][1]["git_commit"] == "fedcba9876543210" and res["sources"][1]["settings"]["table_name"] == "new"
    assert res["settings"]["seeds"] == [0, 1, 2] and res["settings"]["methods"] == ["none", "lorvp", "lorsp",
                                                                                   "lorsp:relay=open"]
    assert [(d["input"], d["row"]) for d in res["dropped"]] == [("old.json", ["a", "lorsp"]), ("old.json", ["b", "lorsp"])]
    assert origin[("a", "lorsp")] == "new.json" and origin[("b", "lorvp")] == "old.json"
    # assembling again from the assembled table (and the newer one, with the same drop) gives the same table
    again, _ = results_union.assemble([("old.json", res), ("new.json", new)], [("old.json", "lorsp")])
    assert again == res
    # one table alone, nothing dropped: itself
    assert results_union.assemble([("old.json", old)])[0] is old


@pytest.mark.parametrize("change, drops, message", [
    ({}, [], "the row a, lorsp comes from both old.json and new.json"),
    ({"epochs": 2}, [("old.json", "lorsp")], "new.json ran another protocol than old.json: epochs 2 against 1"),
    ({"limit_test": None}, [("old.json", "lorsp")], "limit_test None against 32"),
    ({}, [("old.json", "lorsp"), ("old.json", "smm")], "--drop-method old.json smm: that input has no row"),
    ({}, [("other.json", "lorsp")], "--drop-method names other.json, which is not one of the inputs"),
])
def test_union_refuses_another_protocol_a_row_twice_and_a_drop_of_nothing(change, drops, message):
    old, new = peers_and_new()
    new["settings"] = {**new["settings"], **change}
    with pytest.raises(results_union.UnionError, match=re.escape(message)):
        results_union.assemble([("old.json", old), ("new.json", new)], drops)


def test_collect_assembles_several_tables_keeping_the_collected_seeds_of_runs_gone(tmp_path, capsys):
    repo, data = tmp_path / "repo", tmp_path / "repo" / "docs" / "data"
    old, new = peers_and_new()
    old_path = write_table(repo, "old", old, {"none": 0.9, "lorvp": 0.9, "lorsp": 0.85})
    results_data.main(["--root", str(repo), "--data", "docs/data", "--baselines", old_path, "--other-backbones"])
    assert json.loads((data / "seeds/baselines/a/lorsp/seed0.json").read_text())["test_accuracy"] == 0.85
    shutil.rmtree(repo / "runs" / "t" / "a")   # the old runs are gone; the same folders are then trained anew
    new_path = write_table(repo, "new", new, {"lorsp": 0.93, "lorsp:relay=open": 0.9})
    (repo / "runs" / "t" / "a" / "none" / "seed0").mkdir(parents=True)   # another run of an old row's name
    (repo / "runs" / "t" / "a" / "none" / "seed0" / "metrics.json").write_text('{"test_accuracy": 0.1}')
    argv = ["--root", str(repo), "--data", "docs/data", "--baselines", "docs/data/baselines.json", new_path,
            "--drop-method", "docs/data/baselines.json", "lorsp", "--other-backbones"]
    results_data.main(argv)
    res = json.loads((data / "baselines.json").read_text())
    assert [s["input"] for s in res["sources"]] == ["docs/data/baselines.json", new_path]
    seed = lambda d, tag, k: json.loads((data / "seeds" / "baselines" / d / tag / f"seed{k}.json").read_text())  # noqa: E731
    assert seed("a", "none", 0)["test_accuracy"] == 0.9   # the collected copy, not the later run of that name
    assert seed("a", "lorvp", 1)["test_accuracy"] == 0.9 and seed("a", "lorsp", 0)["test_accuracy"] == 0.93
    assert seed("a", "lorsp-relay-open", 1)["test_accuracy"] == 0.9
    before = snapshot(data)
    results_data.main(argv)   # the same command again: nothing changes
    assert snapshot(data) == before
    # refused in one line, exit 2: the old LoRSP rows kept (no drop), or a file of the option missing
    for bad in (argv[:5] + [old_path, new_path, "--other-backbones"],
                argv[:6] + ["runs/t/absent.json", "--other-backbones"]):
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            results_data.main(bad)
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.startswith("error: --baselines: ") and err.count("\n") == 1
    # the doc names every source command and each row's source
    out = tmp_path / "doc" / "results.md"
    results_doc.main(["--data", str(data), "--out", str(out), "--figures", str(tmp_path / "doc" / "fig"),
                      "--readme", "", "--example-prompts", str(tmp_path / "none.png")])
    text = out.read_text()
    assert "1. `python benchmarks/baselines.py --datasets a --methods lorsp lorvp --seeds 0 1 --out runs/t " \
           "--table-name results`" in text
    assert "2. `python benchmarks/baselines.py --datasets a --methods lorsp lorsp:relay=open --seeds 0 1 --out " \
           "runs/t --table-name new`" in text
    assert "Taken out before assembling (`--drop-method`): lorsp of docs/data/baselines.json (2 rows)." in text
    row = next(line for line in text.splitlines() if line.startswith("| a | LoRSP (relay=open) |"))
    assert row.endswith("| 2 |")


def test_another_backbones_table_is_assembled_from_files_joined_by_plus(tmp_path, capsys):
    repo, data = tmp_path / "repo", tmp_path / "repo" / "docs" / "data"
    old, new = peers_and_new()
    for t in (old, new):
        t["settings"] = {**t["settings"], "backbone": "efficientnet_lite2"}
    old_path = write_table(repo, "old", old, {"none": 0.9, "lorvp": 0.9, "lorsp": 0.85})
    base = ["--root", str(repo), "--data", "docs/data", "--baselines", "absent.json", "--keep-missing"]
    results_data.main(base + ["--other-backbones", old_path])
    kept = "docs/data/backbone-1-efficientnet_lite2.json"
    shutil.rmtree(repo / "runs" / "t" / "a")   # the old runs are gone: their collected copies stand in
    new_path = write_table(repo, "new", new, {"lorsp": 0.93, "lorsp:relay=open": 0.9})
    argv = base + ["--other-backbones", f"{kept}+{new_path}", "--drop-method", kept, "lorsp"]
    results_data.main(argv)
    res = json.loads((data / "backbone-1-efficientnet_lite2.json").read_text())
    assert [s["input"] for s in res["sources"]] == [kept, new_path]
    assert res["table"]["a"]["lorsp"]["test_accuracy_mean"] == 0.93 and res["table"]["a"]["lorvp"]["source"] == 0
    seeds = data / "seeds" / "backbone-1-efficientnet_lite2" / "a"
    seed = lambda tag: json.loads((seeds / tag / "seed0.json").read_text())  # noqa: E731
    assert seed("none")["test_accuracy"] == 0.9 and seed("lorsp")["test_accuracy"] == 0.93
    before = snapshot(data)
    results_data.main(argv)   # the same command again: nothing changes
    assert snapshot(data) == before
    for bad, message in ((base + ["--other-backbones", f"{old_path}+{new_path}"], "the row a, lorsp comes from both"),
                         (base + ["--other-backbones", f"{kept}+runs/t/absent.json"],
                          "runs/t/absent.json does not exist")):
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            results_data.main(bad)
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and err.count("\n") == 1


def test_keep_missing_keeps_the_collected_copy_of_an_input_that_is_gone(tmp_path):
    make_runs(tmp_path / "repo")
    data = tmp_path / "data"
    collect(tmp_path / "repo", data)
    (tmp_path / "repo" / "runs" / "t" / "results.json").rename(tmp_path / "repo" / "runs" / "t" / "moved.json")
    shutil.rmtree(tmp_path / "repo" / "runs" / "t" / "a")
    (tmp_path / "repo" / "runs" / "bench").mkdir()
    (tmp_path / "repo" / "runs" / "bench" / "fastsim.json").write_text("{}")
    before = snapshot(data)
    results_data.main(["--root", str(tmp_path / "repo"), "--data", str(data), "--keep-missing", "--other-backbones"])
    assert snapshot(data) == before | {"bench/fastsim.json": b"{}\n"}


def test_the_parameter_figure_is_drawn_with_its_section(tmp_path):
    main, runs, diagnostics, param, energy, step = at_threshold()
    data = tmp_path / "data"
    data.mkdir()
    for name, content in (("baselines", main), ("param_figure", param), ("diagnostics", diagnostics)):
        (data / f"{name}.json").write_text(json.dumps(content))
    out, figures = tmp_path / "doc" / "results.md", tmp_path / "doc" / "figures"
    results_doc.main(["--data", str(data), "--out", str(out), "--figures", str(figures), "--readme", "",
                      "--example-prompts", str(tmp_path / "none.png")])
    assert (figures / "param_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = out.read_text()
    assert "![test accuracy against trained prompt parameters](figures/param_curve.png)" in text
    assert "With the points below, on or above: a, b, c, d (of 5;" in text
    assert "| e | LoRSP (prompt-lr=0.1,rank=4) | 3,072 | 81.0 +- 1.0 | 0, 1 |" in text


def test_a_row_of_fewer_seeds_is_compared_with_lorsp_on_its_seeds_alone():
    """The static mask trained on seed 0 only is set against LoRSP's seed 0, not LoRSP's mean over three seeds;
    without LoRSP's per-seed figures the means are compared and the doc says which seeds each side averages."""
    lorsp, static = "lorsp:prompt-lr=0.1,rank=8", "lorsp:prompt-lr=0.1,rank=8,pixel-input=none"
    rows = {d: {"lorsp": (lorsp, cell("lorsp", 0.915, seeds=(0, 1, 2))),
                "static": (static, cell("lorsp", 0.92, seeds=(0,)))} for d in "ab"}
    runs = {(d, lorsp): [{"seed": 0, "test_accuracy": 0.93}, {"seed": 1, "test_accuracy": 0.9},
                         {"seed": 2, "test_accuracy": 0.915}] for d in "ab"}
    matched = results_targets.gap_target(rows, "static", "best static mask", 0.5, "the static mask", runs)
    assert matched.startswith("- **best static mask**: met. ") and "+1.00 points" in matched
    assert "LoRSP taken over the other row's seeds, [0]" in matched
    means = results_targets.gap_target(rows, "static", "best static mask", 0.5, "the static mask")
    assert means.startswith("- **best static mask**: missed. ") and "-0.50 points" in means
    assert "LoRSP over seeds [0, 1, 2], the other row over seeds [0]" in means


def test_robustness_and_deployment_entries_of_band_gating_are_said_to_be_the_earlier_design():
    """An entry whose JSON records gate band, or records no gate (written before those benchmarks recorded it, when
    band gating was the default), is marked; one recording pixel gating, and every other method, is not."""
    spec = "lorsp:prompt-lr=0.1,rank=8"
    assert results_doc.ran_band(spec, {}) and results_doc.ran_band(spec, {"gate": "band"})
    assert not results_doc.ran_band(spec, {"gate": "pixel"}) and not results_doc.ran_band("lorvp:prompt-lr=0.2", {})
    assert results_doc.design_label(spec, {}).endswith("(the earlier band-gated design)")
    assert results_doc.design_label(spec, {"gate": "pixel"}) == results_doc.method_label(spec)


def test_the_learning_rate_choice_says_when_its_lorsp_rows_ran_band_gating():
    """Points recording no gate (before lr_select recorded it) or gate band get the sentence; pixel points do not."""
    def choice(**point):
        return {"table": {"lorsp:rank=8": {"points": [{"prompt_lr": 0.1, "diverged": False, **point}]},
                          "lorvp": {"points": [{"prompt_lr": 0.2, "diverged": False}]}}}
    assert "earlier band-gated design" in results_doc.lr_select_design(choice())
    assert "earlier band-gated design" in results_doc.lr_select_design(choice(gate="band"))
    assert results_doc.lr_select_design(choice(gate="pixel")) == ""
