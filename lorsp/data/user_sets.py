"""Classic benchmarks read from a user's own folder (``--data-root DIR``).

Each loader reads the layout torchvision 0.18 uses (and a download by it
leaves), relative to ``DIR``:

``cifar10``
    ``cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta``
    (Python 2 pickles; read with :mod:`lorsp.data.safe_pickle`, never ``pickle.load``).
``cifar100``
    ``cifar-100-python/train, test, meta`` (same format; fine labels).
``svhn``
    ``train_32x32.mat, test_32x32.mat`` (``X`` is ``32x32x3xN``, ``y`` uses 10 for
    digit 0); also found under ``svhn/``.
``gtsrb``
    ``gtsrb/GTSRB/Training/000NN/*.ppm`` and ``gtsrb/GTSRB/Final_Test/Images/*.ppm``
    with ``gtsrb/GT-final_test.csv`` (``;``-separated, ``Filename`` and ``ClassId``).
``flowers102``
    ``flowers-102/jpg/image_NNNNN.jpg, imagelabels.mat, setid.mat`` (no md5 check).
``dtd``
    ``dtd/dtd/images/CLASS/*.jpg`` and ``dtd/dtd/labels/{train,val,test}1.txt``.
``eurosat``
    ``eurosat/2750/CLASS/*.jpg`` (no official split: test is drawn by lorsp).
``oxford-pets``
    ``oxford-iiit-pet/images/*.jpg`` and ``oxford-iiit-pet/annotations/{trainval,test}.txt``.
``food101``
    ``food-101/images/CLASS/*.jpg`` and ``food-101/meta/{train,test}.json``.
``imagefolder:PATH``
    ``PATH/CLASS/*`` images, or ``PATH/{train,test[,val]}/CLASS/*`` for fixed splits.

Official splits are kept (CIFAR, SVHN, GTSRB and Food-101 train/test, Flowers102
and DTD partition 1 train/val/test, Oxford pets trainval/test). With
``download=True`` torchvision fetches and checks the files first. Every problem
with the folder is a one-line :class:`~lorsp.plumbing.errors.LorspError`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from lorsp.data.base import ArrayDataset, SourceData
from lorsp.data.registry import IMAGEFOLDER_PREFIX, register_dataset, register_name_form
from lorsp.data.image_walk import check_folder, list_image_folder
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.fileio import open_regular

GTSRB_CLASSES = [
    "Speed limit (20km/h)", "Speed limit (30km/h)", "Speed limit (50km/h)", "Speed limit (60km/h)",
    "Speed limit (70km/h)", "Speed limit (80km/h)", "End of speed limit (80km/h)",
    "Speed limit (100km/h)", "Speed limit (120km/h)", "No passing",
    "No passing for vehicles over 3.5 metric tons", "Right-of-way at the next intersection",
    "Priority road", "Yield", "Stop", "No vehicles", "Vehicles over 3.5 metric tons prohibited",
    "No entry", "General caution", "Dangerous curve to the left", "Dangerous curve to the right",
    "Double curve", "Bumpy road", "Slippery road", "Road narrows on the right", "Road work",
    "Traffic signals", "Pedestrians", "Children crossing", "Bicycles crossing",
    "Beware of ice/snow", "Wild animals crossing", "End of all speed and passing limits",
    "Turn right ahead", "Turn left ahead", "Ahead only", "Go straight or right",
    "Go straight or left", "Keep right", "Keep left", "Roundabout mandatory", "End of no passing",
    "End of no passing by vehicles over 3.5 metric tons",
]
"""The 43 GTSRB sign names; label = the class folder number / ``ClassId``."""

FLOWERS102_CLASSES = [
    "pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea",
    "english marigold", "tiger lily", "moon orchid", "bird of paradise", "monkshood",
    "globe thistle", "snapdragon", "colt's foot", "king protea", "spear thistle", "yellow iris",
    "globe-flower", "purple coneflower", "peruvian lily", "balloon flower",
    "giant white arum lily", "fire lily", "pincushion flower", "fritillary", "red ginger",
    "grape hyacinth", "corn poppy", "prince of wales feathers", "stemless gentian", "artichoke",
    "sweet william", "carnation", "garden phlox", "love in the mist", "mexican aster",
    "alpine sea holly", "ruby-lipped cattleya", "cape flower", "great masterwort", "siam tulip",
    "lenten rose", "barbeton daisy", "daffodil", "sword lily", "poinsettia", "bolero deep blue",
    "wallflower", "marigold", "buttercup", "oxeye daisy", "common dandelion", "petunia",
    "wild pansy", "primula", "sunflower", "pelargonium", "bishop of llandaff", "gaura",
    "geranium", "orange dahlia", "pink-yellow dahlia", "cautleya spicata", "japanese anemone",
    "black-eyed susan", "silverbush", "californian poppy", "osteospermum", "spring crocus",
    "bearded iris", "windflower", "tree poppy", "gazania", "azalea", "water lily", "rose",
    "thorn apple", "morning glory", "passion flower", "lotus", "toad lily", "anthurium",
    "frangipani", "clematis", "hibiscus", "columbine", "desert-rose", "tree mallow", "magnolia",
    "cyclamen", "watercress", "canna lily", "hippeastrum", "bee balm", "ball moss", "foxglove",
    "bougainvillea", "camellia", "mallow", "mexican petunia", "bromelia", "blanket flower",
    "trumpet creeper", "blackberry lily",
]
"""Flower names in label order (1..102). The dataset ships no name file; this is
the list the community (e.g. CLIP's evaluations) uses."""


# ----------------------------------------------------------------------------- helpers

class LabeledView(Dataset):
    """Items of ``base`` (any ``(image, label)`` dataset) with labels ``targets``.

    Gives torchvision datasets that keep labels privately (``_labels``,
    ``_samples``) the public ``targets`` and ``classes`` lorsp needs, and lets
    several splits share one class list.
    """

    def __init__(self, base: Any, targets: Sequence[int], classes: Sequence[str]):
        if len(targets) != len(base):
            raise ValueError(f"{len(base)} items but {len(targets)} labels")
        self.base = base
        self.targets = [int(t) for t in targets]
        self.classes = list(classes)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, _ = self.base[index]
        return image, self.targets[index]


class ImageFileList(Dataset):
    """Images read lazily from ``paths`` (as RGB PIL images) with labels ``targets``."""

    def __init__(self, paths: Sequence[Path], targets: Sequence[int], classes: Sequence[str]):
        if len(paths) != len(targets):
            raise ValueError(f"{len(paths)} images but {len(targets)} labels")
        self.paths = [Path(p) for p in paths]
        self.targets = [int(t) for t in targets]
        self.classes = list(classes)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        try:
            with open_regular(self.paths[index], "image") as f, Image.open(f) as image:
                if image.mode in LOSSY_MODES:
                    raise LorspError(f"{self.paths[index]} has pixel mode {image.mode} ({LOSSY_MODES[image.mode]}), "
                                     f"which converts to 8-bit RGB only by clipping: convert it to 8-bit first")
                return image.convert("RGB"), self.targets[index]
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:  # PIL's kinds of bad file
            raise LorspError(f"{self.paths[index]} is not a readable image: {_one_line(exc)[:160]}") from None


LOSSY_MODES = {"I": "32-bit integers", "F": "32-bit floats", "I;16": "16-bit grey", "I;16L": "16-bit grey",
               "I;16B": "16-bit grey", "I;16N": "16-bit grey"}
"""PIL pixel modes whose conversion to RGB clips values above 255 instead of scaling them: such images would train
as all white (or black) without a word, so they are refused by name."""


def _one_line(exc: BaseException) -> str:
    """``exc`` as a single line of text."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _need_root(name: str, root: Path | None) -> Path:
    """``root`` as a path, or the standard error when no folder was given."""
    if root is None:
        raise LorspError(f"dataset {name} reads files from a folder: pass --data-root DIR "
                         f"(with --download to fetch it where torchvision can)")
    return Path(root).expanduser()


def _missing(name: str, path: Path, root: Path) -> LorspError:
    """The error for an expected file or folder ``path`` that is not there."""
    return LorspError(f"dataset {name}: {path} not found (--data-root {root} must hold the layout "
                      f"torchvision uses; add --download to fetch it)")


def _require(name: str, root: Path, *paths: Path) -> None:
    """Raise a one-line error naming the first of ``paths`` that does not exist."""
    for path in paths:
        if not path.exists():
            raise _missing(name, path, root)


def _guarded(name: str, what: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn``; turn any failure into a one-line error about ``what``."""
    try:
        return fn()
    except LorspError:
        raise
    except Exception as exc:  # corrupt files, network errors: one line for the user
        raise LorspError(f"dataset {name}: cannot read {what}: {_one_line(exc)}") from exc


def _download(name: str, fetch: Callable[[], Any]) -> None:
    """Let torchvision download (and verify) a dataset; one-line error on failure."""
    try:
        fetch()
    except Exception as exc:
        raise LorspError(f"dataset {name}: download failed: {_one_line(exc)}") from exc


def _align(datasets: Iterable[Any], labels_of: Callable[[Any], Sequence[int]]) -> tuple[list[LabeledView], list[str]]:
    """Views of ``datasets`` (each with its own ``classes``) on one sorted union class list."""
    datasets = list(datasets)
    classes = sorted({c for ds in datasets for c in ds.classes})
    index = {c: i for i, c in enumerate(classes)}
    views = [LabeledView(ds, [index[ds.classes[t]] for t in labels_of(ds)], classes) for ds in datasets]
    return views, classes


def _names_for(labels: Iterable[int], known: Sequence[str]) -> list[str]:
    """``known`` when every label indexes it, else generic names ``class N``."""
    top = max(labels, default=-1)
    if top < len(known):
        return list(known)
    return [known[i] if i < len(known) else f"class {i}" for i in range(top + 1)]


# ----------------------------------------------------------------------------- CIFAR

def _field(entry: Any, key: str) -> Any:
    """``entry[key]`` for a pickled dict whose keys may be ``str`` or Python 2 ``bytes``."""
    if not isinstance(entry, dict):
        raise ValueError(f"expected a pickled dict, got {type(entry).__name__}")
    for k in (key, key.encode("ascii")):
        if k in entry:
            return entry[k]
    raise KeyError(f"no {key!r} entry")


def _read_pickle(path: Path) -> Any:
    """Unpickle ``path`` with the numpy-only unpickler (refuses code)."""
    from lorsp.data.safe_pickle import load_numpy_pickle

    with open_regular(path, "data file") as f:
        return load_numpy_pickle(f, encoding="latin1")


def _read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, list[int]]:
    """One CIFAR batch file -> ``(N, 32, 32, 3)`` uint8 images and labels."""
    entry = _read_pickle(path)
    data = np.asarray(_field(entry, "data"))
    labels = [int(t) for t in _field(entry, label_key)]
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"'data' should be uint8 N x 3072, got {data.dtype} {data.shape}")
    if len(labels) != len(data):
        raise ValueError(f"{len(data)} images but {len(labels)} labels")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _read_cifar_names(path: Path, key: str) -> list[str]:
    """Class names from a CIFAR meta file."""
    names = _field(_read_pickle(path), key)
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]


