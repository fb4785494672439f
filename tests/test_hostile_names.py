"""Names no file system holds (issue 28): an output or one of its folders over 255 bytes, given to each of the four
real console scripts, and an artifact name over 255 bytes in a resealed manifest, are one line with exit code 2,
and nothing is written."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from deploy.bundle import MANIFEST_FILE
from deploy.manifest_schema import manifest_digest
from tests.conftest import assert_one_line_error, run_cli
from tests.test_export_loihi import TINY_TRAIN, shared_bundle, shared_checkpoint

LONG = "n" * 300


def commands(tmp_path_factory: pytest.TempPathFactory, out: Path) -> list[tuple[str, ...]]:
    """Each console script, as ``(module, *args)``, writing ``out``."""
    checkpoint, bundle = shared_checkpoint(tmp_path_factory), shared_bundle(tmp_path_factory)
    return [("lorsp.train", *TINY_TRAIN, "--out", str(out)),
            ("pipeline.export_cli", "--target", "loihi", str(checkpoint), "-o", str(out), "--no-simulate"),
            ("hw_sim.cli", str(bundle), "-o", str(out), "--samples", "4", "--quiet"),
            ("hw_sim.cosim_cli", str(bundle), "-o", str(out), "--quiet")]


@pytest.mark.slow
@pytest.mark.parametrize("make,fragment", [
    (lambda t: t / LONG, "is too long: the file system holds names of at most 255 bytes"),
    (lambda t: t / LONG / "run", "names a folder nnnn"),
    (lambda t: t / "a" / LONG / "b" / "run", "of 300 bytes: the file system holds names of at most 255 bytes"),
], ids=["long-name", "long-folder", "long-deeper-folder"])
def test_an_output_name_over_255_bytes_is_one_line_for_every_console_script(tmp_path_factory, tmp_path, make,
                                                                             fragment):
    for command in commands(tmp_path_factory, make(tmp_path)):
        proc = run_cli(*command, timeout=300)
        assert_one_line_error(proc, fragment)
        assert list(tmp_path.iterdir()) == [], command[0]


def with_artifact(bundle: Path, dst: Path, name: str) -> Path:
    """A copy of ``bundle`` whose manifest lists one more artifact, ``name``, resealed with a fresh integrity hash."""
    shutil.copytree(bundle, dst)
    manifest = json.loads((dst / MANIFEST_FILE).read_text())
    manifest["artifacts"][name] = dict(manifest["artifacts"]["README.md"])
    manifest.pop("integrity")
    manifest["integrity"] = {"sha256": manifest_digest(manifest)}
    (dst / MANIFEST_FILE).write_text(json.dumps(manifest))
    return dst


@pytest.mark.slow
@pytest.mark.parametrize("name,fragment", [
    ("a" * 300, "(300 bytes) is longer than a file system holds"),
    ("d/" + "b" * 256 + "/x", "is longer than a file system holds (255 bytes a name"),
    ("/".join(["c" * 200] * 8), "(1607 bytes) is longer than a file system holds"),
    ("caf\udce9.txt", "is not UTF-8 text"),
], ids=["long-name", "long-folder", "long-path", "not-utf8"])
def test_an_artifact_name_no_file_system_holds_is_one_line(tmp_path_factory, tmp_path, name, fragment):
    root = with_artifact(shared_bundle(tmp_path_factory), tmp_path / "b", name)
    proc = run_cli("hw_sim.cli", str(root), "-o", str(tmp_path / "r"), "--samples", "4", "--quiet", timeout=120)
    assert_one_line_error(proc, "manifest.artifacts key", fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
