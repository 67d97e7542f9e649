"""ImageNet: pack a folder of class folders into RecordIO, read it with ``mx.io.ImageRecordIter``.

Packing writes ``prefix.lst``, ``prefix.rec`` and ``prefix.idx`` in the formats of MXNet's
``tools/im2rec.py`` (list lines ``index<TAB>label<TAB>relative/path``, records packed with
``mx.recordio``), storing each RGB or greyscale JPEG/PNG file as it is, like im2rec's
``--pass-through``, other images (CMYK, palette, alpha) converted to RGB JPEG, or every
image re-encoded with its shorter side resized, like ``--resize``; files that do not decode
are skipped and named. im2rec.py itself is not run: it needs OpenCV's Python bindings,
which the wheel does not install.

Reading offers two training recipes (``AUGMENTATIONS``): 'scale', the 2015 paper's (He et
al. 2015, Sec. 3.4: shorter side uniform in [256, 480], a random 224 crop or its mirror,
PCA colour noise, the per-pixel mean subtracted), and 'inception', fb.resnet.torch's
random-resized crop with colour jitter and the per-channel mean and std. Evaluation
resizes the shorter side to 256 and takes the centre 224x224 crop, normalised as
training was. Every length scales with the crop (e.g. [146, 274] and 146 for 128 crops).

Command line: ``python3 -m data pack-imagenet IMAGE_FOLDER PREFIX [--resize 480]``.
"""
import contextlib
import io
import logging
import os
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from common.cli import check_image_shape
from common.files import atomic_path
from common.mx import mx
from data.folders import IMAGE_EXTS, list_folder

log = logging.getLogger(__name__)
RGB_MEAN = (123.68, 116.779, 103.939)
RGB_STD = (58.393, 57.12, 57.375)
RESIZE_RATIO = 256 / 224  # evaluation: shorter side 256 for a 224 crop
SHORT_SIDES = (256, 480)  # scale augmentation: shorter side in [256, 480] for a 224 crop


def scale_augmentation(crop):
    """He et al. 2015, Sec. 3.4 (the scale augmentation of Simonyan & Zisserman): the
    shorter side resized to a uniform random length in [256, 480] x crop / 224, a random
    crop x crop window or its mirror image, AlexNet's PCA colour noise (std 0.1); the
    per-pixel mean is subtracted afterwards. ImageRecordIter resizes the shorter side to
    the low end, then scales by a uniform factor in [1, 480 / 256]."""
    low, high = SHORT_SIDES
    return dict(resize=round(low * crop / 224), min_random_scale=1.0,
                max_random_scale=high / low, rand_crop=True, rand_mirror=True, pca_noise=0.1)


def inception_augmentation(crop):
    """fb.resnet.torch's recipe (after Szegedy et al. 2015): a random crop of 8-100 % of
    the area with aspect ratio 3/4-4/3 resized to crop x crop, a random mirror, colour
    jitter (brightness, contrast, saturation 0.4) and PCA colour noise (0.1); the
    per-channel mean is subtracted and the result divided by the per-channel std."""
    return dict(random_resized_crop=True, min_random_area=0.08, max_random_area=1.0,
                min_aspect_ratio=3 / 4, max_aspect_ratio=4 / 3, rand_mirror=True,
                brightness=0.4, contrast=0.4, saturation=0.4, pca_noise=0.1)


# --augmentation NAME -> (ImageRecordIter's training parameters for a crop, normalisation)
AUGMENTATIONS = {"scale": (scale_augmentation, "pixel_mean"),
                 "inception": (inception_augmentation, "channel_mean_std")}


@dataclass(frozen=True)
class Packed:
    """What ``pack_imagenet`` wrote: the (lst, rec, idx) paths, the images packed, those of
    them re-encoded as RGB JPEG (their modes counted), the files skipped as unreadable and
    the files left out for their extension (paths relative to the image folder)."""
    paths: tuple
    images: int
    converted: dict
    unreadable: list
    other_files: list

    def summary(self):
        """One line for the person who packed, naming what was not packed."""
        line = f"packed {self.images} images into {self.paths[1]}"
        if self.converted:
            modes = ", ".join(f"{n} {mode}" for mode, n in sorted(self.converted.items()))
            line += f"; re-encoded as RGB JPEG: {modes}"
        for what, files in (("unreadable", self.unreadable),
                            ("not images by their extension", self.other_files)):
            if files:
                shown = ", ".join(files[:5]) + (", ..." if len(files) > 5 else "")
                line += f"; skipped {len(files)} {what}: {shown}"
        return line