def _cifar_split(name: str, folder: Path, files: Sequence[str], label_key: str,
                 classes: list[str]) -> ArrayDataset:
    """Concatenate batch ``files`` of ``folder`` into one dataset."""
    images, labels = [], []
    for file in files:
        path = folder / file
        x, y = _guarded(name, str(path), lambda path=path: _read_cifar_batch(path, label_key))
        images.append(x)
        labels.extend(y)
    if labels and max(labels) >= len(classes):
        raise LorspError(f"dataset {name}: label {max(labels)} in {folder} but only {len(classes)} classes")
    return ArrayDataset(np.concatenate(images), labels, classes)


def _load_cifar(name: str, root: Path | None, download: bool, tv_class: str, train_files: Sequence[str],
                test_file: str, meta: tuple[str, str], label_key: str) -> SourceData:
    """Shared CIFAR-10/100 loader (see the module docstring for the layouts)."""
    root = _need_root(name, root)
    from torchvision import datasets as tvd

    cls = getattr(tvd, tv_class)
    folder = root / cls.base_folder
    wanted = [folder / f for f in (*train_files, test_file, meta[0])]
    if download and not all(p.exists() for p in wanted):
        from torchvision.datasets.utils import download_and_extract_archive

        _download(name, lambda: download_and_extract_archive(cls.url, str(root), filename=cls.filename,
                                                             md5=cls.tgz_md5))
    _require(name, root, folder, *wanted)
    meta_path = folder / meta[0]
    classes = _guarded(name, str(meta_path), lambda: _read_cifar_names(meta_path, meta[1]))
    train = _cifar_split(name, folder, train_files, label_key, classes)
    test = _cifar_split(name, folder, [test_file], label_key, classes)
    return SourceData(train=train, test=test, classes=classes)


