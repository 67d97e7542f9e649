"""``python3 -m data``: download CIFAR, write a small or a generated CIFAR folder, pack ImageNet
into RecordIO."""
import argparse

from common.cli import run_main


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python3 -m data", description=__doc__.split(": ")[1])
    commands = parser.add_subparsers(dest="command", required=True)
    get = commands.add_parser("download", help="fetch, verify and unpack a CIFAR archive")
    get.add_argument("dataset", choices=["cifar10", "cifar100"])
    get.add_argument("root", help="folder to unpack into")
    get.add_argument("--url", help="a mirror of the official archive")
    get.add_argument("--md5", help="its checksum (default: the official archive's)")
    sample = commands.add_parser("sample", help="a complete small CIFAR-10 folder from "
                                 "whatever batches SOURCE holds")
    sample.add_argument("source", help="a CIFAR-10 folder, e.g. one with only data_batch_1")
    sample.add_argument("root", help="where to write cifar-10-batches-py/")
    sample.add_argument("--train-per-batch", type=int, default=100)
    sample.add_argument("--test-size", type=int, default=100)
    synthetic = commands.add_parser("synthetic", help="a generated CIFAR folder (classes differ "
                                    "in hue and stripes) for tests and smoke runs")
    synthetic.add_argument("root", help="where to write cifar-10-batches-py/ or cifar-100-python/")
    synthetic.add_argument("--dataset", choices=["cifar10", "cifar100"], default="cifar10")
    synthetic.add_argument("--train-per-batch", type=int, default=100,
                           help="images in each training file (5 for CIFAR-10, 1 for CIFAR-100)")
    synthetic.add_argument("--test-size", type=int, default=100)
    synthetic.add_argument("--seed", type=int, default=0)
    pack = commands.add_parser("pack-imagenet", help="pack a folder of class sub-folders of "
                               "images into PREFIX.lst/.rec/.idx")
    pack.add_argument("image_folder")
    pack.add_argument("prefix", help="output path without extension, e.g. imagenet/train")
    pack.add_argument("--resize", type=int, default=0,
                      help="re-encode with the shorter side resized to this (0: store as is)")
    pack.add_argument("--quality", type=int, default=95, help="JPEG quality with --resize")
    pack.add_argument("--no-shuffle", dest="shuffle", action="store_false",
                      help="keep the sorted order (shuffled with --seed by default)")
    pack.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import data
    if args.command == "download":
        print(data.download_cifar(args.dataset, args.root, args.url, args.md5))
    elif args.command == "sample":
        print(data.make_cifar_sample(args.source, args.root, args.train_per_batch,
                                     args.test_size))
    elif args.command == "synthetic":
        print(data.make_synthetic_cifar(args.root, args.dataset, args.train_per_batch,
                                        args.test_size, args.seed))
    else:
        packed = data.pack_imagenet(args.image_folder, args.prefix, args.resize,
                                    args.quality, args.shuffle, args.seed)
        print(packed.summary())
        print("wrote " + ", ".join(packed.paths))


if __name__ == "__main__":
    run_main(main, prog="python3 -m data")
