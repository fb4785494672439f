"""The user-folder datasets read their real on-disk layouts.

Each test writes a tiny dataset in the format a torchvision download leaves
(CIFAR's Python 2 pickles, SVHN's .mat files, GTSRB's folders and CSV, ...)
and loads it through the registry.
"""
from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from lorsp.data.registry import list_datasets, load_source
from lorsp.plumbing.errors import LorspError

USER_SETS = ["cifar10", "cifar100", "svhn", "gtsrb", "flowers102", "dtd", "eurosat", "oxford-pets", "food101"]


# ----------------------------------------------------------------------------- writers

class Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes ``bytes`` as Python 2 ``str`` (SHORT_BINSTRING / BINSTRING), like cPickle did."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def write_py2_pickle(path: Path, obj: object) -> None:
    """Pickle ``obj`` as CIFAR's Python 2 files are: protocol 2, byte-string keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        Py2Pickler(f, protocol=2).dump(obj)


def cifar_batch(labels: list[int], key: bytes = b"labels", seed: int = 0) -> dict:
    """A CIFAR batch dict: ``data`` N x 3072 uint8 (channel planes), labels, names."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8)
    return {b"batch_label": b"testing batch 1 of 1", key: labels, b"data": data,
            b"filenames": [b"img_%d.png" % i for i in range(len(labels))]}