@register_dataset("cifar10", offline=False,
                  description="CIFAR-10, 10 classes, 32x32 (DIR/cifar-10-batches-py)")
def load_cifar10(root: Path | None, download: bool) -> SourceData:
    """CIFAR-10: 50000 train / 10000 test from ``cifar-10-batches-py``."""
    return _load_cifar("cifar10", root, download, "CIFAR10",
                       [f"data_batch_{i}" for i in range(1, 6)], "test_batch",
                       ("batches.meta", "label_names"), "labels")


@register_dataset("cifar100", offline=False,
                  description="CIFAR-100, 100 fine classes, 32x32 (DIR/cifar-100-python)")
def load_cifar100(root: Path | None, download: bool) -> SourceData:
    """CIFAR-100 (fine labels): 50000 train / 10000 test from ``cifar-100-python``."""
    return _load_cifar("cifar100", root, download, "CIFAR100", ["train"], "test",
                       ("meta", "fine_label_names"), "fine_labels")


# ----------------------------------------------------------------------------- SVHN

def _read_svhn(path: Path) -> tuple[np.ndarray, list[int]]:
    """One SVHN ``.mat`` file -> ``(N, 32, 32, 3)`` uint8 images and labels 0..9."""
    from scipy.io import loadmat

    with open_regular(path, "data file") as f:
        mat = loadmat(f)
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).astype(np.int64).reshape(-1)
    if x.ndim != 4 or x.shape[2] != 3 or x.shape[3] != len(y):
        raise ValueError(f"'X' should be 32 x 32 x 3 x N with N = {len(y)}, got {x.shape}")
    if x.dtype != np.uint8:
        x = np.clip(x, 0, 255).astype(np.uint8)
    y[y == 10] = 0
    if y.size and (y.min() < 0 or y.max() > 9):
        raise ValueError(f"labels outside 1..10: {sorted(set(y.tolist()))[:5]}")
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2)), y.tolist()


