"""The CIFAR training/evaluation iterator: augmentation of the papers, prepared ahead of time.

Augmentation (He et al. 2015, Sec. 4.2, as in fb.resnet.torch): per-channel normalisation,
then 4 zero pixels of padding on each side, a random 32x32 crop and a random horizontal
flip, chosen per image. Padding comes after normalisation, so padded pixels are exactly 0
in what the network sees. Batches are built with whole-batch NumPy operations in a
background thread while the model trains on the previous ones. Two helpers work on any
iterator the training loop is given: ``count_batches`` and ``start_epoch``.
"""
import queue
import threading
import weakref
from collections import namedtuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from common.mx import mx

from .normalization import normalize

PAD = 4
LAST_BATCH = ("pad", "discard")
DTYPES = ("float32", "float16")

EpochPlan = namedtuple("EpochPlan", "index offsets flips pad")


def pad_crop_flip(images, offsets, flips, pad=PAD):
    """Zero-pad ``pad`` pixels, crop back to the input size at ``offsets``, flip where asked.

    images: (N, C, H, W); offsets: int (N, 2) of (row, column) in 0..2*pad in the padded
    image; flips: bool (N,). Returns a new (N, C, H, W) array of the same dtype.
    """
    n, c, h, w = images.shape
    padded = np.zeros((n, c, h + 2 * pad, w + 2 * pad), images.dtype)
    padded[:, :, pad:pad + h, pad:pad + w] = images
    windows = sliding_window_view(padded, (h, w), axis=(2, 3))  # (N, C, 2p+1, 2p+1, H, W)
    crops = windows[np.arange(n), :, offsets[:, 0], offsets[:, 1]]
    crops[flips] = crops[flips, :, :, ::-1]
    return crops


class _Prefetcher:
    """Runs ``method(i)`` for i in range(count) in a daemon thread, ``depth`` results ahead.

    ``get()`` returns the results in order and re-raises any exception of the worker. The
    thread holds only a weak reference to ``method``'s object, so an iterator that is dropped
    mid-epoch is collected and its thread stops.
    """

    def __init__(self, method, count, depth=3):
        self._queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._error = None
        self._thread = threading.Thread(target=self._run, args=(weakref.WeakMethod(method), count),
                                        daemon=True, name="cifar-prefetch")
        self._thread.start()

    def _run(self, method_ref, count):
        for i in range(count):
            method = method_ref()
            if method is None:
                return
            try:
                item = (method(i), None)
            except BaseException as err:  # handed to the consumer, which re-raises it
                item = (None, err)
            del method
            if not self._put(item) or item[1] is not None:
                return

    def _put(self, item):
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def get(self):
        if self._error is None:
            result, self._error = self._queue.get()
        if self._error is not None:
            raise self._error
        return result

    def close(self):
        """Stop the worker and wait for it to finish its current batch."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()


class CifarIter(mx.io.DataIter):
    """An ``mx.io.DataIter`` over in-memory CIFAR images with the papers' augmentation.

    images: uint8 (N, 3, H, W); labels: int (N,); mean, std: per-channel statistics of the
    training set in pixel units 0..255 (see ``cifar_mean_std``). ``augment`` turns on the
    random pad-crop-flip; ``shuffle`` defaults to ``augment``.

    Determinism: the order and augmentation of epoch e are a pure function of (seed, e),
    whatever the number of parts. ``set_epoch(e)`` restarts at the beginning of epoch e, so a
    run resumed at epoch k sees the batches an uninterrupted run would. ``reset()`` starts the
    next epoch, except right after construction, ``set_epoch`` or another ``reset`` (no batch
    read yet), where it only rewinds: both ``fit``-style loops (reset at the end of an epoch)
    and ``reset``-then-iterate loops see epochs 0, 1, 2, ...

    Last batch: 'discard' drops the images left over after the last full batch (different
    ones each shuffled epoch); 'pad' completes it by repeating images from the start of
    the epoch and reports their number in ``DataBatch.pad``, to be left out of evaluation.

    Parts: ``num_parts``/``part_index`` give worker ``part_index`` every ``num_parts``-th image
    of the epoch's order; parts are disjoint and all yield the same number of batches
    (``len(it)``), so distributed workers stay in step.

    ``DataBatch.index`` holds the dataset indices of the batch's images; ``mean`` and ``std``
    the normalisation statistics (float32, pixel units).
    """

    def __init__(self, images, labels, batch_size, augment, mean, std, seed=0, shuffle=None,
                 last_batch="pad", num_parts=1, part_index=0, dtype="float32", data_name="data",
                 label_name="softmax_label", prefetch=True):
        super().__init__(batch_size)
        _check_args(images, labels, batch_size, last_batch, num_parts, part_index, dtype)
        self.images = images
        self.labels = np.asarray(labels, np.float32)
        self.augment = bool(augment)
        self.shuffle = self.augment if shuffle is None else bool(shuffle)
        self.seed, self.last_batch, self.dtype = seed, last_batch, np.dtype(dtype)
        self.num_parts, self.part_index, self.prefetch = num_parts, part_index, prefetch
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.num_batches = _num_batches(len(images), batch_size, num_parts, last_batch)
        self._data_desc = mx.io.DataDesc(data_name, (batch_size,) + images.shape[1:],
                                         self.dtype, "NCHW")
        self._label_desc = mx.io.DataDesc(label_name, (batch_size,), np.float32)
        self._prefetcher = None
        self.set_epoch(0)

    @property
    def provide_data(self):
        return [self._data_desc]

    @property
    def provide_label(self):
        return [self._label_desc]

    def __len__(self):
        return self.num_batches

    def set_epoch(self, epoch):
        """Restart at the first batch of ``epoch``."""
        self.close()
        self.epoch = int(epoch)
        self._plan = self.epoch_plan(self.epoch)
        self._cursor = 0
        if self.prefetch:
            self._prefetcher = _Prefetcher(self._make_batch, self.num_batches)

    def reset(self):
        """Start the next epoch, or rewind to the start of this one if nothing was read yet."""
        if self._cursor:
            self.set_epoch(self.epoch + 1)

    def next(self):
        if self._cursor >= self.num_batches:
            raise StopIteration
        if self._prefetcher is not None:
            batch = self._prefetcher.get()
        else:
            batch = self._make_batch(self._cursor)
        self._cursor += 1
        return batch

    def close(self):
        """Stop the background thread, if any (``set_epoch`` starts a new one)."""
        if self._prefetcher is not None:
            self._prefetcher.close()
            self._prefetcher = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the daemon thread dies with it
            pass

    def epoch_plan(self, epoch):
        """This part's image indices, crop offsets and flips of ``epoch``, batch by batch."""
        n = len(self.labels)
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        offsets = rng.integers(0, 2 * PAD + 1, size=(n, 2))
        flips = rng.random(n) < 0.5
        mine = slice(self.part_index, None, self.num_parts)
        index, offsets, flips = order[mine], offsets[mine], flips[mine]
        count = self.num_batches * self.batch_size
        pad = max(0, count - len(index))
        return EpochPlan(np.resize(index, count), np.resize(offsets, (count, 2)),
                         np.resize(flips, count), pad)

    def _make_batch(self, b):
        """Batch ``b`` of the current epoch as an ``mx.io.DataBatch``."""
        rows = slice(b * self.batch_size, (b + 1) * self.batch_size)
        index = self._plan.index[rows]
        data = normalize(self.images[index], self.mean, self.std)
        if self.augment:
            data = pad_crop_flip(data, self._plan.offsets[rows], self._plan.flips[rows])
        pad = self._plan.pad if b == self.num_batches - 1 else 0
        return mx.io.DataBatch([mx.nd.array(data, dtype=self.dtype)],
                               [mx.nd.array(self.labels[index], dtype=np.float32)], pad=pad,
                               index=index, provide_data=self.provide_data,
                               provide_label=self.provide_label)


