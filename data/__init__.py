"""Data: CIFAR-10/100 from the official pickles with the papers' augmentation, and ImageNet
from RecordIO files through MXNet's ImageRecordIter."""
from .cifar import (LAYOUTS, cifar_class_names, cifar_folder, cifar_mean_std, load_batch,
                    load_cifar, read_pickle, stratified_split, train_val_split)
from .download import download_cifar
from .imagenet import get_imagenet_iters, pack_imagenet
from .iterator import CifarIter, count_batches, pad_crop_flip, start_epoch
from .loaders import get_cifar_iters
from .sample import make_cifar_sample
from .synthetic import make_synthetic_cifar

__all__ = ["LAYOUTS", "CifarIter", "cifar_class_names", "cifar_folder", "cifar_mean_std",
           "count_batches", "download_cifar", "get_cifar_iters", "get_imagenet_iters",
           "load_batch", "load_cifar", "make_cifar_sample", "make_synthetic_cifar",
           "pack_imagenet", "pad_crop_flip", "read_pickle", "start_epoch", "stratified_split",
           "train_val_split"]
