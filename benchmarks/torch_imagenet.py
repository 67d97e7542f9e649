"""The PyTorch peer of the project's ImageNet run: torchvision's ResNet-18 trained on the
same JPEG class folders with the 2015 paper's recipe as ``train_imagenet.py`` runs it.

    python3 benchmarks/torch_imagenet.py --train imagenette/train --val imagenette/val \\
        --mean-image runs/imagenette-r18/mean_image.npy --output-dir runs/imagenette-r18-torch \\
        --image-size 128 --batch-size 64 --lr 0.025 --epochs 40 --lr-step-epochs 13,27 \\
        --seed 0 [--resume]

What it reproduces of ``train_imagenet.py --augmentation scale`` (``data.imagenet``, whose
``ImageRecordIter`` augments in MXNet 1.9.1's src/io/image_aug_default.cc):

- the classes: the sorted sub-folders of --train (``torchvision.datasets.ImageFolder``),
  their .jpg, .jpeg and .png files, decoded to RGB, as the packer labels and stores them;
- training: the shorter side resized (bilinear, without antialiasing, as OpenCV's
  INTER_LINEAR) to round(256 x size / 224) times a uniform factor in [1, 480 / 256], a
  random size x size crop, PCA colour noise (std 0.1, MXNet's eigenvalues and vectors,
  added to whole 0..255 pixel values, truncated and clipped as MXNet does), a mirror image
  with probability 1/2, the per-pixel mean image subtracted (no division by a std);
- evaluation: the shorter side resized to round(size x 256 / 224), the centre crop minus
  the mean image; after the last epoch also the paper's 10-crop testing (the four corners
  and the centre and their mirror images, softmax probabilities averaged);
- the optimisation: SGD with momentum 0.9 (not Nesterov) in MXNet's form (the velocity,
  not the gradient, is kept across a change of the learning rate), weight decay 1e-4 where
  MXNet 1.9.1's optimizer puts it (``Optimizer.set_wd_mult``: on the parameters named
  *_weight and *_gamma, i.e. torch's convolution, linear and BatchNorm weights, not on the
  BatchNorm betas and the classifier's bias), the lr divided by 10 at the epochs given,
  cross-entropy loss, the last incomplete batch of every epoch left out; epoch e's order
  and augmentation depend only
  on (seed, e) and the image's index, so ``--resume`` continues exactly and the number of
  loader workers changes nothing but the speed.

The network is torchvision's ResNet-18 with its own initialisation (He et al.'s, fan-out);
the project's is the same network with MXNet's Xavier(gaussian, in, 2) (fan-in).

The run folder: ``metrics.jsonl`` (one record an epoch, the keys of ``training.loop``'s),
``config.json`` (a ``training.rundir.RunRecord``: the flags, the torch and torchvision
versions, the CPU), ``mean_image.npy`` (the mean subtracted), ``checkpoint.pt`` (model,
optimizer, epoch; replaced after every epoch) and ``final.json`` (the last iteration's
single-crop and 10-crop top-1 and top-5 errors). It imports no MXNet.
"""
import argparse
import dataclasses
import logging
import math
import os
import platform
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from common.cli import Parser, UsageError, int_list, run_main  # noqa: E402
from common.cpu import physical_cores, this_cpu  # noqa: E402
from common.files import atomic_path, lock_dir, read_json, write_json  # noqa: E402
from training import rundir  # noqa: E402
from training.schedule import StepSchedule, plan  # noqa: E402

try:
    import torch
    import torch.nn.functional as F
    import torchvision
    IMPORT_ERROR = None
except Exception as err:  # a CUDA torchvision beside a CPU torch raises RuntimeError
    torch = F = torchvision = None
    IMPORT_ERROR = f"{type(err).__name__}: {err}"