def _num_batches(n, batch_size, num_parts, last_batch):
    """Batches per epoch, the same for every part."""
    if last_batch == "pad":
        return -(-(-(-n // num_parts)) // batch_size)  # ceil(ceil(n / parts) / batch)
    count = (n // num_parts) // batch_size
    if count == 0:
        raise ValueError(f"{n} images in {num_parts} part(s) do not fill one batch of "
                         f"{batch_size} with last_batch='discard'")
    return count


def _check_args(images, labels, batch_size, last_batch, num_parts, part_index, dtype):
    if not (isinstance(images, np.ndarray) and images.ndim == 4 and images.dtype == np.uint8):
        raise ValueError("images must be a uint8 array (N, C, H, W), got "
                         f"{getattr(images, 'dtype', type(images).__name__)} "
                         f"{getattr(images, 'shape', '')}")
    if len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} images")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if last_batch not in LAST_BATCH:
        raise ValueError(f"last_batch must be one of {LAST_BATCH}, got {last_batch!r}")
    if not 0 <= part_index < num_parts:
        raise ValueError(f"part_index must be in 0..num_parts-1, got {part_index} "
                         f"of {num_parts}")
    if len(images) < num_parts:
        raise ValueError(f"{len(images)} images cannot be split into {num_parts} parts")
    if str(dtype) not in DTYPES and getattr(dtype, "__name__", None) not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")


def count_batches(data_iter):
    """Batches per epoch of a CifarIter, ResizeIter or NDArrayIter."""
    if hasattr(data_iter, "__len__"):
        return len(data_iter)
    if isinstance(data_iter, mx.io.ResizeIter):
        return data_iter.size
    if isinstance(data_iter, mx.io.NDArrayIter):
        n, b = data_iter.num_data, data_iter.batch_size
        return n // b if data_iter.last_batch_handle == "discard" else -(-n // b)
    raise ValueError(f"cannot tell the batches per epoch of a {type(data_iter).__name__}; "
                     "wrap it in mx.io.ResizeIter")


def start_epoch(data_iter, epoch):
    """Position ``data_iter`` at the beginning of ``epoch`` (exactly, where it can)."""
    if hasattr(data_iter, "set_epoch"):
        data_iter.set_epoch(epoch)
    else:
        data_iter.reset()
