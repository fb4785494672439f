"""Datasets by name, torchvision style, with fixed seeded splits.

    >>> from lorsp.data import create_splits, list_datasets
    >>> splits = create_splits("mnist-5k", image_size=128)
    >>> image, label = splits.train[0]          # float 3 x 128 x 128 in [0, 1]

Offline sets ship with packages (:mod:`lorsp.data.offline`); the classic
benchmarks read a user's own folder (:mod:`lorsp.data.user_sets`). A new
dataset is one loader function decorated with :func:`register_dataset`.
"""
from lorsp.data.base import ArrayDataset, SourceData
from lorsp.data.registry import dataset_paths, list_datasets, load_source, register_dataset
from lorsp.data.splits import SPLITS, Splits, create_splits, load_split_images, make_splits
from lorsp.data.transforms import ToModelInput
from lorsp.data import offline as _offline  # noqa: F401  (registers loaders)
from lorsp.data import user_sets as _user_sets  # noqa: F401

__all__ = ["SPLITS", "ArrayDataset", "SourceData", "Splits", "ToModelInput", "create_splits", "list_datasets",
           "load_source", "load_split_images", "make_splits", "register_dataset"]