@register_dataset("svhn", offline=False,
                  description="SVHN digits, 10 classes, 32x32 (DIR/train_32x32.mat, test_32x32.mat)")
def load_svhn(root: Path | None, download: bool) -> SourceData:
    """SVHN cropped digits: official train (73257) / test (26032); ``extra`` is not used."""
    root = _need_root("svhn", root)
    files = ("train_32x32.mat", "test_32x32.mat")
    folder = next((d for d in (root, root / "svhn") if all((d / f).exists() for f in files)), root)
    if download and not all((folder / f).exists() for f in files):
        from torchvision.datasets import SVHN

        for split in ("train", "test"):
            _download("svhn", lambda split=split: SVHN(str(root), split=split, download=True))
        folder = root
    _require("svhn", root, *(folder / f for f in files))
    classes = [str(d) for d in range(10)]
    splits = []
    for f in files:
        path = folder / f
        x, y = _guarded("svhn", str(path), lambda path=path: _read_svhn(path))
        splits.append(ArrayDataset(x, y, classes))
    return SourceData(train=splits[0], test=splits[1], classes=classes)


# ----------------------------------------------------------------------------- Flowers102

def _read_mat_vector(path: Path, key: str) -> list[int]:
    """The integer vector ``key`` of a ``.mat`` file."""
    from scipy.io import loadmat

    with open_regular(path, "data file") as f:
        return [int(v) for v in np.atleast_1d(np.asarray(loadmat(f)[key])).reshape(-1)]


@register_dataset("flowers102", offline=False,
                  description="Oxford Flowers-102, 102 classes (DIR/flowers-102)")
