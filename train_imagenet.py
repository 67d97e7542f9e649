"""Train a ResNet on ImageNet (RecordIO files) with the 2015 paper's recipe.

    python3 train_imagenet.py --data-dir imagenet --num-layers 50 --gpus 0,1,2,3 --output-dir runs/r50

Defaults (He et al. 2015, Sec. 3.4): SGD with momentum 0.9, weight decay 1e-4, batch 256,
lr 0.1 divided by 10 at epochs 30 and 60, 90 epochs, top-1 and top-5 accuracy. --data-dir
holds train.rec/.idx and val.rec/.idx (see ``python3 -m data pack-imagenet``).
"""
from common.cli import Parser, run_main
from training.args import add_data_args, add_fit_args, add_model_args, check_args, check_num_classes
from training.recipe import IMAGENET


def parse_args(argv=None):
    parser = Parser(prog="train_imagenet.py", description=__doc__.splitlines()[0])
    add_model_args(parser)
    data = add_data_args(parser)
    data.add_argument("--data-nthreads", type=int, default=4, help="decoding threads")
    add_fit_args(parser)
    parser.set_defaults(image_shape="3,224,224", num_classes=1000, top_k=5,
                        **IMAGENET.defaults())
    args = parser.parse_args(argv)
    return check_args(args)


def imagenet_data(args, num_parts, part_index):
    """Training and validation iterators, and what inference needs to preprocess images
    as evaluation did (for config.json); --num-classes is checked against the labels of
    the im2rec lists beside the records, where there are any."""
    import data
    from data.imagenet import RESIZE_RATIO, RGB_MEAN, RGB_STD, list_labels
    labels, lists = list_labels(args.data_dir)
    if labels is not None:
        check_num_classes(args.num_classes, labels, " and ".join(lists))
    train, val = data.get_imagenet_iters(args.data_dir, args.batch_size, args.data_nthreads,
                                         num_parts=num_parts, part_index=part_index,
                                         image_shape=args.image_shape, seed=args.seed)
    shape = [int(v) for v in args.image_shape.split(",")]
    meta = {"preprocess": {"image_shape": shape, "resize": round(shape[1] * RESIZE_RATIO),
                           "crop": shape[1], "mean": list(RGB_MEAN), "std": list(RGB_STD)}}
    return train, val, meta


def main(argv=None):
    args = parse_args(argv)
    import plots
    from training import loop
    return loop.train(args, imagenet_data, curves=plots.draw_curves)


if __name__ == "__main__":
    run_main(main)
