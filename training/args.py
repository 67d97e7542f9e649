"""The flags of the training scripts, and the typed configuration they become.

Argument groups follow the MXNet example's ``add_fit_args`` pattern: each script adds the
groups, its own data flags, and per-dataset defaults with ``parser.set_defaults`` (the
recipes of ``training.recipe``). ``check_args`` turns bad combinations into one-line
errors and returns the flags as a frozen ``TrainConfig`` (``CifarConfig``,
``ImagenetConfig``) of typed values: the image shape a tuple, ``--bottleneck`` True, False
or None, the shortcut settings a dict, the GPUs and the lr steps tuples of ints, the
kvstore resolved. The rest of ``training`` sees the flags only in that form.
``parse_cifar_args`` and ``parse_imagenet_args`` do all of it for the two scripts, so a
run's flags can be checked without starting it.
"""
import dataclasses
import logging
from dataclasses import dataclass
from typing import Optional

from common.cli import Parser, UsageError
from common.cpu import check_dtype
from training.recipe import CIFAR, IMAGENET
from training.rundir import typed_values

OPTIMIZERS = ("nag", "sgd")
KV_STORES = ("local", "device", "dist_sync", "dist_device_sync", "dist_async")
CIFAR_CLASSES = {"cifar10": 10, "cifar100": 100}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """The flags of a training run as typed values, fixed once checked. Field names are
    those of the flags, and so are the keys under which config.json records them."""
    # model
    num_layers: int
    unit: str
    shortcut: str
    shortcut_param: dict  # --shortcut-param scale=0.5 -> {"scale": 0.5}
    projection: str
    bottleneck: Optional[bool]  # None: by depth
    num_classes: int
    image_shape: tuple  # (channels, height, width)
    # data
    data_dir: Optional[str]
    benchmark: bool
    benchmark_batches: int
    # training
    gpus: tuple  # GPU ids; () trains on the CPU
    cpus: Optional[int]
    kv_store: str  # as given, else 'device' on GPUs and 'local' on CPUs
    num_epochs: Optional[int]
    num_iters: Optional[int]
    batch_size: int
    lr: float
    lr_factor: float
    lr_step_epochs: tuple
    lr_step_iters: tuple
    warmup_iters: Optional[int]  # None: the recipe's rule (training.recipe.default_warmup)
    warmup_lr: float
    optimizer: str
    mom: float
    wd: float
    top_k: int
    dtype: str
    mirror: bool
    no_fusion: bool
    seed: int
    output_dir: Optional[str]
    resume: bool
    load_epoch: Optional[int]
    keep_checkpoints: int
    disp_batches: int
    export: bool
    no_plots: bool

    @property
    def evaluated(self):
        """What the evaluation measures: "validation" (a validation set, as ImageNet's)."""
        return "validation"


@dataclass(frozen=True)
class CifarConfig(TrainConfig):
    """A CIFAR run: ``TrainConfig`` and the flags of ``add_cifar_data_args``."""
    dataset: str
    download: bool
    validation_split: bool
    validation_images: Optional[int]
    num_examples: Optional[int]

    @property
    def evaluated(self):
        """"validation" on images held out of the training batches, else "test" (the test
        batch)."""
        return "validation" if self.validation_split or self.validation_images else "test"


@dataclass(frozen=True)
class ImagenetConfig(TrainConfig):
    """An ImageNet run: ``TrainConfig``, the decoding threads and the training
    augmentation (``data.imagenet.AUGMENTATIONS``)."""
    data_nthreads: int
    augmentation: str


def add_model_args(parser):
    from symbols import PROJECTIONS, SHORTCUTS, UNITS
    g = parser.add_argument_group("Model")
    g.add_argument("--num-layers", type=int, help="depth: 6n+2 / 9n+2 on CIFAR, 18-200 on ImageNet")
    g.add_argument("--unit", default="full_preact", choices=list(UNITS),
                   help="residual unit (Fig. 4 of the 2016 paper)")
    g.add_argument("--shortcut", default="identity", choices=list(SHORTCUTS),
                   help="shortcut (Fig. 2 of the 2016 paper)")
    g.add_argument("--shortcut-param", action="append", default=[], metavar="NAME=VALUE",
                   help="a shortcut setting, e.g. scale=0.5, gate_bias=-6, ratio=0.5")
    g.add_argument("--projection", default="B", choices=list(PROJECTIONS),
                   help="shortcut where dimensions change (2015 paper, Sec. 3.3)")
    g.add_argument("--bottleneck", choices=["yes", "no"], help="branch type (default: by depth)")
    g.add_argument("--num-classes", type=int, help="number of classes")
    g.add_argument("--image-shape", help="channels,height,width of the network input")
    return g