# data.imagenet's SHORT_SIDES, RESIZE_RATIO and the packer's IMAGE_EXTS (that module
# imports MXNet, which this script leaves out)
SHORT_SIDES = (256, 480)  # training: shorter side in [256, 480] for a 224 crop
RESIZE_RATIO = 256 / 224  # evaluation: shorter side 256 for a 224 crop
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
# AlexNet's PCA of ImageNet's RGB pixels (0..255 scale) as MXNet 1.9.1 applies it for
# ImageRecordIter's pca_noise: src/io/image_aug_default.cc, DefaultImageAugmenter::eigvec
# (which stores eigval x eigvec; the same values as python/mxnet/image/image.py's
# CreateAugmenter passes to LightingAug). Rows R, G, B; columns the three components.
PCA_EIGVAL = (55.46, 4.794, 1.148)
PCA_EIGVEC = ((-0.5675, 0.7192, 0.4009),
              (-0.5808, -0.0045, -0.8140),
              (-0.5836, -0.6948, 0.4203))
PCA_NOISE = 0.1
TOP_K = 5
EPS = 1e-12  # training.monitor.EPS: the loss recorded is -log(p + EPS), as MXNet's metric
CHECKPOINT = "checkpoint.pt"
FINAL = "final.json"
MEAN_IMAGE = "mean_image.npy"
FRAMEWORK = "pytorch"  # config.json's "framework": tells this script's runs from MXNet's
TIMINGS = ("epoch_seconds", "samples_per_sec")
# One loader process: on the 2-core VM it augments about 300 images/s of 224x224 JPEGs at
# 128 pixels, several times what training takes; decoding in the training process instead
# (0) waits on every image, a second process only competes for the two cores.
WORKERS = 1
THREADS = 2


class DivergedError(ValueError):
    """The training loss stopped being finite."""


# ---- flags -------------------------------------------------------------------------------

