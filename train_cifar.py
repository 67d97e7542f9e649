"""Train a ResNet on CIFAR-10/100 with the papers' recipe.

    python3 train_cifar.py --download --data-dir cifar --num-layers 110 --output-dir runs/r110

Defaults (He et al. 2015, Sec. 4.2; 2016, Sec. 4): Nesterov momentum 0.9, weight decay
1e-4, batch 128, lr 0.1 divided by 10 at 32k and 48k iterations, 64k iterations, MSRA
initialisation; 400 warm-up iterations at lr 0.01 for 'original' units of depth >= 110.
"""
import numpy as np

from common.cli import Parser, UsageError, run_main
from training.args import add_data_args, add_fit_args, add_model_args, check_args, check_num_classes
from training.recipe import CIFAR

CLASSES = {"cifar10": 10, "cifar100": 100}


def parse_args(argv=None):
    parser = Parser(prog="train_cifar.py", description=__doc__.splitlines()[0])
    add_model_args(parser)
    data = add_data_args(parser)
    data.add_argument("--dataset", default="cifar10", choices=list(CLASSES))
    data.add_argument("--download", action="store_true",
                      help="download the data set into --data-dir when absent")
    data.add_argument("--validation-split", action="store_true",
                      help="train on 45k images and validate on the other 5k (else: test set)")
    data.add_argument("--validation-images", type=int, metavar="N",
                      help="validate on N training images held out by class (fixed split)")
    data.add_argument("--num-examples", type=int,
                      help="train on a fixed random subset of this many images (smoke runs)")
    add_fit_args(parser)
    parser.set_defaults(image_shape="3,32,32", **CIFAR.defaults())
    args = parser.parse_args(argv)
    if args.num_classes is None:
        args.num_classes = CLASSES[args.dataset]
    args = check_args(args)
    if not args.benchmark and args.image_shape.replace(" ", "") != "3,32,32":
        raise UsageError(f"--image-shape {args.image_shape}: CIFAR images are 3,32,32 "
                         "(other shapes only with --benchmark)")
    return args


def cifar_data(args, num_parts, part_index):
    """Training and test iterators, and what inference needs to preprocess images as
    training did (for config.json); --num-classes must be the data set's."""
    import data
    train, val = data.get_cifar_iters(args.data_dir, args.dataset, args.batch_size,
                                      validation_split=args.validation_split, seed=args.seed,
                                      num_parts=num_parts, part_index=part_index,
                                      download=args.download, num_examples=args.num_examples,
                                      validation_images=args.validation_images)
    folder = data.cifar_folder(args.data_dir, args.dataset)
    classes = data.cifar_class_names(folder)
    check_num_classes(args.num_classes, np.concatenate([train.labels, val.labels]), folder,
                      len(classes))
    meta = {"classes": classes,
            "preprocess": {"image_shape": [3, 32, 32], "resize": 32, "crop": 32,
                           "mean": train.mean.tolist(), "std": train.std.tolist()}}
    return train, val, meta


def main(argv=None):
    args = parse_args(argv)
    import plots
    from training import loop
    return loop.train(args, cifar_data, curves=plots.draw_curves)


if __name__ == "__main__":
    run_main(main)
