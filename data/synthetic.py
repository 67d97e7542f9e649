"""Generated CIFAR-10/100 folders: deterministic, small, learnable, in the official layout.

Tests and smoke runs need a CIFAR folder that a fresh clone can make without a download.
Each class has its own hue and its own stripe pattern (orientation and frequency); every
image adds a random stripe phase, a little hue and brightness jitter and pixel noise, so a
network has something to learn and training lowers the loss.

The files are written the way the official "python version" archives were: Python-2
pickles (protocol 2) whose strings are Python-2 ``str`` (opcodes ``SHORT_BINSTRING`` /
``BINSTRING``), so ``pickle.load(f, encoding='bytes')`` gives bytes keys and
``encoding='latin1'`` str keys, exactly as with the real files.
"""
import os
import pickle
import struct

import numpy as np
from matplotlib.colors import hsv_to_rgb

from common.files import atomic_path

from .cifar import IMAGE_SHAPE, layout

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck"]


class _Python2Pickler(pickle._Pickler):
    """Protocol-2 pickler that writes ``str`` and ``bytes`` as Python-2 ``str`` opcodes."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str


def write_python2_pickle(path, obj):
    """Pickle ``obj`` to ``path`` atomically as a Python-2 protocol-2 pickle."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        _Python2Pickler(f, protocol=2).dump(obj)


def synthetic_images(labels, num_classes, rng):
    """uint8 images (N, 3, 32, 32) of the classes ``labels``.

    Class ``k`` has hue ``(k % 10) / 10`` and one of ten stripe patterns (orientation
    ``18 * p`` degrees, ``2 + p % 3`` stripes), ``p = k`` for ten classes, ``k // 10`` for
    a hundred.
    """
    labels = np.asarray(labels)
    n = len(labels)
    hue = (labels % 10) / 10 + rng.uniform(-0.02, 0.02, n)
    pattern = labels // 10 if num_classes > 10 else labels   # ten stripe patterns
    angle = np.pi * pattern / 10
    cycles = 2 + pattern % 3                                 # stripes across the image
    phase = rng.uniform(0, 2 * np.pi, n)
    size = IMAGE_SHAPE[1]
    y, x = np.mgrid[0:size, 0:size] / size
    along = x[None] * np.cos(angle)[:, None, None] + y[None] * np.sin(angle)[:, None, None]
    stripes = np.sin(2 * np.pi * cycles[:, None, None] * along + phase[:, None, None])
    brightness = rng.uniform(0.75, 0.95, n)
    colour = hsv_to_rgb(np.stack([hue % 1, np.full(n, 0.8), brightness], axis=1))  # (N, 3)
    shade = 0.65 + 0.35 * stripes                                    # (N, 32, 32)
    images = colour[:, :, None, None] * shade[:, None] * 255
    images += rng.normal(0, 12, images.shape)
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def _balanced_labels(count, num_classes, rng):
    """``count`` labels cycling through the classes, shuffled (every class present when
    ``count >= num_classes``)."""
    return rng.permutation(np.arange(count) % num_classes)


def _file_names(labels, names, start):
    return [f"{names[k]}_s_{start + i:06d}.png".encode() for i, k in enumerate(labels)]


def make_synthetic_cifar(root, dataset="cifar10", train_per_batch=100, test_size=100, seed=0):
    """Write a generated CIFAR folder ``root/cifar-10-batches-py`` (``data_batch_1`` ..
    ``data_batch_5``, ``test_batch``, ``batches.meta``) or ``root/cifar-100-python``
    (``train``, ``test``, ``meta``) and return its path.

    Each training file holds ``train_per_batch`` images (five files for CIFAR-10, one for
    CIFAR-100) and the test file ``test_size``; labels cycle through the classes, so
    every class appears when a file holds at least as many images as there are classes.
    CIFAR-100's coarse label of fine class ``k`` is ``k // 5``. The same ``seed`` writes
    the same files.
    """
    spec = layout(dataset)
    if train_per_batch < 1 or test_size < 1:
        raise ValueError(f"train_per_batch and test_size must be at least 1 "
                         f"(got {train_per_batch} and {test_size})")
    rng = np.random.default_rng(seed)
    num_classes = spec.classes["fine"]
    if dataset == "cifar10":
        names = CIFAR10_NAMES
        meta = {b"num_cases_per_batch": train_per_batch, b"label_names": names, b"num_vis": 3072}
    else:
        names = [f"class_{k:02d}" for k in range(num_classes)]
        meta = {b"fine_label_names": names,
                b"coarse_label_names": [f"superclass_{k:02d}" for k in range(20)]}
    folder = os.path.join(root, spec.folder)
    os.makedirs(folder, exist_ok=True)
    files = [(f, train_per_batch, f"training batch {i + 1} of {len(spec.train)}")
             for i, f in enumerate(spec.train)]
    files.append((spec.test[0], test_size, "testing batch 1 of 1"))
    start = 0
    for name, count, batch_label in files:
        labels = _balanced_labels(count, num_classes, rng)
        batch = {b"batch_label": batch_label}
        if dataset == "cifar10":
            batch[b"labels"] = labels.tolist()
        else:
            batch[b"fine_labels"] = labels.tolist()
            batch[b"coarse_labels"] = (labels // 5).tolist()
        batch[b"data"] = synthetic_images(labels, num_classes, rng).reshape(count, -1)
        batch[b"filenames"] = _file_names(labels, names, start)
        write_python2_pickle(os.path.join(folder, name), batch)
        start += count
    write_python2_pickle(os.path.join(folder, spec.meta), meta)
    return folder
