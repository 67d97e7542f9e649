"""Train a ResNet on ImageNet (RecordIO files) with the 2015 paper's recipe.

    python3 train_imagenet.py --data-dir imagenet --num-layers 50 --gpus 0,1,2,3 --output-dir runs/r50

Defaults (He et al. 2015, Sec. 3.4): SGD with momentum 0.9, weight decay 1e-4, batch 256,
lr 0.1 divided by 10 at epochs 30 and 60, 90 epochs, top-1 and top-5 accuracy. --data-dir
holds train.rec/.idx and val.rec/.idx (see ``python3 -m data pack-imagenet``).
"""
from common.cli import run_main
from training.args import check_num_classes, parse_imagenet_args


def parse_args(argv=None):
    """The flags, checked and typed (``training.args.parse_imagenet_args``)."""
    return parse_imagenet_args(argv, prog="train_imagenet.py")


def imagenet_data(config, num_parts, part_index):
    """Training and validation iterators, and what inference needs to preprocess images
    as evaluation did (for config.json); --num-classes is checked against the labels of
    the im2rec lists beside the records, where there are any."""
    import data
    from data.imagenet import RESIZE_RATIO, RGB_MEAN, RGB_STD, list_labels
    labels, lists = list_labels(config.data_dir)
    if labels is not None:
        check_num_classes(config.num_classes, labels, " and ".join(lists))
    train, val = data.get_imagenet_iters(config.data_dir, config.batch_size,
                                         config.data_nthreads, num_parts=num_parts,
                                         part_index=part_index, image_shape=config.image_shape,
                                         seed=config.seed)
    _, height, _ = config.image_shape
    meta = {"preprocess": {"image_shape": list(config.image_shape),
                           "resize": round(height * RESIZE_RATIO), "crop": height,
                           "mean": list(RGB_MEAN), "std": list(RGB_STD)}}
    return train, val, meta


def main(argv=None):
    config = parse_args(argv)
    import plots
    from training import loop
    return loop.train(config, imagenet_data, curves=plots.draw_curves)


if __name__ == "__main__":
    run_main(main)