def add_data_args(parser):
    g = parser.add_argument_group("Data")
    g.add_argument("--data-dir", help="folder of the data set")
    g.add_argument("--benchmark", action="store_true",
                   help="train on synthetic data and print images/s (no data set needed)")
    g.add_argument("--benchmark-batches", type=int, default=50,
                   help="batches per epoch of --benchmark")
    return g


def add_fit_args(parser):
    g = parser.add_argument_group("Training")
    g.add_argument("--gpus", help="GPUs to use, e.g. 0,1 (default: CPU)")
    g.add_argument("--cpus", type=int, help="train data-parallel on N CPU contexts")
    g.add_argument("--kv-store", choices=KV_STORES, help="how gradients are aggregated "
                   "across devices and machines (default: device on GPUs, else local)")
    g.add_argument("--num-epochs", type=int, help="epochs to train (overrides --num-iters)")
    g.add_argument("--num-iters", type=int, help="iterations to train (may end in an epoch)")
    g.add_argument("--batch-size", type=int, help="images per batch (all devices)")
    g.add_argument("--lr", type=float, help="initial learning rate")
    g.add_argument("--lr-factor", type=float, help="lr multiplier at each step")
    g.add_argument("--lr-step-epochs", help="epochs where lr is multiplied by --lr-factor, "
                   "e.g. 81,122 (overrides --lr-step-iters)")
    g.add_argument("--lr-step-iters", help="iterations where lr is multiplied, e.g. 32000,48000")
    g.add_argument("--warmup-iters", type=int,
                   help="first iterations at --warmup-lr (default: 400 for CIFAR 'original' "
                        "nets of depth >= 110, else 0)")
    g.add_argument("--warmup-lr", type=float, help="learning rate of warm-up")
    g.add_argument("--optimizer", choices=OPTIMIZERS,
                   help="nag (Nesterov momentum) or sgd (with momentum)")
    g.add_argument("--mom", type=float, help="momentum")
    g.add_argument("--wd", type=float, help="weight decay")
    g.add_argument("--top-k", type=int, default=0, help="also report top-k accuracy (k > 1)")
    g.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                   help="float16: half precision with float32 master weights (GPUs); "
                        "bfloat16: on CPUs with AVX512_BF16 or AMX, float32 weights")
    g.add_argument("--mirror", action="store_true", help="MXNet's memory mirroring "
                   "(MXNET_BACKWARD_DO_MIRROR): recompute cheap outputs in backward")
    g.add_argument("--no-fusion", action="store_true", help="on the CPU, run the network as "
                   "built (default: BatchNorm-ReLU fused into one MKL-DNN operator and "
                   "global pooling run as a mean, same math)")
    g.add_argument("--seed", type=int, default=0, help="seed of initialisation, order and "
                   "augmentation")
    g.add_argument("--output-dir", help="run directory: metrics.jsonl, config.json, checkpoints")
    g.add_argument("--resume", action="store_true",
                   help="continue from the newest complete checkpoint in --output-dir")
    g.add_argument("--load-epoch", type=int, help="continue from the checkpoint of this epoch")
    g.add_argument("--keep-checkpoints", type=int, default=2,
                   help="newest checkpoints kept (0: all)")
    g.add_argument("--disp-batches", type=int, default=20,
                   help="log (and check the loss) every N batches")
    g.add_argument("--export", action="store_true",
                   help="at the end, write the network for inference to OUTPUT_DIR/export")
    g.add_argument("--no-plots", action="store_true", help="do not draw curves at the end")
    return g


def add_cifar_data_args(parser):
    """The CIFAR flags of train_cifar.py, in the Data group (``add_data_args``'s)."""
    g = add_data_args(parser)
    g.add_argument("--dataset", default="cifar10", choices=list(CIFAR_CLASSES))
    g.add_argument("--download", action="store_true",
                   help="download the data set into --data-dir when absent")
    g.add_argument("--validation-split", action="store_true",
                   help="train on 45k images and validate on the other 5k (else: test set)")
    g.add_argument("--validation-images", type=int, metavar="N",
                   help="validate on N training images held out by class (fixed split)")
    g.add_argument("--num-examples", type=int,
                   help="train on a fixed random subset of this many images (smoke runs)")
    return g


def add_imagenet_data_args(parser):
    """The ImageNet flags of train_imagenet.py, in the Data group (``add_data_args``'s)."""
    g = add_data_args(parser)
    g.add_argument("--data-nthreads", type=int, default=4, help="decoding threads")
    g.add_argument("--augmentation", default="scale", choices=["scale", "inception"],
                   help="scale: the 2015 paper's (shorter side in [256, 480], random crop, "
                        "per-pixel mean); inception: random-resized crop, colour jitter "
                        "(fb.resnet.torch)")
    return g