def parse_args(argv=None):
    """The flags, checked (``check_args``); names as config.json records them."""
    p = Parser(prog="torch_imagenet.py", description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--train", required=True, metavar="DIR", help="class folders to train on")
    p.add_argument("--val", required=True, metavar="DIR", help="class folders to evaluate on")
    p.add_argument("--mean-image", required=True, metavar="FILE",
                   help="the per-pixel mean, a float32 (3, size, size) .npy in pixel units "
                   "(the mean_image.npy of the MXNet run)")
    p.add_argument("--output-dir", required=True, metavar="DIR")
    p.add_argument("--image-size", type=int, default=128, help="crop side (default 128)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.025)
    p.add_argument("--epochs", dest="num_epochs", type=int, default=40, metavar="N")
    p.add_argument("--lr-step-epochs", type=int_list("--lr-step-epochs", 1), default=[13, 27],
                   help="divide the lr by 10 after these epochs (default 13,27)")
    p.add_argument("--lr-factor", type=float, default=0.1)
    p.add_argument("--mom", "--momentum", dest="mom", type=float, default=0.9)
    p.add_argument("--wd", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=WORKERS,
                   help=f"data loader processes (default {WORKERS}; 0 decodes in this one)")
    p.add_argument("--threads", type=int, default=THREADS,
                   help=f"torch's compute threads (default {THREADS}; on cores busy with "
                   "other work, set OMP_WAIT_POLICY=PASSIVE or use 1)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=False,
                   help="the channels-last memory layout (default off: no faster here)")
    p.add_argument("--disp-batches", type=int, default=20, help="a log line every N batches")
    p.add_argument("--resume", action="store_true",
                   help="continue after the last complete epoch in --output-dir")
    args = p.parse_args(argv)
    check_args(args)
    return args


def check_args(args):
    """UsageError, in one line, for a value out of range."""
    for name in ("image_size", "batch_size", "num_epochs", "threads", "disp_batches"):
        value = getattr(args, name)
        if value < 1:
            flag = "--epochs" if name == "num_epochs" else f"--{name.replace('_', '-')}"
            raise UsageError(f"{flag} must be >= 1, got {value}")
    if args.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {args.workers}")
    if args.lr <= 0 or args.wd < 0 or not 0 <= args.mom < 1 or not 0 < args.lr_factor <= 1:
        raise UsageError("need --lr > 0, --wd >= 0, 0 <= --mom < 1 and 0 < --lr-factor <= 1")
    if sorted(set(args.lr_step_epochs)) != list(args.lr_step_epochs):
        raise UsageError(f"--lr-step-epochs must increase, got {args.lr_step_epochs}")


# ---- data --------------------------------------------------------------------------------

def list_images(folder):
    """([(path, label)], class names) of the class folders of ``folder``, labels the
    indices of the sorted folder names (``torchvision.datasets.ImageFolder``)."""
    if not os.path.isdir(folder):
        raise UsageError(f"{folder}: no such folder")
    try:
        found = torchvision.datasets.ImageFolder(folder, is_valid_file=is_image_file,
                                                 allow_empty=True)
    except FileNotFoundError as err:  # no class sub-folder
        raise UsageError(f"{folder}: {err}") from None
    if not found.samples:
        raise UsageError(f"{folder}: no {'/'.join(IMAGE_EXTS)} images in its class folders")
    return found.samples, found.classes


def is_image_file(path):
    """Whether the packer takes the file at ``path``: an IMAGE_EXTS name, in any case."""
    return path.lower().endswith(IMAGE_EXTS)


def load_mean_image(path, size):
    """The mean image at ``path`` as a float32 tensor; UsageError unless it is a finite
    (3, size, size) array."""
    try:
        mean = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError) as err:
        raise UsageError(f"{path}: not a .npy array ({err})") from None
    if mean.shape != (3, size, size) or not np.issubdtype(mean.dtype, np.number):
        raise UsageError(f"{path}: the mean image is {mean.dtype} {mean.shape}, expected "
                         f"(3, {size}, {size}) for --image-size {size}")
    if not np.isfinite(mean).all():
        raise UsageError(f"{path}: the mean image is not finite")
    return torch.from_numpy(mean.astype(np.float32))


def decode(path):
    """The image file at ``path`` as a (3, H, W) float32 tensor of RGB values 0..255
    (greyscale, palette, CMYK and alpha images converted to RGB, as the packer does)."""
    from PIL import Image
    with Image.open(path) as image:
        rgb = np.array(image.convert("RGB"))
    return torch.from_numpy(rgb).permute(2, 0, 1).float()


def resize(image, height, width):
    """``image`` resized to height x width: bilinear without antialiasing (OpenCV's
    INTER_LINEAR, which MXNet uses), rounded to whole values in 0..255 as OpenCV's 8-bit
    images hold them."""
    if image.shape[1:] == (height, width):
        return image
    out = F.interpolate(image[None], size=(height, width), mode="bilinear",
                        align_corners=False, antialias=False)[0]
    return out.round_().clamp_(0, 255)


def short_side_length(rng, size):
    """A training image's shorter side in pixels (float): round(256 x size / 224) times a
    uniform factor in [1, 480 / 256], as ImageRecordIter draws it (``resize`` then
    ``min/max_random_scale``, ``data.imagenet.scale_augmentation``)."""
    low, high = SHORT_SIDES
    return round(low * size / 224) * rng.uniform(1.0, high / low)


def scaled_shape(height, width, short_side, minimum):
    """(height, width) of an image whose shorter side becomes ``short_side`` (truncated
    to whole pixels as cv::Size is), at least ``minimum`` each."""
    factor = short_side / min(height, width)
    return max(minimum, int(height * factor)), max(minimum, int(width * factor))


def eval_shape(height, width, size):
    """(height, width) of evaluation's resize: the shorter side round(size x 256 / 224),
    the longer in proportion, in ImageRecordIter's integer arithmetic."""
    short = round(size * RESIZE_RATIO)
    if height > width:
        return short * height // width, short
    return short, short * width // height


def pca_offset(rng, std=PCA_NOISE):
    """AlexNet's colour noise: the (3,) RGB offset eigvec @ (alpha * eigval), alpha drawn
    from N(0, std) for each component."""
    alpha = rng.normal(0.0, std, 3)
    return torch.tensor(np.asarray(PCA_EIGVEC) @ (alpha * np.asarray(PCA_EIGVAL)),
                        dtype=torch.float32)


def crop(image, y, x, size):
    return image[:, y:y + size, x:x + size]


def train_transform(image, size, mean, rng):
    """The 2015 paper's scale augmentation of a decoded ``image`` (see the module's
    docstring), minus ``mean``; every draw from ``rng``."""
    _, height, width = image.shape
    image = resize(image, *scaled_shape(height, width, short_side_length(rng, size), size))
    y = int(rng.integers(0, image.shape[1] - size, endpoint=True))
    x = int(rng.integers(0, image.shape[2] - size, endpoint=True))
    out = crop(image, y, x, size) + pca_offset(rng)[:, None, None]
    out = out.trunc_().clamp_(0, 255)  # MXNet: int pixel += float offset, clipped
    if rng.random() < 0.5:
        out = out.flip(2)
    return out - mean


def eval_image(image, size):
    """``image`` with its shorter side resized for evaluation (``eval_shape``)."""
    return resize(image, *eval_shape(image.shape[1], image.shape[2], size))


def centre_crop(image, size):
    """The centre size x size crop, offsets rounded down (ImageRecordIter's)."""
    return crop(image, (image.shape[1] - size) // 2, (image.shape[2] - size) // 2, size)


def ten_crops(image, size):
    """(10, 3, size, size): the four corner crops and the centre crop of ``image`` (resized
    already), then their mirror images (He et al. 2015, Sec. 3.4)."""
    _, height, width = image.shape
    corners = [(0, 0), (0, width - size), (height - size, 0), (height - size, width - size)]
    crops = [crop(image, y, x, size) for y, x in corners] + [centre_crop(image, size)]
    return torch.stack(crops + [c.flip(2) for c in crops])


def sample_rng(seed, epoch, index):
    """The generator of image ``index``'s augmentation in epoch ``epoch``."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch], spawn_key=(index,)))


def epoch_order(count, batch_size, seed, epoch):
    """The indices epoch ``epoch`` trains on, in order: a permutation of ``count`` drawn
    from a generator seeded from (seed, epoch), cut to whole batches."""
    state = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
    order = torch.randperm(count, generator=torch.Generator().manual_seed(state))
    return order[:count // batch_size * batch_size].tolist()


class TrainImages:
    """The training images, augmented (``train_transform``) from (seed, ``epoch``, index):
    set ``epoch`` before a loader over them starts."""

    def __init__(self, samples, size, mean, seed):
        self.samples, self.size, self.mean, self.seed = samples, size, mean, seed
        self.epoch = 0

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, label = self.samples[index]
        rng = sample_rng(self.seed, self.epoch, index)
        return train_transform(decode(path), self.size, self.mean, rng), label


class EvalImages:
    """The evaluation images: the centre crop minus ``mean``, or with ``ten_crop`` the
    (10, 3, size, size) crops of ``ten_crops`` minus ``mean``."""

    def __init__(self, samples, size, mean, ten_crop=False):
        self.samples, self.size, self.mean, self.ten_crop = samples, size, mean, ten_crop

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, label = self.samples[index]
        image = eval_image(decode(path), self.size)
        crops = ten_crops(image, self.size) if self.ten_crop else centre_crop(image, self.size)
        return crops - self.mean, label


def loader(images, batch_size, workers, order=None):
    """Batches of ``images`` in ``order`` (a list of indices, whole batches) or, without,
    in file order with the last batch as it comes."""
    return torch.utils.data.DataLoader(images, batch_size=batch_size, sampler=order,
                                       num_workers=workers, drop_last=order is not None)


# ---- training ----------------------------------------------------------------------------

class Sums:
    """Sums over images of the loss -log(p + EPS) of the label's probability, of correct
    top-1 and, with ``top_k``, of correct top-k predictions (``training.monitor``'s)."""

    def __init__(self, top_k=0):
        self.top_k, self.images, self.loss, self.correct, self.correct_k = top_k, 0, 0.0, 0, 0

    def add(self, probs, labels):
        """Add a batch of probabilities (N, classes) and its labels (N,)."""
        picked = probs.gather(1, labels[:, None])[:, 0]
        self.loss += float(-torch.log(picked + EPS).sum())
        self.correct += int((probs.argmax(1) == labels).sum())
        if self.top_k:
            top = probs.topk(self.top_k, 1).indices
            self.correct_k += int((top == labels[:, None]).any(1).sum())
        self.images += len(labels)

    def result(self, prefix):
        """{prefix+'loss', prefix+'acc'[, prefix+'top5_acc']}: means over the images."""
        n = max(self.images, 1)
        out = {f"{prefix}loss": self.loss / n, f"{prefix}acc": self.correct / n}
        if self.top_k:
            out[f"{prefix}top{self.top_k}_acc"] = self.correct_k / n
        return out


def set_lr(optimizer, lr):
    """Make ``lr`` the learning rate of the next update, in MXNet's form of momentum:
    MXNet keeps the velocity v = m v - lr (g + wd w), torch the buffer b = m b + g + wd w
    and steps by lr b, so when the rate changes the buffers are scaled by old / new lr and
    the next step continues MXNet's velocity."""
    for group in optimizer.param_groups:
        if group["lr"] == lr:
            continue
        for p in group["params"]:
            buf = optimizer.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                buf.mul_(group["lr"] / lr)
        group["lr"] = lr


@dataclasses.dataclass
class Run:
    """What every epoch of a run needs."""
    args: object
    model: object
    optimizer: object
    schedule: StepSchedule
    train: TrainImages
    val_samples: list
    mean: object
    top_k: int
    epochs: int
    num_batches: int

    def layout(self, x):
        return x.contiguous(memory_format=torch.channels_last) if self.args.channels_last else x


def decay_groups(model, wd):
    """The optimizer's parameter groups: weight decay ``wd`` on the weights (MXNet's
    *_weight and *_gamma), none on the biases (MXNet's *_beta and *_bias), as MXNet 1.9.1's
    ``Optimizer.set_wd_mult`` does when a Module names the parameters."""
    named = list(model.named_parameters())
    return [{"params": [p for n, p in named if n.endswith(".weight")], "weight_decay": wd},
            {"params": [p for n, p in named if not n.endswith(".weight")],
             "weight_decay": 0.0}]


def build(args, num_classes):
    """torchvision's ResNet-18 (initialised from --seed) and its SGD."""
    torch.manual_seed(args.seed)
    model = torchvision.models.resnet18(num_classes=num_classes)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(decay_groups(model, args.wd), lr=args.lr, momentum=args.mom,
                                nesterov=False)
    return model, optimizer


def train_epoch(run, epoch, iteration):
    """Train epoch ``epoch`` (0-based) that starts after ``iteration`` updates; returns
    its Sums, the iteration it ends at and its seconds."""
    args, model = run.args, run.model
    run.train.epoch = epoch
    order = epoch_order(len(run.train), args.batch_size, args.seed, epoch)
    sums, tic = Sums(run.top_k), time.time()
    model.train()
    for batch, (x, y) in enumerate(loader(run.train, args.batch_size, args.workers, order), 1):
        set_lr(run.optimizer, run.schedule.lr(iteration))
        out = model(run.layout(x))
        loss = F.cross_entropy(out, y)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        iteration += 1
        sums.add(torch.softmax(out.detach(), 1), y)
        if not math.isfinite(sums.loss):
            kept = f"that of epoch {epoch}" if epoch else "none"
            raise DivergedError(f"training loss is {sums.loss} at epoch {epoch + 1}, batch "
                                f"{batch} (iteration {iteration}): training stopped; the "
                                f"last checkpoint in {args.output_dir} is {kept}")
        if batch % args.disp_batches == 0:
            shown = sums.result("")
            logging.info("epoch %d batch %d/%d: loss %.4f acc %.4f, %.1f images/s",
                         epoch + 1, batch, run.num_batches, shown["loss"], shown["acc"],
                         sums.images / (time.time() - tic))
    return sums, iteration, time.time() - tic


def evaluate(run, ten_crop=False):
    """Sums of the centre crops of the validation images and, with ``ten_crop``, of the
    10-crop probabilities (``ten_crop_probabilities``) too: (single, ten or None)."""
    run.model.eval()
    images = EvalImages(run.val_samples, run.args.image_size, run.mean, ten_crop)
    single, ten = Sums(run.top_k), Sums(run.top_k) if ten_crop else None
    with torch.no_grad():
        for x, y in loader(images, run.args.batch_size, run.args.workers):
            if ten_crop:
                centre, probs = ten_crop_probabilities(run.model, x, run.layout)
                single.add(centre, y)
                ten.add(probs, y)
            else:
                single.add(torch.softmax(run.model(run.layout(x)), 1), y)
    return single, ten


def ten_crop_probabilities(model, crops, layout=lambda x: x):
    """(probabilities of the centre crops, probabilities averaged over the 10 crops) of a
    batch of ``crops`` (N, 10, 3, size, size) laid out as ``ten_crops`` makes them."""
    views = [torch.softmax(model(layout(crops[:, v])), 1) for v in range(crops.shape[1])]
    return views[4], torch.stack(views).mean(0)


def run_epoch(run, epoch, iteration):
    """Train, evaluate, record and checkpoint epoch ``epoch``; returns its record."""
    tic = time.time()
    train, iteration, seconds = train_epoch(run, epoch, iteration)
    record = {"epoch": epoch + 1, "iteration": iteration,
              "lr": run.schedule.lr(iteration - 1)}
    record.update(train.result("train_"))
    record.update(evaluate(run)[0].result("val_"))
    record["epoch_seconds"] = time.time() - tic
    record["samples_per_sec"] = train.images / max(seconds, 1e-9)
    logging.info("epoch %d/%d: train loss %.4f acc %.4f | val loss %.4f acc %.4f | lr %g | "
                 "%.1f s, %.1f images/s", epoch + 1, run.epochs, record["train_loss"],
                 record["train_acc"], record["val_loss"], record["val_acc"], record["lr"],
                 record["epoch_seconds"], record["samples_per_sec"])
    rundir.append_metrics(run.args.output_dir, record)
    save_checkpoint(run, epoch + 1, iteration)
    return record


# ---- the run folder ----------------------------------------------------------------------

def save_checkpoint(run, epoch, iteration):
    """Model, optimizer and where the run stands, replacing the last checkpoint at once."""
    state = {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
             "epoch": epoch, "iteration": iteration, "seed": run.args.seed}
    with atomic_path(os.path.join(run.args.output_dir, CHECKPOINT)) as tmp:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())


def load_checkpoint(run):
    """Load the run folder's checkpoint into the model and optimizer; (epoch, iteration)
    it ends at, (0, 0) where there is none."""
    path = os.path.join(run.args.output_dir, CHECKPOINT)
    if not os.path.isfile(path):
        logging.info("no checkpoint in %s: starting from scratch", run.args.output_dir)
        return 0, 0
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        run.model.load_state_dict(state["model"])
        run.optimizer.load_state_dict(state["optimizer"])
        return int(state["epoch"]), int(state["iteration"])
    except Exception as err:  # unpickling and load_state_dict raise many kinds
        raise ValueError(f"{path}: cannot be resumed with these settings "
                         f"({type(err).__name__}: {str(err).splitlines()[0]})") from None


def check_output_dir(args):
    """UsageError where --output-dir holds another run: an MXNet run's config.json or
    checkpoints, or (without --resume) this script's checkpoint."""
    config = os.path.join(args.output_dir, rundir.CONFIG)
    framework = read_json(config).get("framework") if os.path.isfile(config) else FRAMEWORK
    if framework != FRAMEWORK or any(rundir.scan_checkpoints(args.output_dir)):
        raise UsageError(f"{args.output_dir} holds another run (not of this script): "
                         "choose another --output-dir")
    if not args.resume and os.path.isfile(os.path.join(args.output_dir, CHECKPOINT)):
        raise UsageError(f"{args.output_dir} already holds a checkpoint: pass --resume to "
                         "continue that run, or choose another --output-dir")


def keep_mean_image(args, mean, resumed):
    """Write the mean image into the run folder; a resumed run refuses another one."""
    path = os.path.join(args.output_dir, MEAN_IMAGE)
    if resumed and os.path.isfile(path):
        if not np.array_equal(np.load(path), mean.numpy()):
            raise UsageError(f"--mean-image {args.mean_image} differs from the mean image "
                             f"this run started with ({path})")
        return
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, mean.numpy())


def run_record(args, classes, num_batches, epochs, schedule, mean):
    """config.json's record (``training.rundir.RunRecord``): the flags, the framework and
    its versions, the preprocessing of evaluation, the classes, what the flags resolved
    to, the CPU."""
    flags = dict(vars(args), framework=FRAMEWORK, network="torchvision.models.resnet18",
                 torch_version=torch.__version__, torchvision_version=torchvision.__version__)
    size = args.image_size
    pre = rundir.Preprocess(
        image_shape=(3, size, size), resize=round(size * RESIZE_RATIO), crop=size,
        mean=tuple(round(float(v), 3) for v in mean.mean(dim=(1, 2))), std=(1.0, 1.0, 1.0),
        mean_image=MEAN_IMAGE)
    return rundir.RunRecord(
        flags, evaluated="validation", preprocess=pre, classes=tuple(classes),
        contexts=("cpu",), batches_per_epoch=num_batches, planned_epochs=epochs,
        planned_iterations=epochs * num_batches, lr_steps_iterations=tuple(schedule.steps),
        warmup_iterations=0, cpu=this_cpu().label(physical_cores()),
        python_version=platform.python_version())


def errors(sums):
    """{"top1_error", "top5_error"} in percent (top-5 None without it)."""
    out = sums.result("")
    top5 = out.get(f"top{TOP_K}_acc")
    return {"top1_error": 100.0 * (1.0 - out["acc"]),
            "top5_error": None if top5 is None else 100.0 * (1.0 - top5)}


def final_evaluation(run, epoch, iteration):
    """The last iteration's single-crop and 10-crop errors on the validation images,
    written to ``final.json``; returns that record."""
    tic = time.time()
    single, ten = evaluate(run, ten_crop=True)
    record = {"epoch": epoch, "iteration": iteration, "images": single.images,
              "unit": "percent of the validation images", "single_crop": errors(single),
              "ten_crop": errors(ten), "seconds": time.time() - tic}
    write_json(os.path.join(run.args.output_dir, FINAL), record)
    logging.info("after epoch %d: single crop top-1 %.2f %%, top-5 %s; 10-crop top-1 "
                 "%.2f %%, top-5 %s", epoch, record["single_crop"]["top1_error"],
                 record["single_crop"]["top5_error"], record["ten_crop"]["top1_error"],
                 record["ten_crop"]["top5_error"])
    return record


# ---- main --------------------------------------------------------------------------------

def prepare(args):
    """(Run, class names) from the checked flags: the data listed, the mean image read,
    the network and optimizer built; UsageError for bad input."""
    mean = load_mean_image(args.mean_image, args.image_size)
    train_samples, classes = list_images(args.train)
    val_samples, val_classes = list_images(args.val)
    if val_classes != classes:
        raise UsageError(f"{args.val} has other class folders than {args.train}")
    num_batches = len(train_samples) // args.batch_size
    if num_batches == 0:
        raise UsageError(f"{args.train}: {len(train_samples)} images, fewer than one batch "
                         f"of {args.batch_size}")
    epochs, steps, _ = plan(num_batches, args.num_epochs, lr_step_epochs=args.lr_step_epochs)
    schedule = StepSchedule(args.lr, steps, args.lr_factor)
    model, optimizer = build(args, len(classes))
    top_k = TOP_K if len(classes) >= TOP_K else 0
    run = Run(args, model, optimizer, schedule,
              TrainImages(train_samples, args.image_size, mean, args.seed), val_samples,
              mean, top_k, epochs, num_batches)
    return run, classes


def start(run, classes):
    """Resume or start the run folder: (first epoch, iteration, records so far)."""
    args = run.args
    first, iteration = load_checkpoint(run) if args.resume else (0, 0)
    keep_mean_image(args, run.mean, first > 0)
    record = run_record(args, classes, run.num_batches, run.epochs, run.schedule, run.mean)
    if first:
        rundir.warn_config_changes(args.output_dir, record)
        records = rundir.truncate_metrics(args.output_dir, first)
        logging.info("resuming %s after epoch %d (iteration %d)", args.output_dir, first,
                     iteration)
    else:
        records = []
        rundir.write_metrics(args.output_dir, records)
    rundir.write_config(args.output_dir, record)
    return first, iteration, records


def main(argv=None):
    args = parse_args(argv)
    if IMPORT_ERROR is not None:
        raise UsageError(f"PyTorch and torchvision are needed and do not import here "
                         f"({IMPORT_ERROR}): install a torchvision built for this torch")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    run, classes = prepare(args)
    with lock_dir(args.output_dir):
        check_output_dir(args)
        first, iteration, records = start(run, classes)
        for epoch in range(first, run.epochs):
            records.append(run_epoch(run, epoch, iteration))
            iteration = records[-1]["iteration"]
        final_evaluation(run, run.epochs, iteration)
    return records


if __name__ == "__main__":
    run_main(main, prog="torch_imagenet.py")
