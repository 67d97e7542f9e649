"""Data: CIFAR-10/100 from the official pickles with the papers' augmentation, and ImageNet
from RecordIO files through MXNet's ImageRecordIter.

The names from the modules that import MXNet (the iterator, its loaders, ImageNet) are
imported on first use by a module ``__getattr__`` (PEP 562), so that ``import data`` and
``data.normalize`` load no MXNet, as classifying with onnxruntime alone needs."""
import importlib

from .cifar import (LAYOUTS, cifar_class_names, cifar_folder, cifar_mean_std, load_batch,
                    load_cifar, read_pickle, stratified_split, train_val_split)
from .download import download_cifar
from .normalization import normalize
from .sample import make_cifar_sample
from .synthetic import make_synthetic_cifar

MXNET_NAMES = {"CifarIter": "iterator", "count_batches": "iterator",
               "pad_crop_flip": "iterator", "start_epoch": "iterator",
               "get_cifar_iters": "loaders", "get_imagenet_iters": "imagenet",
               "pack_imagenet": "imagenet", "pixel_mean": "imagenet"}

__all__ = ["cifar_class_names", "cifar_folder", "cifar_mean_std", "CifarIter", "count_batches",
           "download_cifar", "get_cifar_iters", "get_imagenet_iters", "LAYOUTS", "load_batch",
           "load_cifar", "make_cifar_sample", "make_synthetic_cifar", "normalize",
           "pack_imagenet", "pad_crop_flip", "pixel_mean", "read_pickle", "start_epoch",
           "stratified_split", "train_val_split"]


def __getattr__(name):
    """A name of ``MXNET_NAMES``, from its module (imported now, with MXNet)."""
    if name not in MXNET_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{MXNET_NAMES[name]}", __name__), name)
