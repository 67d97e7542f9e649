"""One call from a data folder to the (train, val) iterators of the papers' CIFAR recipe."""
import numpy as np

from .cifar import cifar_folder, cifar_mean_std, load_cifar, stratified_split, train_val_split
from .download import download_cifar
from .iterator import CifarIter

SUBSET_SEED = 0  # the subset of ``num_examples`` is the same for every training seed


def get_cifar_iters(data_dir, dataset="cifar10", batch_size=128, validation_split=False,
                    label_mode="fine", seed=0, num_parts=1, part_index=0, dtype="float32",
                    download=False, prefetch=True, num_examples=None, validation_images=None):
    """Training and evaluation ``CifarIter`` for CIFAR-10/100 in ``data_dir``.

    ``data_dir`` holds the archive's folder (``cifar-10-batches-py``/``cifar-100-python``) or
    is that folder; ``download=True`` fetches it first when absent. ``validation_split=True``
    trains on 45k images and evaluates on the other 5k of the training files (a fixed split,
    the same for every seed); ``validation_images=N`` instead holds out N images of the
    training files, stratified by class (also fixed); otherwise evaluation uses the test
    set. Normalisation uses the training images' per-channel mean and std. Training
    augments, reshuffles every epoch and drops the last partial batch; evaluation keeps the
    order and pads the last batch (``DataBatch.pad``). Both are split into ``num_parts``
    parts for distributed workers.
    ``num_examples`` keeps a fixed random subset of that many training images (smoke runs).
    """
    folder = download_cifar(dataset, data_dir) if download else cifar_folder(data_dir, dataset)
    images, labels = load_cifar(folder, train=True, label_mode=label_mode)
    if validation_split and validation_images:
        raise ValueError("give validation_split or validation_images, not both")
    if validation_split or validation_images:
        train_idx, val_idx = (stratified_split(labels, validation_images) if validation_images
                              else train_val_split(len(labels)))
        val_images, val_labels = images[val_idx], labels[val_idx]
        images, labels = images[train_idx], labels[train_idx]
    else:
        val_images, val_labels = load_cifar(folder, train=False, label_mode=label_mode)
    if num_examples is not None:
        if not 0 < num_examples <= len(labels):
            raise ValueError(f"num_examples must be in 1..{len(labels)}, got {num_examples}")
        keep = np.sort(np.random.RandomState(SUBSET_SEED).permutation(len(labels))[:num_examples])
        images, labels = images[keep], labels[keep]
    mean, std = cifar_mean_std(images)
    common = dict(batch_size=batch_size, mean=mean, std=std, seed=seed, num_parts=num_parts,
                  part_index=part_index, dtype=dtype, prefetch=prefetch)
    train = CifarIter(images, labels, augment=True, last_batch="discard", **common)
    val = CifarIter(val_images, val_labels, augment=False, last_batch="pad", **common)
    return train, val
