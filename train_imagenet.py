"""Train a ResNet on ImageNet (RecordIO files) with the 2015 paper's recipe.

    python3 train_imagenet.py --data-dir imagenet --num-layers 50 --gpus 0,1,2,3 --output-dir runs/r50

Defaults (He et al. 2015, Sec. 3.4): SGD with momentum 0.9, weight decay 1e-4, batch 256,
lr 0.1 divided by 10 at epochs 30 and 60, 90 epochs, top-1 and top-5 accuracy, the scale
augmentation (``--augmentation inception`` for random-resized crops). --data-dir holds
train.rec/.idx and val.rec/.idx (see ``python3 -m data pack-imagenet``).
"""
import dataclasses
import logging
import os

import numpy as np

from common.cli import run_main
from common.files import atomic_path
from training.args import check_num_classes, parse_imagenet_args
from training.rundir import MEAN_IMAGE, Preprocess


def parse_args(argv=None):
    """The flags, checked and typed (``training.args.parse_imagenet_args``)."""
    return parse_imagenet_args(argv, prog="train_imagenet.py")


def imagenet_data(config, num_parts, part_index):
    """Training and validation iterators, and what inference needs: the class names
    (the image folders of the im2rec lists, where there are any) and the preprocessing of
    evaluation (for config.json); --num-classes is checked against the lists' labels. The
    'scale' augmentation's per-pixel mean is computed once and kept in the run directory."""
    import data
    from data.imagenet import (AUGMENTATIONS, RGB_MEAN, RGB_STD, class_names, eval_params,
                               list_labels)
    labels, lists = list_labels(config.data_dir)
    if labels is not None:
        check_num_classes(config.num_classes, labels, " and ".join(lists))
    _, height, _ = config.image_shape
    pre = Preprocess(image_shape=tuple(config.image_shape),
                     resize=eval_params(config.image_shape)["resize"], crop=height,
                     mean=RGB_MEAN, std=RGB_STD)
    mean_image = None
    if AUGMENTATIONS[config.augmentation][1] == "pixel_mean":
        mean_image = run_pixel_mean(config)
        pre = dataclasses.replace(
            pre, mean=tuple(round(float(v), 3) for v in mean_image.mean(axis=(1, 2))),
            std=(1.0, 1.0, 1.0), mean_image=MEAN_IMAGE)
    train, val = data.get_imagenet_iters(config.data_dir, config.batch_size,
                                         config.data_nthreads, num_parts=num_parts,
                                         part_index=part_index, image_shape=config.image_shape,
                                         seed=config.seed, augmentation=config.augmentation,
                                         mean_image=mean_image)
    meta = {"preprocess": pre}
    classes = class_names(config.data_dir)
    if classes is not None and len(classes) == config.num_classes:
        meta["classes"] = classes
    return train, val, meta


def run_pixel_mean(config):
    """The per-pixel mean of the training crops: on --resume or --load-epoch, read from
    the run directory's MEAN_IMAGE that the run's first start wrote; else computed and
    written there."""
    from data.imagenet import pixel_mean, rec_paths
    path = os.path.join(config.output_dir, MEAN_IMAGE)
    if (config.resume or config.load_epoch is not None) and os.path.isfile(path):
        mean = np.load(path)
        if mean.shape == tuple(config.image_shape):
            return mean
    logging.info("computing the per-pixel mean of the training images into %s", path)
    mean = pixel_mean(rec_paths(config.data_dir)[0], config.image_shape, config.data_nthreads)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, mean)
    return mean


def main(argv=None):
    config = parse_args(argv)
    import plots
    from training import loop
    return loop.train(config, imagenet_data, curves=plots.draw_curves)


if __name__ == "__main__":
    run_main(main)