def pack_imagenet(image_folder, prefix, resize=0, quality=95, shuffle=True, seed=0,
                  exts=IMAGE_EXTS, progress=True):
    """Pack the images under the class sub-folders of ``image_folder`` into RecordIO.

    Labels are the indices of the sorted class folder names. Every image is decoded once
    to check it. A JPEG or PNG in RGB or greyscale is stored as it is when ``resize`` is 0;
    any other image (CMYK, palette, alpha, other formats) is stored converted to an RGB JPEG
    of ``quality``, and ``resize`` > 0 stores every image so, with its shorter side resized
    to ``resize``. A file that cannot be decoded is skipped with a warning naming it, and so
    are files without an image extension (``exts``). ``shuffle`` orders the records randomly
    with ``seed``. Returns a ``Packed``; each file is written under a temporary name and
    renamed at the end.
    """
    items, _, other_files = list_folder(image_folder, exts)
    if shuffle:
        items = [items[i] for i in np.random.default_rng(seed).permutation(len(items))]
    paths = [prefix + ext for ext in (".lst", ".rec", ".idx")]
    converted, unreadable, packed = {}, [], []
    with contextlib.ExitStack() as stack:
        lst, rec, idx = (stack.enter_context(atomic_path(p)) for p in paths)
        record = mx.recordio.MXIndexedRecordIO(idx, rec, "w")
        for label, path in tqdm(items, desc="packing", disable=not progress):
            try:
                payload, mode = _encode(os.path.join(image_folder, path), resize, quality)
            except ValueError as err:
                log.warning("skipped %s", err)
                unreadable.append(path)
                continue
            if mode is not None:
                converted[mode] = converted.get(mode, 0) + 1
            i = len(packed)
            record.write_idx(i, mx.recordio.pack(mx.recordio.IRHeader(0, label, i, 0), payload))
            packed.append((label, path))
        record.close()
        if not packed:
            raise ValueError(f"{image_folder}: none of its {len(items)} image files could be read")
        with open(lst, "w") as f:
            f.writelines(f"{i}\t{label:f}\t{path}\n" for i, (label, path) in enumerate(packed))
    return Packed(tuple(paths), len(packed), converted, unreadable, other_files)


def _encode(path, resize, quality):
    """(bytes to store for image ``path``, the mode it was converted from or None when
    the file is stored as it is); ValueError where it is not a readable image."""
    from PIL import Image, UnidentifiedImageError  # Pillow comes with matplotlib

    with open(path, "rb") as f:
        raw = f.read()
    try:
        with Image.open(io.BytesIO(raw)) as image:
            image.load()  # decodes it all: a truncated file fails here
            if resize <= 0 and image.format in ("JPEG", "PNG") and image.mode in ("RGB", "L"):
                return raw, None
            mode = f"{image.format} {image.mode}"
            image = image.convert("RGB")
            if resize > 0:
                scale = resize / min(image.size)
                image = image.resize((max(1, round(image.width * scale)),
                                      max(1, round(image.height * scale))), Image.BILINEAR)
            out = io.BytesIO()
            image.save(out, "JPEG", quality=quality)
            return out.getvalue(), mode
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
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


def class_names(data_dir):
    """The class names of the records of ``data_dir`` (see :func:`rec_paths`): the image
    folder of each label in the im2rec list beside train.rec, or None where there is no
    list or its paths have no class folder."""
    lst = os.path.splitext(rec_paths(data_dir)[0])[0] + ".lst"
    if not os.path.isfile(lst):
        return None
    folders = {}
    with open(lst) as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) == 3 and "/" in fields[2]:
                folders.setdefault(int(float(fields[1])), fields[2].split("/")[0])
    if not folders or sorted(folders) != list(range(len(folders))):
        return None
    return [folders[label] for label in range(len(folders))]


class RecordIter(mx.io.DataIter):
    """Wraps the ``ImageRecordIter`` that ``make(epoch)`` builds, subtracting
    ``mean_image`` (a (C, H, W) array) where it is given and casting the float32 output
    to ``dtype`` (it makes no float16 itself).

    With ``num_batches`` (training) every epoch has exactly that many batches, from an
    iterator built afresh by ``set_epoch`` (``data.start_epoch``), so that an epoch's order
    and augmentation depend only on its number and a resumed run reads what an
    uninterrupted one would. The images past the last full batch of a pass are left out
    of that epoch (another draw of them next epoch). Without (evaluation) the iterator is
    rebuilt at every ``reset``, so that each pass covers the data the same way:
    ``ImageRecordIter.reset`` rolls the images that completed its last batch over into the
    next pass, which would shift and shorten it.
    """

    def __init__(self, make, dtype="float32", num_batches=None, mean_image=None):
        self._make, self.num_batches, self.dtype = make, num_batches, np.dtype(dtype)
        self._mean = None if mean_image is None else mx.nd.array(mean_image[None])
        self._iter = make(0)
        self._count = 0
        super().__init__(self._iter.batch_size)
        desc = self._iter.provide_data[0]
        self.provide_data = [mx.io.DataDesc(desc.name, desc.shape, self.dtype, desc.layout)]
        self.provide_label = self._iter.provide_label

    def __len__(self):
        if self.num_batches is None:
            raise TypeError("an evaluation RecordIter has no fixed number of batches")
        return self.num_batches

    def set_epoch(self, epoch):
        """Start epoch ``epoch`` (0-based): a training iterator seeded from it."""
        self._rebuild(epoch if self.num_batches is not None else 0)

    def reset(self):
        if self.num_batches is None and self._count:
            self._rebuild(0)
        self._count = 0

    def _rebuild(self, epoch):
        self._iter = None  # free the old one's threads and buffers first
        self._iter = self._make(epoch)
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
        if self._mean is not None:
            batch.data = [mx.nd.broadcast_sub(d, self._mean) for d in batch.data]
        if self.dtype != np.float32:
            batch.data = [d.astype(self.dtype) for d in batch.data]
        return batch


