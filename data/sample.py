"""Small but complete CIFAR-10 folders, for tests and smoke runs without the full download."""
import os
import pickle

import numpy as np

from common.files import atomic_path

from .cifar import LAYOUTS, cifar_class_names, load_cifar


def write_pickle(path, obj, protocol=pickle.HIGHEST_PROTOCOL):
    """Pickle ``obj`` to ``path`` atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


def _batch(images, labels, name, str_keys):
    """A batch dict in the official layout; bytes keys like the Python-2 originals."""
    batch = {"batch_label": name, "labels": [int(v) for v in labels],
             "data": np.ascontiguousarray(images.reshape(len(images), -1))}
    if str_keys:
        return batch
    return {k.encode(): v.encode() if isinstance(v, str) else v for k, v in batch.items()}


def make_cifar_sample(source, root, train_per_batch=100, test_size=100, str_keys=False):
    """Write a complete CIFAR-10 folder ``root/cifar-10-batches-py`` from whatever batches
    ``source`` (a CIFAR-10 folder, e.g. one with only ``data_batch_1``) holds; return it.

    The five training batches take ``train_per_batch`` images each and the test batch
    ``test_size``, in order from the source images (repeated if there are too few), so
    the training and test sets share images only when the source is small. The pickles
    have bytes keys like the official Python-2 files, or str keys with ``str_keys=True``.
    """
    spec = LAYOUTS["cifar10"]
    present = [f for f in spec.train + spec.test if os.path.isfile(os.path.join(source, f))]
    images, labels = load_cifar(source, files=present)
    names = cifar_class_names(source)
    needed = 5 * train_per_batch + test_size
    take = np.resize(np.arange(len(labels)), needed)
    images, labels = images[take], labels[take]
    folder = os.path.join(root, spec.folder)
    os.makedirs(folder, exist_ok=True)
    protocol = pickle.HIGHEST_PROTOCOL if str_keys else 2
    for i, name in enumerate(spec.train):
        rows = slice(i * train_per_batch, (i + 1) * train_per_batch)
        write_pickle(os.path.join(folder, name),
                     _batch(images[rows], labels[rows], f"training batch {i + 1} of 5",
                            str_keys), protocol)
    rows = slice(5 * train_per_batch, None)
    write_pickle(os.path.join(folder, spec.test[0]),
                 _batch(images[rows], labels[rows], "testing batch 1 of 1", str_keys), protocol)
    meta = {"label_names": names, "num_cases_per_batch": train_per_batch, "num_vis": 3072}
    if not str_keys:
        meta = {k.encode(): v for k, v in meta.items()}
        meta[b"label_names"] = [n.encode() for n in names]
    write_pickle(os.path.join(folder, spec.meta), meta, protocol)
    return folder