def load_flowers102(root: Path | None, download: bool) -> SourceData:
    """Oxford 102 flowers: the official train / val / test ids of ``setid.mat``."""
    root = _need_root("flowers102", root)
    base = root / "flowers-102"
    images, labels_mat, setid_mat = base / "jpg", base / "imagelabels.mat", base / "setid.mat"
    if download and not all(p.exists() for p in (images, labels_mat, setid_mat)):
        from torchvision.datasets import Flowers102

        _download("flowers102", lambda: Flowers102(str(root), split="train", download=True))
    _require("flowers102", root, images, labels_mat, setid_mat)
    labels = _guarded("flowers102", str(labels_mat), lambda: _read_mat_vector(labels_mat, "labels"))
    classes = _names_for([t - 1 for t in labels], FLOWERS102_CLASSES)
    splits = []
    for key in ("trnid", "valid", "tstid"):
        ids = _guarded("flowers102", f"{setid_mat} ({key})", lambda key=key: _read_mat_vector(setid_mat, key))
        bad = [i for i in ids if not 1 <= i <= len(labels)]
        if bad:
            raise LorspError(f"dataset flowers102: {setid_mat} names image {bad[0]} but "
                             f"{labels_mat} labels only {len(labels)} images")
        paths = [images / f"image_{i:05d}.jpg" for i in ids]
        _require("flowers102", root, *paths)
        splits.append(ImageFileList(paths, [labels[i - 1] - 1 for i in ids], classes))
    return SourceData(train=splits[0], val=splits[1], test=splits[2], classes=classes)


# ----------------------------------------------------------------------------- torchvision-backed sets

def _tv(name: str, root: Path, make: Callable[[], Any]) -> Any:
    """Build a torchvision dataset; its errors become one-line errors naming ``root``."""
    return _guarded(name, f"the files under {root}", make)


@register_dataset("gtsrb", offline=False,
                  description="German traffic signs, 43 classes (DIR/gtsrb)")
def load_gtsrb(root: Path | None, download: bool) -> SourceData:
    """GTSRB: official training images / final test images with ``GT-final_test.csv``."""
    root = _need_root("gtsrb", root)
    from torchvision.datasets import GTSRB

    base = root / "gtsrb"
    if download:
        for split in ("train", "test"):
            _download("gtsrb", lambda split=split: GTSRB(str(root), split=split, download=True))
    _require("gtsrb", root, base / "GTSRB" / "Training", base / "GTSRB" / "Final_Test" / "Images",
             base / "GT-final_test.csv")
    train = _tv("gtsrb", root, lambda: GTSRB(str(root), split="train"))
    test = _tv("gtsrb", root, lambda: GTSRB(str(root), split="test"))
    try:  # the class folder's number is the label (torchvision counts folders instead)
        train_labels = [int(Path(path).parent.name) for path, _ in train._samples]
    except ValueError:
        raise LorspError(f"dataset gtsrb: class folders in {base / 'GTSRB' / 'Training'} "
                         f"must be numbered (00000 .. 00042)") from None
    test_labels = [int(label) for _, label in test._samples]
    if not train_labels:
        raise LorspError(f"dataset gtsrb: no .ppm images under {base / 'GTSRB' / 'Training'}")
    classes = _names_for(train_labels + test_labels, GTSRB_CLASSES)
    return SourceData(train=LabeledView(train, train_labels, classes),
                      test=LabeledView(test, test_labels, classes), classes=classes)


@register_dataset("dtd", offline=False,
                  description="Describable Textures, 47 classes, partition 1 (DIR/dtd)")
def load_dtd(root: Path | None, download: bool) -> SourceData:
    """DTD: official train / val / test of partition 1."""
    root = _need_root("dtd", root)
    from torchvision.datasets import DTD

    data = root / "dtd" / "dtd"
    if download:
        _download("dtd", lambda: DTD(str(root), split="train", download=True))
    _require("dtd", root, data / "images",
             *(data / "labels" / f"{split}1.txt" for split in ("train", "val", "test")))
    parts = [_tv("dtd", root, lambda split=split: DTD(str(root), split=split, partition=1))
             for split in ("train", "val", "test")]
    (train, val, test), classes = _align(parts, lambda ds: ds._labels)
    return SourceData(train=train, val=val, test=test, classes=classes)


@register_dataset("eurosat", offline=False,
                  description="EuroSAT RGB land use, 10 classes, no official split (DIR/eurosat)")