def count_records(rec_path):
    """Number of records of a .rec file, from the lines of its .idx file."""
    with open(os.path.splitext(rec_path)[0] + ".idx", "rb") as f:
        return sum(1 for line in f if line.strip())


def epoch_seeds(seed, epoch):
    """(shuffle seed, augmentation seed) of epoch ``epoch`` of a run seeded ``seed``."""
    return [int(v % 2 ** 31) for v in np.random.SeedSequence([seed, epoch]).generate_state(2)]


def eval_params(shape):
    """ImageRecordIter's parameters of evaluation: shorter side resized to 256/224 of
    the crop, the centre crop."""
    return dict(resize=round(shape[1] * RESIZE_RATIO), rand_crop=False)


def pixel_mean(rec_path, image_shape=(3, 224, 224), data_nthreads=4, batch_size=100):
    """The per-pixel mean (a float32 (C, H, W) array, pixel units) of the images of
    ``rec_path`` as evaluation crops them (``eval_params``)."""
    shape = check_image_shape(image_shape)
    records = count_records(rec_path)
    images = mx.io.ImageRecordIter(
        path_imgrec=rec_path, path_imgidx=os.path.splitext(rec_path)[0] + ".idx",
        data_shape=shape, batch_size=min(batch_size, records), preprocess_threads=data_nthreads,
        round_batch=True, shuffle=False, verbose=False, **eval_params(shape))
    # round_batch completes the last batch from the first images; without it the
    # iterator leaves uninitialised values there
    total, count = np.zeros(shape, np.float64), 0
    for batch in images:
        x = batch.data[0].asnumpy()[:records - count]
        total += x.sum(axis=0)
        count += len(x)
    return (total / count).astype(np.float32)


def get_imagenet_iters(data_dir, batch_size, data_nthreads=4, num_parts=1, part_index=0,
                       dtype="float32", image_shape=(3, 224, 224), seed=0,
                       augmentation="scale", mean_image=None):
    """Training and validation iterators over RecordIO files with an ImageNet recipe.

    ``data_dir`` is a folder with train.rec/.idx and val.rec/.idx, or a pair of .rec paths
    (each with its .idx beside it); ``image_shape`` the (channels, height, width) of the
    crops. ``data_nthreads`` decoding threads; ``num_parts`` / ``part_index`` split both
    sets for distributed workers. ``augmentation`` names the training recipe
    (``AUGMENTATIONS``): 'scale' (the 2015 paper's; subtracts ``mean_image``, the
    per-pixel mean of ``pixel_mean``, from training and validation crops alike) or
    'inception' (random-resized crops; per-channel mean and std). ``seed`` seeds every
    epoch's order and augmentation (``epoch_seeds``).

    Training: ``(records // num_parts) // batch_size`` batches per epoch on every worker
    (so synchronous distributed training never waits on a worker with an extra batch).
    Validation: ``eval_params``, every pass the same, the last batch completed from the
    first images with ``DataBatch.pad`` counting them.
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
    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {augmentation!r}; valid: "
                         f"{', '.join(AUGMENTATIONS)}")
    train_params, normalisation = AUGMENTATIONS[augmentation]
    if normalisation == "pixel_mean":
        if mean_image is None or tuple(np.shape(mean_image)) != shape:
            raise ValueError(f"augmentation {augmentation!r} needs the per-pixel mean of "
                             f"the {'x'.join(map(str, shape))} crops (data.pixel_mean)")
        mean_std = {}
    else:
        mean_image = None
        mean_std = dict(zip(("mean_r", "mean_g", "mean_b"), RGB_MEAN),
                        **dict(zip(("std_r", "std_g", "std_b"), RGB_STD)))
    num_batches = count_records(train_rec) // num_parts // batch_size
    if num_batches == 0:
        raise ValueError(f"{train_rec}: too few images for one batch of {batch_size} "
                         f"per part ({num_parts} parts)")
    common = dict(data_shape=shape, batch_size=batch_size, preprocess_threads=data_nthreads,
                  num_parts=num_parts, part_index=part_index, data_name="data",
                  label_name="softmax_label", round_batch=True, verbose=False, **mean_std)

    def train_iter(epoch):
        order, augment = epoch_seeds(seed, epoch)
        return mx.io.ImageRecordIter(
            path_imgrec=train_rec, path_imgidx=os.path.splitext(train_rec)[0] + ".idx",
            shuffle=True, seed=order, seed_aug=augment, **train_params(shape[1]), **common)

    train = RecordIter(train_iter, dtype, num_batches, mean_image)
    val = RecordIter(lambda epoch: mx.io.ImageRecordIter(
        path_imgrec=val_rec, path_imgidx=os.path.splitext(val_rec)[0] + ".idx",
        shuffle=False, **eval_params(shape), **common), dtype, mean_image=mean_image)
    return train, val
