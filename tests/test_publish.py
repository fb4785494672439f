"""Outputs are claimed before any work and published whole: no race, no overwrite without --force, no leftovers."""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.bundle import open_bundle
from export.loihi import export_loihi
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.publish import claim_output, rename_noreplace
from tests.conftest import LAVA, ROOT, assert_one_line_error, run_cli
from tests.test_export_loihi import shared_bundle, shared_checkpoint


def leftovers(parent: Path) -> list[str]:
    """Staging directories, lock files and moved-aside outputs left in ``parent``."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".") or p.name.endswith(".partial"))


# --------------------------------------------------------------------------- the claim itself
def test_a_second_claim_on_the_same_output_is_refused_while_the_first_holds_it(tmp_path):
    out = tmp_path / "out"
    with claim_output(out, False):
        with pytest.raises(LorspError, match=rf"being written by another run \(pid {os.getpid()}\)"):
            claim_output(out, True)
    with claim_output(out, False) as claim, claim.staged() as stage:  # released: free again
        (stage / "a.txt").write_text("a")
    assert (out / "a.txt").read_text() == "a" and leftovers(tmp_path) == []
    assert (out.stat().st_mode & 0o777) == 0o755


def test_a_directory_that_appears_while_a_run_works_is_never_replaced(tmp_path):
    out = tmp_path / "out"
    with claim_output(out, False) as claim:
        with pytest.raises(LorspError, match="appeared while this run worked"):
            with claim.staged() as stage:
                (stage / "mine.txt").write_text("mine")
                out.mkdir()  # someone else's, empty: plain rename(2) would silently replace it
                (out / "theirs.txt").write_text("theirs")
    assert [p.name for p in out.iterdir()] == ["theirs.txt"] and leftovers(tmp_path) == []
    empty = tmp_path / "empty"
    empty.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    with pytest.raises(FileExistsError):
        rename_noreplace(src, empty)


def test_force_replaces_an_old_output_whole_and_a_failed_block_leaves_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(LorspError, match="--force"):
        claim_output(out, False)
    with pytest.raises(RuntimeError):
        with claim_output(out, True) as claim, claim.staged() as stage:
            (stage / "new.txt").write_text("new")
            raise RuntimeError("the run failed")
    assert [p.name for p in out.iterdir()] == ["old.txt"] and leftovers(tmp_path) == []
    with claim_output(out, True) as claim, claim.staged() as stage:
        (stage / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"] and leftovers(tmp_path) == []


def test_stale_staging_directories_of_dead_runs_are_cleared(tmp_path):
    stale = tmp_path / ".out.abcdefgh.partial"
    stale.mkdir()
    with claim_output(tmp_path / "out", False) as claim, claim.staged():
        pass
    assert not stale.exists() and (tmp_path / "out").is_dir()


def test_parents_made_for_a_failed_run_are_removed(tmp_path):
    with pytest.raises(RuntimeError):
        with claim_output(tmp_path / "a" / "b" / "out", False) as claim, claim.staged():
            raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_a_parent_folder_made_by_another_run_meanwhile_is_shared_not_refused(tmp_path, monkeypatch):
    """A grid's jobs start together and make the same parent folders: the one that loses the race to
    ``mkdir`` uses the folder, and does not remove it when its own run fails (it is not its own)."""
    shared = tmp_path / "grid" / "dataset"
    real_mkdir = Path.mkdir

    def another_run_was_first(self, *args, **kwargs):
        if self == shared and not self.exists():
            os.makedirs(self)  # the other job, between our check and our mkdir
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", another_run_was_first)
    with pytest.raises(RuntimeError):
        with claim_output(shared / "method" / "seed0", False) as claim, claim.staged():
            raise RuntimeError
    assert shared.is_dir() and list(shared.iterdir()) == []  # ours (method/) removed, the other run's kept
    assert (tmp_path / "grid").is_dir()  # made by us before the other run made its child: kept as in use


def test_many_runs_claiming_siblings_at_once_all_succeed(tmp_path):
    code = ("import sys, time; from lorsp.plumbing.publish import claim_output\n"
            "start = float(sys.argv[2])\n"
            "while time.time() < start: pass\n"
            "with claim_output(sys.argv[1], False) as claim, claim.staged() as stage:\n"
            "    (stage / 'x').write_text('x')\n")
    start = __import__("time").time() + 3.0
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "g" / "d" / f"m{i}" / "seed0"), str(start)],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True) for i in range(8)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, errors
    assert sorted(p.name for p in (tmp_path / "g" / "d").iterdir()) == [f"m{i}" for i in range(8)]


@pytest.mark.parametrize("make,fragment", [
    (lambda t: Path("/proc/x"), "cannot write in /proc"),
    (lambda t: (t / "file").write_text("x") and t / "file" / "out", "parent of output .* is not a directory"),
    (lambda t: (t / "file").write_text("x") and t / "file" / "sub" / "out", "cannot create the folder of output"),
    (lambda t: t / ("n" * 300), "too long"),
    (lambda t: Path(os.fsdecode(bytes(t) + b"/caf\xe9")), "not a UTF-8 name"),
    (lambda t: t / "..", "names no directory"),
])
def test_unwritable_output_paths_are_one_line(tmp_path, make, fragment):
    with pytest.raises(LorspError, match=fragment):
        claim_output(make(tmp_path), False)


def test_the_output_may_not_be_hold_or_lie_in_an_input(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.pt").write_text("x")
    for out, how in ((run, "holds"), (tmp_path, "holds"), (run / "model.pt", "is"), (run / "sub", "lies inside")):
        with pytest.raises(LorspError, match=f"{how} the input"):
            claim_output(out, True, sources=[run / "model.pt"] if how != "lies inside" else [run])
    with claim_output(run / "sub", False, sources=[run / "model.pt"], inside_ok=True):
        pass
    assert (run / "model.pt").read_text() == "x"


# --------------------------------------------------------------------------- the console scripts
@pytest.mark.slow
def test_two_exports_to_one_output_publish_one_complete_bundle_and_the_loser_exits_2(tmp_path_factory, tmp_path):
    checkpoint = shared_checkpoint(tmp_path_factory)
    out = tmp_path / "bundle"
    argv = [sys.executable, "-m", "pipeline.export_cli", "--target", "loihi", str(checkpoint), "-o", str(out),
            "--no-simulate", "--samples", "8", "--quiet"]
    procs = [subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], results
    loser = next(subprocess.CompletedProcess(argv, p.returncode, *r) for p, r in zip(procs, results) if p.returncode)
    assert_one_line_error(loser)
    assert "being written by another run" in loser.stderr or "already exists" in loser.stderr
    open_bundle(out)  # every file present and matching the manifest
    assert leftovers(tmp_path) == []


def test_export_with_force_onto_its_own_run_is_refused_and_the_run_kept(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.pt").write_bytes(b"not even read")
    for out in (run, tmp_path):
        with pytest.raises(LorspError, match="holds the input"):
            export_loihi(run / "model.pt", out, force=True)
    assert (run / "model.pt").read_bytes() == b"not even read"


@pytest.mark.slow
def test_resume_obeys_force_and_never_writes_over_its_source(tmp_path_factory, tmp_path):
    finished = shared_checkpoint(tmp_path_factory).parent
    before = sorted(p.name for p in finished.iterdir())
    proc = run_cli("lorsp.train", "--resume", str(finished / "last.pt"), "--out", str(finished), "--force")
    assert_one_line_error(proc, "holds the input")
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("keep")
    proc = run_cli("lorsp.train", "--resume", str(finished / "last.pt"), "--out", str(other))
    assert_one_line_error(proc, "already exists", "--force")
    assert sorted(p.name for p in finished.iterdir()) == before and (other / "keep.txt").exists()


@pytest.mark.slow
def test_a_failed_training_run_leaves_nothing_and_a_stale_empty_stage_blocks_nothing(tmp_path):
    out = tmp_path / "run"
    (tmp_path / "run.partial").mkdir()  # what a run killed before its first epoch left
    proc = run_cli("lorsp.train", "--prompt", "lorsp", "--dataset", "sklearn-digits", "--image-size", "32",
                   "--epochs", "1", "--limit-train", "32", "--limit-test", "16", "--batch-size", "16", "--quiet",
                   "--lr", "1e30", "--out", str(out))
    assert_one_line_error(proc, "loss became")
    assert list(tmp_path.iterdir()) == []


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.slow
def test_a_write_that_fails_mid_export_is_one_line_and_publishes_nothing(tmp_path_factory, tmp_path):
    checkpoint = shared_checkpoint(tmp_path_factory)
    out = tmp_path / "bundle"
    proc = subprocess.run([sys.executable, "-m", "pipeline.export_cli", "--target", "loihi", str(checkpoint), "-o",
                           str(out), "--no-simulate", "--samples", "8", "--quiet"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, preexec_fn=_limit_file_size(20_000))
    assert_one_line_error(proc, "writing output", "File too large", "nothing was published")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["fast", LAVA])
def test_hwsim_and_cosim_refuse_an_unwritable_output_before_simulating(tmp_path_factory, tmp_path, backend):
    bundle = shared_bundle(tmp_path_factory)
    for module in ("hw_sim.cli", "hw_sim.cosim_cli"):
        proc = run_cli(module, str(bundle), "-o", "/proc/x", "--backend", backend, "--timeout", "0.01")
        assert_one_line_error(proc, "cannot write in /proc")  # not the Lava timeout: nothing ran
        proc = run_cli(module, str(bundle), "-o", str(bundle / "hw_sim"), "--force")
        assert_one_line_error(proc, "the input")
    assert open_bundle(bundle)


@pytest.mark.slow
def test_every_console_script_refuses_an_output_another_run_is_writing(tmp_path_factory, tmp_path):
    bundle, checkpoint = shared_bundle(tmp_path_factory), shared_checkpoint(tmp_path_factory)
    out = tmp_path / "out"
    commands = {
        "lorsp.train": ["--dataset", "sklearn-digits", "--image-size", "32", "--epochs", "1", "--out", str(out)],
        "pipeline.export_cli": ["--target", "loihi", str(checkpoint), "-o", str(out), "--no-simulate"],
        "hw_sim.cli": [str(bundle), "-o", str(out)],
        "hw_sim.cosim_cli": [str(bundle), "-o", str(out)],
    }
    with claim_output(out, False):  # this test process is the run that holds it
        for module, args in commands.items():
            proc = run_cli(module, *args, "--quiet", timeout=300)
            assert_one_line_error(proc, f"is being written by another run (pid {os.getpid()})")
    assert leftovers(tmp_path) == [] and not out.exists()


def test_an_output_without_room_for_what_it_will_hold_is_refused(tmp_path):
    with pytest.raises(LorspError, match="MiB free in .* needs at least|needs about"):
        claim_output(tmp_path / "out", False, min_free=1 << 60)
    assert leftovers(tmp_path) == []
    with claim_output(tmp_path / "out", False) as claim:
        with pytest.raises(LorspError, match="needs about 1099511627776 MiB"):
            claim.require_space(1 << 60)  # what an export asks once it knows the size of its ONNX files


def test_the_size_of_the_onnx_files_is_estimated_from_the_weights(lite0):
    from export.onnx_target import onnx_bytes
    from lorsp.model import build_model

    model = build_model({"backbone": "efficientnet_lite0", "prompt": "lorvp", "head": "lp", "rank": 4,
                         "image_size": 32}, [str(i) for i in range(10)], backbone=lite0)
    weights = sum(p.numel() for p in model.backbone.parameters()) + sum(p.numel() for p in model.head.parameters())
    assert onnx_bytes(model, ["fp32"]) == 4 * weights + (1 << 20)
    assert onnx_bytes(model, ["fp16", "int8"]) == 7 * weights + (1 << 20)


# --------------------------------------------------------------------------- nothing a user owns is lost (issue 28)
def test_a_link_or_a_user_file_named_like_the_lock_is_refused_and_left_as_it_is(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("mine")
    (tmp_path / ".out.lock").symlink_to(target)
    with pytest.raises(LorspError, match="is a symbolic link"):
        claim_output(tmp_path / "out", False)
    assert target.read_text() == "mine" and (tmp_path / ".out.lock").is_symlink()
    (tmp_path / ".b.lock").write_text("notes of my own\n")
    with pytest.raises(LorspError, match="not a lock lorsp wrote"):
        claim_output(tmp_path / "b", False)
    assert (tmp_path / ".b.lock").read_text() == "notes of my own\n"
    (tmp_path / ".c.lock").write_text("12345\n")  # a lock a killed run left: taken over, then removed
    with claim_output(tmp_path / "c", False) as claim, claim.staged() as stage:
        (stage / "a.txt").write_text("a")
    assert not (tmp_path / ".c.lock").exists() and (tmp_path / "c" / "a.txt").read_text() == "a"


def test_an_old_output_moved_aside_by_a_killed_publish_is_put_back(tmp_path):
    """A ``--force`` publish moves the old ``OUT`` to ``.OUT.*.old/previous`` and then renames the new one in; a run
    killed in between leaves ``OUT`` missing, and the next claim on ``OUT`` puts the old one back."""
    out = tmp_path / "out"
    aside = tmp_path / ".out.x1y2.old"
    aside.mkdir()
    (aside / "previous").mkdir()
    (aside / "previous" / "result.txt").write_text("old")
    with claim_output(out, True):
        assert (out / "result.txt").read_text() == "old"
    assert leftovers(tmp_path) == []


def test_a_stage_folder_lorsp_did_not_write_is_never_deleted(tmp_path):
    """``OUT.partial`` holding anything a training run does not write (here: a user's data), a link or a file is
    refused in one line and left as it is."""
    out = tmp_path / "run"
    args = ("--prompt", "none", "--dataset", "sklearn-digits", "--image-size", "32", "--epochs", "1",
            "--limit-train", "32", "--limit-test", "16", "--batch-size", "16", "--quiet", "--out", str(out))
    stage = tmp_path / "run.partial"
    stage.mkdir()
    (stage / "images.npz").write_text("data")
    assert_one_line_error(run_cli("lorsp.train", *args), "holds files a training run does not write")
    assert (stage / "images.npz").read_text() == "data"
    (stage / "images.npz").unlink()
    stage.rmdir()
    stage.write_text("a file")
    assert_one_line_error(run_cli("lorsp.train", *args, "--force"), "is not a training stage lorsp wrote")
    assert stage.read_text() == "a file"


def test_an_output_over_the_image_folder_a_command_reads_is_refused_even_with_force(tmp_path_factory, tmp_path):
    """The data set a command reads is an input like its checkpoint or bundle: ``-o`` onto an ``imagefolder:``
    folder is refused by every console script, with --force too, and the images stay."""
    import numpy as np
    from PIL import Image

    images = tmp_path / "images"
    for label in ("a", "b"):
        for split in ("train", "test"):
            (images / split / label).mkdir(parents=True)
            for i in range(4):
                Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(images / split / label / f"{i}.png")
    before = sorted(p.relative_to(images) for p in images.rglob("*"))
    dataset = f"imagefolder:{images}"
    checkpoint, bundle = shared_checkpoint(tmp_path_factory), shared_bundle(tmp_path_factory)
    for module, args in (("pipeline.export_cli", ("--target", "loihi", str(checkpoint), "--dataset", dataset)),
                         ("hw_sim.cli", (str(bundle), "--dataset", dataset)),
                         ("hw_sim.cosim_cli", (str(bundle), "--dataset", dataset))):
        assert_one_line_error(run_cli(module, *args, "-o", str(images), "--force"), "is the input")
    assert sorted(p.relative_to(images) for p in images.rglob("*")) == before


def test_a_full_disk_while_training_saves_is_one_line_not_torchs_runtime_error(tmp_path):
    """torch.save reports a failed write as a RuntimeError; lorsp-train's save turns it into the one write-failure
    line (here the file-size limit makes every write past 60 kB fail, as a full disk would)."""
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "lorsp.train", "--prompt", "lorvp", "--dataset", "sklearn-digits",
                           "--image-size", "32", "--epochs", "1", "--limit-train", "32", "--limit-test", "16",
                           "--batch-size", "16", "--quiet", "--out", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, preexec_fn=_limit_file_size(60_000))
    assert_one_line_error(proc, "writing output", "torch.save failed", "nothing was published")
    assert not out.exists()
