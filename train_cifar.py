"""Train a ResNet on CIFAR-10/100 with the papers' recipe.

    python3 train_cifar.py --download --data-dir cifar --num-layers 110 --output-dir runs/r110

Defaults (He et al. 2015, Sec. 4.2; 2016, Sec. 4): Nesterov momentum 0.9, weight decay
1e-4, batch 128, lr 0.1 divided by 10 at 32k and 48k iterations, 64k iterations, MSRA
initialisation; 400 warm-up iterations at lr 0.01 for 'original' units of depth >= 110.
"""
import numpy as np

from common.cli import run_main
from training.args import check_num_classes, parse_cifar_args
from training.rundir import Preprocess


def parse_args(argv=None):
    """The flags, checked and typed (``training.args.parse_cifar_args``)."""
    return parse_cifar_args(argv, prog="train_cifar.py")


def cifar_data(config, num_parts, part_index):
    """Training and test iterators, and what inference needs to preprocess images as
    training did (for config.json); --num-classes must be the data set's."""
    import data
    train, val = data.get_cifar_iters(config.data_dir, config.dataset, config.batch_size,
                                      validation_split=config.validation_split,
                                      seed=config.seed, num_parts=num_parts,
                                      part_index=part_index, download=config.download,
                                      num_examples=config.num_examples,
                                      validation_images=config.validation_images)
    folder = data.cifar_folder(config.data_dir, config.dataset)
    classes = data.cifar_class_names(folder)
    check_num_classes(config.num_classes, np.concatenate([train.labels, val.labels]), folder,
                      len(classes))
    pre = Preprocess(image_shape=(3, 32, 32), resize=32, crop=32,
                     mean=tuple(train.mean.tolist()), std=tuple(train.std.tolist()))
    return train, val, {"classes": classes, "preprocess": pre}


def main(argv=None):
    config = parse_args(argv)
    import plots
    from training import loop
    return loop.train(config, cifar_data, curves=plots.draw_curves)


if __name__ == "__main__":
    run_main(main)