def check_num_classes(num_classes, labels, source, data_classes=None):
    """Stop before training when the network's ``num_classes`` outputs cannot represent
    ``labels`` (those of ``source``), or differ from the ``data_classes`` that the data set
    defines; warn when some outputs are never a target."""
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise UsageError(f"--num-classes {num_classes}: the labels of {source} range over "
                         f"{low}..{high}, so the network needs at least {high + 1} classes")
    if data_classes is not None and num_classes != data_classes:
        raise UsageError(f"--num-classes {num_classes}: {source} has {data_classes} classes "
                         f"(labels {low}..{high})")
    if high + 1 < num_classes:
        log.warning("--num-classes %d: the labels of %s range over %d..%d; outputs %d..%d "
                    "are never a target", num_classes, source, low, high, high + 1,
                    num_classes - 1)


def check_args(args, config_class=TrainConfig):
    """Reject impossible settings of the parsed flags ``args`` with a one-line UsageError;
    returns them typed, as a frozen ``config_class``."""
    positive = ["batch_size", "disp_batches", "num_classes", "benchmark_batches",
                "num_examples", "data_nthreads", "validation_images"]
    for name in positive:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    for name in ("num_epochs", "num_iters", "warmup_iters", "load_epoch"):
        value = getattr(args, name, None)
        if value is not None and value < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    if args.num_layers is None:
        raise UsageError("--num-layers is required")
    if args.lr <= 0 or args.warmup_lr <= 0:
        raise UsageError("--lr and --warmup-lr must be > 0")
    if not 0 < args.lr_factor <= 1:
        raise UsageError(f"--lr-factor must be in (0, 1], got {args.lr_factor}")
    if not 0 <= args.mom < 1 or args.wd < 0:
        raise UsageError("--mom must be in [0, 1) and --wd >= 0")
    if args.top_k == 1 or args.top_k < 0:
        raise UsageError("--top-k must be 0 (off) or > 1")
    if args.gpus and args.cpus:
        raise UsageError("give either --gpus or --cpus, not both")
    if args.cpus is not None and args.cpus < 1:
        raise UsageError(f"--cpus must be >= 1, got {args.cpus}")
    values = typed_values(vars(args))
    check_dtype(args.dtype, values["gpus"])
    if not args.benchmark:
        if not args.data_dir:
            raise UsageError("--data-dir is required (or --benchmark for synthetic data)")
        if not args.output_dir:
            raise UsageError("--output-dir is required")
    if (args.resume or args.load_epoch is not None or args.export) and not args.output_dir:
        raise UsageError("--resume, --load-epoch and --export need --output-dir")
    values["kv_store"] = args.kv_store or ("device" if values["gpus"] else "local")
    return config_class(**values)


def cifar_parser(prog="train_cifar.py"):
    """The parser of train_cifar.py's flags, with the CIFAR recipe's defaults."""
    parser = Parser(prog=prog, description="Train a ResNet on CIFAR-10/100 with the "
                    "papers' recipe.")
    add_model_args(parser)
    add_cifar_data_args(parser)
    add_fit_args(parser)
    parser.set_defaults(image_shape="3,32,32", **CIFAR.defaults())
    return parser


def parse_cifar_args(argv=None, prog="train_cifar.py"):
    """train_cifar.py's flags (``argv``, default sys.argv), checked and typed: a
    ``CifarConfig``. ``--num-classes`` defaults to the data set's; only --benchmark runs
    take images other than 3,32,32."""
    args = cifar_parser(prog).parse_args(argv)
    config = check_args(args, CifarConfig)
    if config.num_classes is None:
        config = dataclasses.replace(config, num_classes=CIFAR_CLASSES[config.dataset])
    if not config.benchmark and config.image_shape != (3, 32, 32):
        raise UsageError(f"--image-shape {args.image_shape}: CIFAR images are 3,32,32 "
                         "(other shapes only with --benchmark)")
    return check_top_k(config)


def check_top_k(config):
    """``config``, refused in one line where --top-k asks for more classes than it has."""
    if config.top_k >= config.num_classes:
        raise UsageError(f"--top-k {config.top_k} needs more than {config.top_k} classes; "
                         f"the network has {config.num_classes} (--top-k 0 turns it off)")
    return config


def imagenet_parser(prog="train_imagenet.py"):
    """The parser of train_imagenet.py's flags, with the ImageNet recipe's defaults
    (224x224 crops, 1000 classes, top-5)."""
    parser = Parser(prog=prog, description="Train a ResNet on ImageNet (RecordIO files) "
                    "with the 2015 paper's recipe.")
    add_model_args(parser)
    add_imagenet_data_args(parser)
    add_fit_args(parser)
    parser.set_defaults(image_shape="3,224,224", num_classes=1000, top_k=5,
                        **IMAGENET.defaults())
    return parser


def parse_imagenet_args(argv=None, prog="train_imagenet.py"):
    """train_imagenet.py's flags (``argv``, default sys.argv), checked and typed: an
    ``ImagenetConfig``."""
    return check_top_k(check_args(imagenet_parser(prog).parse_args(argv), ImagenetConfig))
