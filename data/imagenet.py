"""ImageNet: pack a folder of class folders into RecordIO, read it with ``mx.io.ImageRecordIter``.

Packing writes ``prefix.lst``, ``prefix.rec`` and ``prefix.idx`` in the formats of MXNet's
``tools/im2rec.py`` (list lines ``index<TAB>label<TAB>relative/path``, records packed with
``mx.recordio``), storing each image file as it is, like im2rec's ``--pass-through``, or
re-encoded with its shorter side resized, like ``--resize``. im2rec.py itself is not run:
it needs OpenCV's Python bindings, which the wheel does not install.

Reading follows the ImageNet recipe (He et al. 2015, Sec. 3.4, as in fb.resnet.torch):
training takes a random-resized crop (area 8-100 %, aspect ratio 3/4-4/3), a random flip,
colour jitter (brightness, contrast, saturation 0.4) and PCA lighting noise (0.1);
validation resizes the shorter side to 256 and takes the centre 224x224 crop. Both
subtract the ImageNet RGB mean and divide by its std.

Command line: ``python3 -m data pack-imagenet IMAGE_FOLDER PREFIX [--resize 480]``.
"""
import contextlib
import io
import os

import numpy as np
from tqdm import tqdm

from common.cli import check_image_shape
from common.files import atomic_path
from common.mx import mx

IMAGE_EXTS = (".jpg", ".jpeg", ".png")
RGB_MEAN = (123.68, 116.779, 103.939)
RGB_STD = (58.393, 57.12, 57.375)
TRAIN_AUGMENTATION = dict(random_resized_crop=True, min_random_area=0.08, max_random_area=1.0,
                          min_aspect_ratio=3 / 4, max_aspect_ratio=4 / 3, rand_mirror=True,
                          brightness=0.4, contrast=0.4, saturation=0.4, pca_noise=0.1)
RESIZE_RATIO = 256 / 224  # validation: shorter side 256 for a 224 crop


def list_images(image_folder, exts=IMAGE_EXTS):
    """[(label, path relative to image_folder)] and the class names (sorted sub-folders)."""
    if not os.path.isdir(image_folder):
        raise FileNotFoundError(f"{image_folder}: no such folder")
    classes = sorted(d for d in os.listdir(image_folder)
                     if os.path.isdir(os.path.join(image_folder, d)))
    if not classes:
        raise ValueError(f"{image_folder}: no class sub-folders")
    items = []
    for label, name in enumerate(classes):
        for folder, subfolders, files in os.walk(os.path.join(image_folder, name)):
            subfolders.sort()
            items += [(label, os.path.relpath(os.path.join(folder, f), image_folder))
                      for f in sorted(files) if os.path.splitext(f)[1].lower() in exts]
    if not items:
        raise ValueError(f"{image_folder}: no {'/'.join(exts)} images in its class folders")
    return items, classes


def pack_imagenet(image_folder, prefix, resize=0, quality=95, shuffle=True, seed=0,
                  exts=IMAGE_EXTS, progress=True):
    """Pack the images under the class sub-folders of ``image_folder`` into RecordIO.

    Labels are the indices of the sorted class folder names. ``resize`` > 0 re-encodes
    each image as JPEG (``quality``) with its shorter side resized to ``resize``; 0 stores
    the files unchanged. ``shuffle`` orders the records randomly with ``seed``. Returns the
    paths (lst, rec, idx); each file is written under a temporary name and renamed at the end.
    """
    items, _ = list_images(image_folder, exts)
    if shuffle:
        items = [items[i] for i in np.random.default_rng(seed).permutation(len(items))]
    paths = [prefix + ext for ext in (".lst", ".rec", ".idx")]
    with contextlib.ExitStack() as stack:
        lst, rec, idx = (stack.enter_context(atomic_path(p)) for p in paths)
        with open(lst, "w") as f:
            f.writelines(f"{i}\t{label:f}\t{path}\n" for i, (label, path) in enumerate(items))
        record = mx.recordio.MXIndexedRecordIO(idx, rec, "w")
        for i, (label, path) in enumerate(tqdm(items, desc="packing", disable=not progress)):
            payload = _encode(os.path.join(image_folder, path), resize, quality)
            record.write_idx(i, mx.recordio.pack(mx.recordio.IRHeader(0, label, i, 0), payload))
        record.close()
    return tuple(paths)


def _encode(path, resize, quality):
    """The bytes to store for image ``path``: the file itself, or a resized JPEG."""
    from PIL import Image, UnidentifiedImageError  # Pillow comes with matplotlib

    with open(path, "rb") as f:
        raw = f.read()
    try:
        with Image.open(io.BytesIO(raw)) as image:
            if resize <= 0:
                image.verify()
                return raw
            image = image.convert("RGB")
            scale = resize / min(image.size)
            image = image.resize((max(1, round(image.width * scale)),
                                  max(1, round(image.height * scale))), Image.BILINEAR)
            out = io.BytesIO()
            image.save(out, "JPEG", quality=quality)
            return out.getvalue()
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"{path}: not a readable image ({err})") from None


def rec_paths(data_dir):
    """(train.rec, val.rec) in folder ``data_dir``, or ``data_dir`` itself as a pair of paths."""
    if isinstance(data_dir, (tuple, list)):
        if len(data_dir) != 2:
            raise ValueError(f"expected (train.rec, val.rec), got {data_dir!r}")
        paths = tuple(data_dir)
    else:
        paths = (os.path.join(data_dir, "train.rec"), os.path.join(data_dir, "val.rec"))
    for path in paths:
        for needed in (path, os.path.splitext(path)[0] + ".idx"):
            if not os.path.isfile(needed):
                raise FileNotFoundError(f"{needed}: no such file (create it with "
                                        "data.pack_imagenet)")
    return paths


