"""imagefolder:PATH is listed without following links, bounded, never in an empty or kernel path (issue 19, item 7)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lorsp.data import load_source
from lorsp.data import image_walk
from lorsp.plumbing.errors import LorspError
from tests.conftest import assert_one_line_error, run_cli


def write_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((5, 7, 3), np.uint8)).save(path)


def test_links_to_parent_folders_are_skipped_not_walked_forever(tmp_path):
    root = tmp_path / "set"
    write_image(root / "cat" / "0.png")
    write_image(root / "dog" / "0.png")
    os.symlink("..", root / "cat" / "up")           # two links to ".." make os.walk(followlinks=True) loop
    os.symlink("../..", root / "dog" / "upup")
    os.symlink(root / "cat", root / "linked-class")  # a class folder that is a link: not a class
    os.symlink(root / "cat" / "0.png", root / "dog" / "1.png")
    src = load_source(f"imagefolder:{root}")
    assert src.classes == ["cat", "dog"] and src.train.targets == [0, 1]


@pytest.mark.parametrize("text,fragment", [("", "no folder given"), ("   ", "no folder given"),
                                           ("/proc/self", "kernel file system"), ("/sys/kernel", "kernel file system"),
                                           ("/dev", "kernel file system")])
def test_an_empty_path_and_kernel_file_systems_are_refused(text, fragment):
    with pytest.raises(LorspError, match=fragment):
        load_source(f"imagefolder:{text}")


def test_the_walk_is_bounded_in_depth_and_entries(tmp_path, monkeypatch):
    deep = tmp_path / "deep" / "cat"
    for _ in range(image_walk.MAX_DEPTH + 2):
        deep = deep / "d"
    write_image(deep / "0.png")
    with pytest.raises(LorspError, match="nested deeper than"):
        load_source(f"imagefolder:{tmp_path / 'deep'}")
    for i in range(5):
        write_image(tmp_path / "wide" / "cat" / f"{i}.png")
    monkeypatch.setattr(image_walk, "MAX_ENTRIES", 3)
    with pytest.raises(LorspError, match="more than 3 entries"):
        load_source(f"imagefolder:{tmp_path / 'wide'}")


def test_a_file_that_is_not_an_image_is_one_line_naming_it(tmp_path):
    write_image(tmp_path / "set" / "cat" / "0.png")
    (tmp_path / "set" / "dog").mkdir()
    (tmp_path / "set" / "dog" / "0.png").write_text("not a picture")
    src = load_source(f"imagefolder:{tmp_path / 'set'}")
    with pytest.raises(LorspError, match=r"dog/0.png is not a readable image"):
        src.train[1]


@pytest.mark.slow
@pytest.mark.parametrize("dataset,fragment", [("imagefolder:", "no folder given"),
                                              ("imagefolder:/proc/self", "kernel file system")])
def test_the_training_cli_refuses_them_in_one_line(tmp_path, dataset, fragment):
    proc = run_cli("lorsp.train", "--dataset", dataset, "--image-size", "32", "--epochs", "1", "--quiet",
                   "--out", str(tmp_path / "run"), timeout=120)
    assert_one_line_error(proc, fragment)
    assert list(tmp_path.iterdir()) == []


def test_images_whose_pixels_rgb_conversion_would_clip_are_refused_by_name(tmp_path):
    """16-bit grey (and 32-bit integer or float) images convert to 8-bit RGB by clipping: they would train as all
    white. They are refused, naming the file and its mode."""
    import numpy as np
    from PIL import Image

    from lorsp.data import load_source
    from lorsp.plumbing.errors import LorspError

    for split in ("train", "test"):
        for label in ("a", "b"):
            (tmp_path / split / label).mkdir(parents=True)
            Image.fromarray(np.full((8, 8), 30000, np.uint16)).save(tmp_path / split / label / "0.png")
    source = load_source(f"imagefolder:{tmp_path}")
    with pytest.raises(LorspError, match=r"0\.png has pixel mode I;16 \(16-bit grey\)"):
        source.train[0]