def write_image(path: Path, size: tuple[int, int] = (7, 5), value: int = 0) -> None:
    """A small RGB image (``size`` is width, height); format from the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 255 - value, 40)).save(path)


def write_cifar10(root: Path) -> dict:
    """cifar-10-batches-py with 5 train batches of 2 images and a test batch of 3."""
    folder = root / "cifar-10-batches-py"
    batches = {f"data_batch_{i}": cifar_batch([i % 3, (i + 1) % 3], seed=i) for i in range(1, 6)}
    batches["test_batch"] = cifar_batch([2, 1, 0], seed=9)
    for name, batch in batches.items():
        write_py2_pickle(folder / name, batch)
    write_py2_pickle(folder / "batches.meta", {b"num_cases_per_batch": 2, b"num_vis": 3072,
                                               b"label_names": [b"airplane", b"automobile", b"bird"]})
    return batches


# ----------------------------------------------------------------------------- registry

def test_names_are_registered_as_folder_sets():
    names = set(list_datasets())
    offline = set(list_datasets(offline_only=True))
    for name in USER_SETS:
        assert name in names and name not in offline


@pytest.mark.parametrize("name", USER_SETS)
def test_no_root_is_a_one_line_error(name):
    with pytest.raises(LorspError, match=f"dataset {name} reads files from a folder: pass --data-root"):
        load_source(name, root=None)


@pytest.mark.parametrize("name", USER_SETS)
def test_missing_files_name_the_expected_path(name, tmp_path):
    with pytest.raises(LorspError) as err:
        load_source(name, root=tmp_path / "nowhere")
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "nowhere") in message


# ----------------------------------------------------------------------------- CIFAR

def test_cifar10_reads_python2_batches(tmp_path):
    batches = write_cifar10(tmp_path)
    src = load_source("cifar10", root=tmp_path)
    assert src.classes == ["airplane", "automobile", "bird"]
    assert len(src.train) == 10 and len(src.test) == 3 and src.val is None
    assert src.train.targets == [t for i in range(1, 6) for t in batches[f"data_batch_{i}"][b"labels"]]
    assert src.test.targets == [2, 1, 0]
    image, label = src.test[0]
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8 and label == 2
    row = batches["test_batch"][b"data"][0]  # R plane, then G, then B
    assert image[0, 1, 0] == row[1] and image[0, 1, 1] == row[1024 + 1] and image[0, 1, 2] == row[2048 + 1]


def test_cifar100_fine_labels_and_py3_pickles(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    train = cifar_batch([0, 1, 2, 1], key=b"fine_labels")
    train[b"coarse_labels"] = [5, 5, 5, 5]
    test = cifar_batch([2, 0], key=b"fine_labels", seed=3)
    test[b"coarse_labels"] = [5, 5]
    for name, obj in (("train", train), ("test", test),
                      ("meta", {b"fine_label_names": [b"apple", b"bear", b"cup"],
                                b"coarse_label_names": [b"food"]})):
        with open(folder / name, "wb") as f:  # a Python 3 writer: bytes via _codecs.encode
            pickle.dump(obj, f, protocol=2)
    src = load_source("cifar100", root=tmp_path)
    assert src.classes == ["apple", "bear", "cup"]
    assert src.train.targets == [0, 1, 2, 1] and src.test.targets == [2, 0]
    assert src.train[3][0].shape == (32, 32, 3)


def test_cifar_malicious_pickle_is_refused(tmp_path):
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(LorspError, match="data_batch_1.*refusing"):
        load_source("cifar10", root=tmp_path)
    assert not marker.exists()


def test_cifar_corrupt_batch_is_a_one_line_error(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"\x80\x02}q\x01(U\x04da")
    with pytest.raises(LorspError, match="test_batch") as err:
        load_source("cifar10", root=tmp_path)
    assert "\n" not in str(err.value)


def test_cifar_missing_batch_names_it(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(LorspError, match="data_batch_3 not found"):
        load_source("cifar10", root=tmp_path)


# ----------------------------------------------------------------------------- SVHN

def write_svhn(folder: Path, name: str, labels: list[int]) -> np.ndarray:
    """An SVHN .mat file: ``X`` 32 x 32 x 3 x N uint8, ``y`` N x 1 with 10 for digit 0."""
    x = np.random.default_rng(len(labels)).integers(0, 256, size=(32, 32, 3, len(labels)), dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    savemat(folder / name, {"X": x, "y": np.asarray(labels, dtype=np.uint8).reshape(-1, 1)})
    return x


def test_svhn_reads_mat_files_and_maps_10_to_0(tmp_path):
    x = write_svhn(tmp_path, "train_32x32.mat", [1, 10, 3, 10])
    write_svhn(tmp_path, "test_32x32.mat", [9, 2, 10])
    src = load_source("svhn", root=tmp_path)
    assert src.classes == [str(d) for d in range(10)]
    assert src.train.targets == [1, 0, 3, 0] and src.test.targets == [9, 2, 0]
    image, label = src.train[2]
    assert image.shape == (32, 32, 3) and label == 3
    np.testing.assert_array_equal(image, x[:, :, :, 2])


def test_svhn_corrupt_mat_is_a_one_line_error(tmp_path):
    write_svhn(tmp_path, "train_32x32.mat", [1, 2])
    (tmp_path / "test_32x32.mat").write_bytes(b"not a mat file")
    with pytest.raises(LorspError, match="test_32x32.mat"):
        load_source("svhn", root=tmp_path)


# ----------------------------------------------------------------------------- GTSRB

def test_gtsrb_official_train_and_test(tmp_path):
    base = tmp_path / "gtsrb"
    for cls, count in ((0, 2), (1, 1), (2, 3)):
        folder = base / "GTSRB" / "Training" / f"{cls:05d}"
        rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
        for i in range(count):
            write_image(folder / f"00000_{i:05d}.ppm", size=(9, 8))
            rows.append(f"00000_{i:05d}.ppm;9;8;1;1;8;7;{cls}")
        (folder / f"GT-{cls:05d}.csv").write_text("\n".join(rows) + "\n")
    test_rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
    for i, cls in enumerate([2, 0]):
        write_image(base / "GTSRB" / "Final_Test" / "Images" / f"{i:05d}.ppm", size=(6, 10))
        test_rows.append(f"{i:05d}.ppm;6;10;1;1;5;9;{cls}")
    (base / "GT-final_test.csv").write_text("\n".join(test_rows) + "\n")
    src = load_source("gtsrb", root=tmp_path)
    assert len(src.classes) == 43 and src.classes[14] == "Stop"
    assert src.train.targets == [0, 0, 1, 2, 2, 2] and src.test.targets == [2, 0]
    image, label = src.test[0]
    assert image.size == (6, 10) and image.mode == "RGB" and label == 2
    assert src.train[3][0].size == (9, 8) and src.train[3][1] == 2


def test_gtsrb_missing_test_csv_names_it(tmp_path):
    write_image(tmp_path / "gtsrb" / "GTSRB" / "Training" / "00000" / "00000_00000.ppm")
    (tmp_path / "gtsrb" / "GTSRB" / "Final_Test" / "Images").mkdir(parents=True)
    with pytest.raises(LorspError, match="GT-final_test.csv not found"):
        load_source("gtsrb", root=tmp_path)


# ----------------------------------------------------------------------------- Flowers102

def test_flowers102_official_train_val_test(tmp_path):
    base = tmp_path / "flowers-102"
    labels = [1, 2, 3, 1, 2, 3, 1, 2]  # image_00001 .. image_00008, labels 1..102
    for i in range(1, len(labels) + 1):
        write_image(base / "jpg" / f"image_{i:05d}.jpg", size=(12, 10), value=20 * i)
    savemat(base / "imagelabels.mat", {"labels": np.asarray([labels], dtype=np.uint8)})
    savemat(base / "setid.mat", {"trnid": np.asarray([[1, 2, 3]], dtype=np.uint16),
                                 "valid": np.asarray([[4, 5]], dtype=np.uint16),
                                 "tstid": np.asarray([[6, 7, 8]], dtype=np.uint16)})
    src = load_source("flowers102", root=tmp_path)
    assert len(src.classes) == 102 and src.classes[0] == "pink primrose"
    assert src.train.targets == [0, 1, 2] and src.val.targets == [0, 1] and src.test.targets == [2, 0, 1]
    image, label = src.val[1]
    assert image.size == (12, 10) and image.mode == "RGB" and label == 1


def test_flowers102_missing_image_names_it(tmp_path):
    base = tmp_path / "flowers-102"
    write_image(base / "jpg" / "image_00001.jpg")
    savemat(base / "imagelabels.mat", {"labels": np.asarray([[1, 2]], dtype=np.uint8)})
    savemat(base / "setid.mat", {"trnid": np.asarray([[1]]), "valid": np.asarray([[2]]),
                                 "tstid": np.asarray([[1]])})
    with pytest.raises(LorspError, match="image_00002.jpg not found"):
        load_source("flowers102", root=tmp_path)


# ----------------------------------------------------------------------------- DTD

def test_dtd_partition1_train_val_test(tmp_path):
    data = tmp_path / "dtd" / "dtd"
    split_files = {"train": ["banded/banded_0001.jpg", "zigzagged/zigzagged_0001.jpg", "dotted/dotted_0001.jpg"],
                   "val": ["dotted/dotted_0002.jpg", "banded/banded_0002.jpg"],
                   "test": ["zigzagged/zigzagged_0002.jpg", "banded/banded_0003.jpg"]}
    (data / "labels").mkdir(parents=True)
    for split, files in split_files.items():
        for rel in files:
            write_image(data / "images" / rel, size=(11, 13))
        (data / "labels" / f"{split}1.txt").write_text("\n".join(files) + "\n")
    (data / "labels" / "train2.txt").write_text("dotted/dotted_0002.jpg\n")  # another partition: unused
    src = load_source("dtd", root=tmp_path)
    assert src.classes == ["banded", "dotted", "zigzagged"]
    assert src.train.targets == [0, 2, 1] and src.val.targets == [1, 0] and src.test.targets == [2, 0]
    image, label = src.test[0]
    assert image.size == (11, 13) and label == 2


def test_dtd_splits_share_one_class_list(tmp_path):
    data = tmp_path / "dtd" / "dtd"
    (data / "labels").mkdir(parents=True)
    for split, rel in (("train", "banded/banded_0001.jpg"), ("val", "dotted/dotted_0001.jpg"),
                       ("test", "zigzagged/zigzagged_0001.jpg")):
        write_image(data / "images" / rel)
        (data / "labels" / f"{split}1.txt").write_text(rel + "\n")
    src = load_source("dtd", root=tmp_path)
    assert src.train.targets == [0] and src.val.targets == [1] and src.test.targets == [2]


# ----------------------------------------------------------------------------- EuroSAT

def test_eurosat_class_folders_no_test_split(tmp_path):
    data = tmp_path / "eurosat" / "2750"
    for cls, count in (("AnnualCrop", 2), ("Forest", 3), ("River", 1)):
        for i in range(1, count + 1):
            write_image(data / cls / f"{cls}_{i}.jpg", size=(64, 64))
    src = load_source("eurosat", root=tmp_path)
    assert src.classes == ["AnnualCrop", "Forest", "River"]
    assert src.test is None and src.val is None
    assert src.train.targets == [0, 0, 1, 1, 1, 2]
    image, label = src.train[5]
    assert image.size == (64, 64) and label == 2


# ----------------------------------------------------------------------------- Oxford pets

def test_oxford_pets_trainval_and_test(tmp_path):
    base = tmp_path / "oxford-iiit-pet"
    # image_id CLASS-ID SPECIES BREED-ID, class ids 1..37 (here 1..3)
    trainval = ["Abyssinian_100 1 1 1", "american_bulldog_10 2 2 1", "Abyssinian_101 1 1 1",
                "american_pit_bull_terrier_1 3 2 2"]
    test = ["american_pit_bull_terrier_2 3 2 2", "Abyssinian_1 1 1 1"]
    (base / "annotations").mkdir(parents=True)
    (base / "annotations" / "trainval.txt").write_text("\n".join(trainval) + "\n")
    (base / "annotations" / "test.txt").write_text("\n".join(test) + "\n")
    for line in trainval + test:
        write_image(base / "images" / f"{line.split()[0]}.jpg", size=(15, 9))
    src = load_source("oxford-pets", root=tmp_path)
    assert src.classes == ["Abyssinian", "American Bulldog", "American Pit Bull Terrier"]
    assert src.train.targets == [0, 1, 0, 2] and src.test.targets == [2, 0]
    image, label = src.train[1]
    assert image.size == (15, 9) and label == 1


# ----------------------------------------------------------------------------- Food-101

def test_food101_train_and_test_json(tmp_path):
    base = tmp_path / "food-101"
    train = {"apple_pie": ["apple_pie/1005649", "apple_pie/1011328"], "waffles": ["waffles/100"],
             "baklava": ["baklava/7"]}
    test = {"waffles": ["waffles/200"], "apple_pie": ["apple_pie/1011329"], "baklava": ["baklava/8"]}
    (base / "meta").mkdir(parents=True)
    (base / "meta" / "train.json").write_text(json.dumps(train))
    (base / "meta" / "test.json").write_text(json.dumps(test))
    (base / "meta" / "classes.txt").write_text("apple_pie\nbaklava\nwaffles\n")
    for split in (train, test):
        for rels in split.values():
            for rel in rels:
                write_image(base / "images" / f"{rel}.jpg", size=(20, 16))
    src = load_source("food101", root=tmp_path)
    assert src.classes == ["apple_pie", "baklava", "waffles"]
    assert sorted(src.train.targets) == [0, 0, 1, 2] and len(src.test) == 3
    assert src.test.targets == [2, 0, 1]
    image, label = src.test[0]
    assert image.size == (20, 16) and label == 2


# ----------------------------------------------------------------------------- imagefolder

def test_imagefolder_plain_pool(tmp_path):
    for cls, count in (("cat", 2), ("dog", 1)):
        for i in range(count):
            write_image(tmp_path / "pets" / cls / f"{i}.png", size=(8, 6))
    src = load_source(f"imagefolder:{tmp_path / 'pets'}")
    assert src.classes == ["cat", "dog"] and src.test is None and src.val is None
    assert src.train.targets == [0, 0, 1]
    assert src.train[2][0].size == (8, 6)


def test_imagefolder_with_official_splits(tmp_path):
    root = tmp_path / "set"
    for split, files in (("train", ["a/0.png", "b/0.png", "c/0.png"]), ("val", ["b/1.png"]),
                         ("test", ["c/2.png", "a/2.png"])):
        for rel in files:
            write_image(root / split / rel)
    src = load_source(f"imagefolder:{root}")
    assert src.classes == ["a", "b", "c"]
    assert src.train.targets == [0, 1, 2] and src.val.targets == [1] and src.test.targets == [0, 2]


def test_imagefolder_missing_folder(tmp_path):
    with pytest.raises(LorspError, match="not found"):
        load_source(f"imagefolder:{tmp_path / 'none'}")


def test_imagefolder_without_images(tmp_path):
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(LorspError, match="no images"):
        load_source(f"imagefolder:{tmp_path / 'empty'}")


def test_sources_pickle_for_dataloader_workers(tmp_path):
    for cls in ("a", "b"):
        write_image(tmp_path / "set" / cls / "0.png")
    src = load_source(f"imagefolder:{tmp_path / 'set'}")
    clone = pickle.loads(pickle.dumps(src.train))
    assert clone.targets == [0, 1] and clone[1][0].size == (7, 5)


def test_a_fifo_among_a_data_sets_files_is_refused_at_once_not_waited_on(tmp_path):
    """A FIFO blocks ``open()`` until a writer comes, forever: every user data file is opened without blocking and
    refused unless it is a regular file."""
    import os
    import time

    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.unlink()
    os.mkfifo(batch)
    start = time.monotonic()
    with pytest.raises(LorspError, match="data_batch_3 is not a regular file"):
        load_source("cifar10", root=tmp_path)
    assert time.monotonic() - start < 10