def list_labels(data_dir):
    """The labels (int array) of the im2rec lists (``.lst``) beside the .rec files of
    ``data_dir`` (see :func:`rec_paths`) and those lists' paths, or (None, []) when there
    are none."""
    labels, lists = [], []
    for rec in rec_paths(data_dir):
        lst = os.path.splitext(rec)[0] + ".lst"
        if not os.path.isfile(lst):
            continue
        lists.append(lst)
        with open(lst) as f:
            for n, line in enumerate(f, 1):
                fields = line.split("\t")
                if not line.strip():
                    continue
                try:
                    labels.append(float(fields[1]))  # index, label, path
                except (IndexError, ValueError):
                    raise ValueError(f"{lst}:{n}: not an im2rec list line "
                                     "(index<TAB>label<TAB>path)") from None
    return (np.array(labels, np.int64) if labels else None), lists


class RecordIter(mx.io.DataIter):
    """Wraps the ``ImageRecordIter`` that ``make()`` builds, casting its float32 output to
    ``dtype`` (it makes no float16 itself).

    With ``num_batches`` (training) every epoch has exactly that many batches, the inner
    iterator restarting whenever it runs out. Without (evaluation) the inner iterator is
    rebuilt at every ``reset``, so that each pass covers the data the same way:
    ``ImageRecordIter.reset`` rolls the images that completed its last batch over into the
    next pass, which would shift and shorten it.
    """

    def __init__(self, make, dtype="float32", num_batches=None):
        self._make, self.num_batches, self.dtype = make, num_batches, np.dtype(dtype)
        self._iter = make()
        self._count = 0
        super().__init__(self._iter.batch_size)
        desc = self._iter.provide_data[0]
        self.provide_data = [mx.io.DataDesc(desc.name, desc.shape, self.dtype, desc.layout)]
        self.provide_label = self._iter.provide_label

    def __len__(self):
        if self.num_batches is None:
            raise TypeError("an evaluation RecordIter has no fixed number of batches")
        return self.num_batches

    def reset(self):
        if self.num_batches is None and self._count:
            self._iter = None  # free the old one's threads and buffers first
            self._iter = self._make()
        self._count = 0

    def next(self):
        if self._count == self.num_batches:
            raise StopIteration
        try:
            batch = self._iter.next()
        except StopIteration:
            if self.num_batches is None:
                raise
            self._iter.reset()
            batch = self._iter.next()
        self._count += 1
        if self.dtype != np.float32:
            batch.data = [d.astype(self.dtype) for d in batch.data]
        return batch


def count_records(rec_path):
    """Number of records of a .rec file, from the lines of its .idx file."""
    with open(os.path.splitext(rec_path)[0] + ".idx", "rb") as f:
        return sum(1 for line in f if line.strip())


def get_imagenet_iters(data_dir, batch_size, data_nthreads=4, num_parts=1, part_index=0,
                       dtype="float32", image_shape=(3, 224, 224), seed=0):
    """Training and validation iterators over RecordIO files with the ImageNet recipe.

    ``data_dir`` is a folder with train.rec/.idx and val.rec/.idx, or a pair of .rec paths
    (each with its .idx beside it); ``image_shape`` the (channels, height, width) of the
    crops. ``data_nthreads`` decoding threads; ``num_parts`` / ``part_index`` split both
    sets for distributed workers. ``seed`` seeds the shuffling; the random augmentation is
    drawn afresh by MXNet's decoding threads.

    Training: an ``mx.io.ImageRecordIter`` that reshuffles every epoch, held to
    ``(records // num_parts) // batch_size`` batches per epoch on every worker (so
    synchronous distributed training never waits on a worker with an extra batch); the
    images left over roll into the next epoch. Validation: the shorter side resized to
    256/224 of the crop size and the centre cropped, every pass the same, the last batch
    completed from the first images with ``DataBatch.pad`` counting them.
    """
    train_rec, val_rec = rec_paths(data_dir)
    shape = check_image_shape(image_shape)
    if batch_size < 1 or data_nthreads < 1:
        raise ValueError(f"batch_size and data_nthreads must be positive, got {batch_size} "
                         f"and {data_nthreads}")
    if not 0 <= part_index < num_parts:
        raise ValueError(f"part_index must be in 0..num_parts-1, got {part_index} of {num_parts}")
    if str(dtype) not in ("float32", "float16"):
        raise ValueError(f"dtype must be float32 or float16, got {dtype!r}")
    num_batches = count_records(train_rec) // num_parts // batch_size
    if num_batches == 0:
        raise ValueError(f"{train_rec}: too few images for one batch of {batch_size} "
                         f"per part ({num_parts} parts)")
    mean_std = dict(zip(("mean_r", "mean_g", "mean_b"), RGB_MEAN),
                    **dict(zip(("std_r", "std_g", "std_b"), RGB_STD)))
    common = dict(data_shape=shape, batch_size=batch_size, preprocess_threads=data_nthreads,
                  num_parts=num_parts, part_index=part_index, data_name="data",
                  label_name="softmax_label", round_batch=True, verbose=False, **mean_std)
    train = RecordIter(lambda: mx.io.ImageRecordIter(
        path_imgrec=train_rec, path_imgidx=os.path.splitext(train_rec)[0] + ".idx",
        shuffle=True, seed=seed, **TRAIN_AUGMENTATION, **common), dtype, num_batches)
    val = RecordIter(lambda: mx.io.ImageRecordIter(
        path_imgrec=val_rec, path_imgidx=os.path.splitext(val_rec)[0] + ".idx",
        shuffle=False, resize=round(shape[1] * RESIZE_RATIO), rand_crop=False, **common),
        dtype)
    return train, val

