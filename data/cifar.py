"""CIFAR-10 / CIFAR-100 from the pickled batches of the "python version" archives.

A folder is either ``cifar-10-batches-py`` (``data_batch_1`` .. ``data_batch_5``,
``test_batch``, ``batches.meta``) or ``cifar-100-python`` (``train``, ``test``, ``meta``).
Both the official Python-2 pickles (bytes keys) and files re-pickled by Python 3 (str keys)
load. Loading never runs code from a file: the unpickler accepts only the few globals a
batch needs (NumPy array and dtype reconstruction).
"""
import os
import pickle
from collections import namedtuple

import numpy as np

Layout = namedtuple("Layout", "name folder train test meta labels names classes url md5")

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"
LAYOUTS = {
    "cifar10": Layout("CIFAR-10", "cifar-10-batches-py",
                      [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta",
                      {"fine": "labels"}, {"fine": "label_names"}, {"fine": 10},
                      CIFAR_URL + "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
    "cifar100": Layout("CIFAR-100", "cifar-100-python", ["train"], ["test"], "meta",
                       {"fine": "fine_labels", "coarse": "coarse_labels"},
                       {"fine": "fine_label_names", "coarse": "coarse_label_names"},
                       {"fine": 100, "coarse": 20},
                       CIFAR_URL + "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),
}
IMAGE_SHAPE = (3, 32, 32)
VAL_FRACTION = 0.1   # the papers' 45k/5k split of the 50k training images
SPLIT_SEED = 0       # fixed, so every run validates on the same 5k images


def layout(dataset):
    """The file layout of ``dataset`` ('cifar10' or 'cifar100')."""
    if dataset not in LAYOUTS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(LAYOUTS)}")
    return LAYOUTS[dataset]


def detect_layout(path):
    """The layout of the CIFAR folder ``path``, recognised by its meta or first batch file."""
    for spec in LAYOUTS.values():
        if any(os.path.isfile(os.path.join(path, f)) for f in (spec.meta, spec.train[0])):
            return spec
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no such folder")
    raise FileNotFoundError(f"{path}: not a CIFAR python-version folder (no batches.meta, "
                            "data_batch_1, meta or train file)")


def cifar_folder(data_dir, dataset):
    """The CIFAR folder for ``dataset``: ``data_dir/<archive folder>`` or ``data_dir`` itself."""
    spec = layout(dataset)
    inner = os.path.join(data_dir, spec.folder)
    if os.path.isdir(inner):
        return inner
    if os.path.isfile(os.path.join(data_dir, spec.meta)):
        return data_dir
    raise FileNotFoundError(f"no {spec.name} data in {data_dir}: expected {inner} "
                            "(use --download to fetch it)")


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for something a CIFAR batch never contains."""


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a CIFAR batch needs; anything else is refused."""

    ALLOWED = {(module, name)
               for module in ("numpy.core.multiarray", "numpy._core.multiarray")
               for name in ("_reconstruct", "scalar")}
    ALLOWED |= {(module, "_frombuffer") for module in ("numpy.core.numeric", "numpy._core.numeric")}
    ALLOWED |= {("numpy", "ndarray")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        if (module, name) == ("numpy", "dtype"):
            return _plain_dtype
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        raise UnsafePickleError(f"global '{module}.{name}' is not allowed in a CIFAR batch")


def _plain_dtype(spec, align=False, copy=False):
    """``numpy.dtype`` for pickles, refusing object dtypes (they could hold anything)."""
    dtype = np.dtype(spec, bool(align), bool(copy))
    if dtype.hasobject:
        raise UnsafePickleError("object arrays are not allowed in a CIFAR batch")
    return dtype


def _latin1_encode(text, encoding="latin1"):
    """What Python 3 pickles of bytes (protocol < 3) call to rebuild them."""
    if encoding.replace("-", "").lower() != "latin1":
        raise UnsafePickleError(f"encoding {encoding!r} is not allowed in a CIFAR batch")
    return text.encode("latin1")


def read_pickle(path):
    """Load a CIFAR pickle safely; keys of dicts come back as str.

    Raises FileNotFoundError when the file is missing and ValueError when it is truncated,
    corrupt, or asks for anything but NumPy arrays and basic containers.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with open(path, "rb") as f:
            obj = _CifarUnpickler(f, encoding="bytes").load()
    except UnsafePickleError as err:
        raise ValueError(f"{path}: refused to load: {err}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, MemoryError, OverflowError) as err:
        raise ValueError(f"{path}: corrupt or truncated pickle "
                         f"({type(err).__name__}: {err})") from None
    if isinstance(obj, dict):
        obj = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    return obj


def load_batch(path, label_key="labels", num_classes=10):
    """Images uint8 (N, 3, 32, 32) and labels int32 (N,) of one batch file, validated."""
    batch = read_pickle(path)
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: not a CIFAR batch (a pickled {type(batch).__name__}, "
                         "expected a dict)")
    for key in ("data", label_key):
        if key not in batch:
            raise ValueError(f"{path}: no '{key}' entry (found {sorted(map(str, batch))})")
    images = _check_images(path, batch["data"])
    labels = _check_labels(path, batch[label_key], len(images), num_classes)
    return images, labels


def _check_images(path, data):
    """``data`` as uint8 (N, 3, 32, 32); it must be (N, 3072) or (N, 3, 32, 32) uint8."""
    ok = isinstance(data, np.ndarray) and data.dtype == np.uint8 and (
        (data.ndim == 2 and data.shape[1] == np.prod(IMAGE_SHAPE))
        or data.shape[1:] == IMAGE_SHAPE)
    if not ok:
        got = (f"shape {data.shape} and dtype {data.dtype}" if isinstance(data, np.ndarray)
               else f"a {type(data).__name__}")
        raise ValueError(f"{path}: 'data' has {got}; expected uint8 (N, 3072)")
    return data.reshape((-1,) + IMAGE_SHAPE)


def _check_labels(path, labels, count, num_classes):
    """``labels`` as int32 (N,), checked against the image count and the class range."""
    try:
        labels = np.asarray(labels)
    except (ValueError, TypeError):
        raise ValueError(f"{path}: labels must be a flat list of integers") from None
    if labels.ndim != 1 or (labels.size and labels.dtype.kind not in "iu"):
        raise ValueError(f"{path}: labels must be a flat list of integers "
                         f"(got shape {labels.shape}, dtype {labels.dtype})")
    if len(labels) != count:
        raise ValueError(f"{path}: {len(labels)} labels for {count} images")
    if count and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{path}: labels range over {labels.min()}..{labels.max()}, "
                         f"outside 0..{num_classes - 1}")
    return labels.astype(np.int32)


def _label_spec(spec, label_mode):
    if label_mode not in spec.labels:
        raise ValueError(f"{spec.name} has no {label_mode!r} labels; "
                         f"choose from {sorted(spec.labels)}")
    return spec.labels[label_mode], spec.names[label_mode], spec.classes[label_mode]


def load_cifar(path, train=True, label_mode="fine", files=None):
    """Images uint8 (N, 3, 32, 32) and labels int32 (N,) of a CIFAR-10/100 folder.

    ``train`` picks the training files (all five CIFAR-10 batches, or CIFAR-100 ``train``)
    or the test file; ``label_mode`` is 'fine' or, for CIFAR-100, 'coarse' (20 super-classes).
    ``files`` overrides which batch files of ``path`` are read (e.g. ``['data_batch_1']``).
    """
    spec = detect_layout(path)
    label_key, _, num_classes = _label_spec(spec, label_mode)
    names = files if files is not None else (spec.train if train else spec.test)
    missing = [f for f in names if not os.path.isfile(os.path.join(path, f))]
    if missing:
        raise FileNotFoundError(f"{os.path.join(path, missing[0])}: no such file "
                                f"({spec.name} needs {', '.join(names)})")
    parts = [load_batch(os.path.join(path, f), label_key, num_classes) for f in names]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


def cifar_class_names(path, label_mode="fine"):
    """Class names (list of str, in label order) from the meta file of a CIFAR folder."""
    spec = detect_layout(path)
    _, names_key, num_classes = _label_spec(spec, label_mode)
    meta_path = os.path.join(path, spec.meta)
    meta = read_pickle(meta_path)
    names = meta.get(names_key) if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) != num_classes:
        raise ValueError(f"{meta_path}: expected a list of {num_classes} '{names_key}'")
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]


def cifar_mean_std(images, chunk=4096):
    """Per-channel mean and standard deviation (float32, shape (3,)) in pixel units 0..255.

    Accumulated in float64 over chunks, so 50k images never need a float copy at once.
    """
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"expected a non-empty (N, C, H, W) array, got shape {images.shape}")
    total = np.zeros(images.shape[1])
    squares = np.zeros(images.shape[1])
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].astype(np.float64)
        total += x.sum(axis=(0, 2, 3))
        squares += np.square(x).sum(axis=(0, 2, 3))
    count = images.size / images.shape[1]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
    return mean.astype(np.float32), std.astype(np.float32)


def train_val_split(num_images, val_fraction=VAL_FRACTION, seed=SPLIT_SEED):
    """Sorted (train, val) index arrays: a fixed random ``val_fraction`` held out.

    With 50,000 training images this is the papers' 45k/5k split.
    """
    num_val = int(round(num_images * val_fraction))
    if not 0 < num_val < num_images:
        raise ValueError(f"cannot hold out {val_fraction:.0%} of {num_images} images")
    order = np.random.default_rng(seed).permutation(num_images)
    return np.sort(order[num_val:]), np.sort(order[:num_val])


def stratified_split(labels, num_val, seed=SPLIT_SEED):
    """Sorted (train, val) index arrays: ``num_val`` images held out, each class in
    proportion to its share of ``labels`` (largest remainders get the rounding), drawn
    in a fixed random order; the same split for every run that passes the same labels."""
    labels = np.asarray(labels)
    if not 0 < num_val < len(labels):
        raise ValueError(f"cannot hold out {num_val} of {len(labels)} images")
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * num_val / len(labels)
    take = np.floor(quota).astype(int)
    extra = np.argsort(-(quota - take), kind="stable")[:num_val - take.sum()]
    take[extra] += 1
    order = np.random.default_rng(seed).permutation(len(labels))
    val = np.concatenate([order[labels[order] == c][:k] for c, k in zip(classes, take)])
    train = np.setdiff1d(np.arange(len(labels)), val)
    return train, np.sort(val)