def load_eurosat(root: Path | None, download: bool) -> SourceData:
    """EuroSAT RGB: all images as train; lorsp draws the seeded test split."""
    root = _need_root("eurosat", root)
    from torchvision.datasets import EuroSAT

    if download:
        _download("eurosat", lambda: EuroSAT(str(root), download=True))
    _require("eurosat", root, root / "eurosat" / "2750")
    train = _tv("eurosat", root, lambda: EuroSAT(str(root)))
    return SourceData(train=train, test=None, classes=list(train.classes))


def _pet_name(image_path: Path) -> str:
    """``american_bulldog_12.jpg`` -> ``American Bulldog`` (torchvision's naming)."""
    return " ".join(part.title() for part in image_path.stem.rsplit("_", 1)[0].split("_"))


@register_dataset("oxford-pets", offline=False,
                  description="Oxford-IIIT Pet, 37 breeds (DIR/oxford-iiit-pet)")
def load_oxford_pets(root: Path | None, download: bool) -> SourceData:
    """Oxford-IIIT Pet: official trainval / test lists."""
    root = _need_root("oxford-pets", root)
    from torchvision.datasets import OxfordIIITPet

    base = root / "oxford-iiit-pet"
    if download:
        _download("oxford-pets", lambda: OxfordIIITPet(str(root), download=True))
    _require("oxford-pets", root, base / "images", base / "annotations" / "trainval.txt",
             base / "annotations" / "test.txt")
    parts = [_tv("oxford-pets", root, lambda split=split: OxfordIIITPet(str(root), split=split))
             for split in ("trainval", "test")]
    names: dict[int, str] = {}
    for ds in parts:
        for path, label in zip(ds._images, ds._labels):
            names.setdefault(int(label), _pet_name(Path(path)))
    classes = [names.get(i, f"class {i}") for i in range(max(names, default=-1) + 1)]
    train, test = (LabeledView(ds, ds._labels, classes) for ds in parts)
    return SourceData(train=train, test=test, classes=classes)


@register_dataset("food101", offline=False,
                  description="Food-101, 101 dishes (DIR/food-101)")
def load_food101(root: Path | None, download: bool) -> SourceData:
    """Food-101: official train (750 per class) / test (250 per class) lists."""
    root = _need_root("food101", root)
    from torchvision.datasets import Food101

    base = root / "food-101"
    if download:
        _download("food101", lambda: Food101(str(root), download=True))
    _require("food101", root, base / "images", base / "meta" / "train.json", base / "meta" / "test.json")
    parts = [_tv("food101", root, lambda split=split: Food101(str(root), split=split))
             for split in ("train", "test")]
    (train, test), classes = _align(parts, lambda ds: ds._labels)
    return SourceData(train=train, test=test, classes=classes)


# ----------------------------------------------------------------------------- imagefolder:PATH

def _image_folder(path: Path) -> "ImageFileList":
    """The images of the class subfolders of ``path`` (:func:`lorsp.data.image_walk.list_image_folder`)."""
    name = f"imagefolder:{path}"
    paths, targets, classes = list_image_folder(path, name)
    if not paths:
        raise LorspError(f"dataset {name}: no images in the class folders of {path}")
    return ImageFileList(paths, targets, classes)


@register_name_form(IMAGEFOLDER_PREFIX, shown=f"{IMAGEFOLDER_PREFIX}PATH", text_is_path=True)
def load_imagefolder(path: str | Path) -> SourceData:
    """Any folder of class subfolders of images (``imagefolder:PATH``).

    ``PATH/CLASS/*.jpg`` gives one pool that lorsp splits with its seed; a
    ``PATH/train``, ``PATH/test`` (and optional ``PATH/val``) trio is used as
    the official splits, with one class list across them.
    """
    path = check_folder(str(path), f"imagefolder:{path}")  # "" is refused, not read as "."
    if (path / "train").is_dir() and (path / "test").is_dir():
        split_dirs = {n: path / n for n in ("train", "val", "test") if (path / n).is_dir()}
    else:
        split_dirs = {"train": path}
    views, classes = _align([_image_folder(d) for d in split_dirs.values()], lambda ds: ds.targets)
    splits = dict(zip(split_dirs, views))
    return SourceData(train=splits["train"], val=splits.get("val"), test=splits.get("test"), classes=classes)
