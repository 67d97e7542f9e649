"""Classify image files with an exported network, through MXNet or onnxruntime alone.

    python3 -m training.classify runs/r110/export cat.png ship.jpg [--top-k 3] [--onnx]
    python3 -m training.classify runs/r110/export --test-set cifar [--onnx]

This module reads the export folder that ``training.export`` writes and owns its format:
``model-symbol.json`` and ``model-0000.params`` (``mx.model.load_checkpoint(prefix, 0)``),
``model.json`` with the class names, the data set, the preprocessing of training and the
SHA-256 of those two files, and, where onnx was installed at export, ``model.onnx``. It imports
MXNet in one place, ``mxnet()``, called by the MXNet backend only, so that classifying
with ``--onnx`` needs no MXNet.
"""
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from common.cli import Parser, UsageError, mxnet_message, run_main
from common.files import file_sha256, read_json
from data.cifar import cifar_class_names, cifar_folder, load_cifar
from data.normalization import normalize

EXPORT = "export"
INFO = "model.json"
SYMBOL_FILE, PARAMS_FILE = "model-symbol.json", "model-0000.params"  # load_checkpoint(., 0)
BACKENDS = ("mxnet", "onnx")
TEST_BATCH = 100  # images a forward pass of --test-set


def mxnet():
    """MXNet (``common.mx``), imported only when the MXNet backend asks for it."""
    from common.mx import mx
    return mx


def read_info(model_dir):
    """model.json of an export folder."""
    info_path = os.path.join(model_dir, INFO)
    if not os.path.isfile(info_path):
        raise FileNotFoundError(f"{model_dir} is not an export folder (no {INFO}); "
                                "make one with: python3 -m training.export RUN_DIR")
    return read_json(info_path)


def check_files(model_dir, info):
    """Refuse, in one line, an MXNet export file whose SHA-256 differs from the one
    model.json recorded when it was written (exports without sums are not checked)."""
    for name, digest in info.get("sha256", {}).items():
        path = os.path.join(model_dir, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file; export the run again")
        if file_sha256(path) != digest:
            raise ValueError(f"{path} is corrupt: its SHA-256 differs from the one recorded "
                             f"in {INFO} at export; export the run again")


def preprocess(img, pre):
    """A PIL image as evaluation saw it: RGB, shorter side resized to ``resize`` (bicubic),
    centre crop of ``crop`` pixels, normalised; a float32 (C, H, W) array."""
    img = img.convert("RGB")
    width, height = img.size
    size = pre["resize"]
    new = (size, size * height // width) if height > width else (size * width // height, size)
    img = img.resize(new, resample=3)  # PIL.Image.BICUBIC, as mx.image.resize_short
    left, top = (new[0] - pre["crop"]) // 2, (new[1] - pre["crop"]) // 2
    img = img.crop((left, top, left + pre["crop"], top + pre["crop"]))
    return normalize(np.asarray(img), pre["mean"], pre["std"], channel_axis=-1).transpose(2, 0, 1)


def load_image(path, pre):
    """An image file as a normalised float32 (C, H, W) array (``preprocess``). Read with
    Pillow, not MXNet, so that both backends see the same pixels."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with Image.open(path) as img:
            return preprocess(img, pre)
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise ValueError(f"{path}: not a readable image") from None


def find_export(model_dir):
    """``model_dir`` itself, or its ``export`` folder where ``model_dir`` is a run
    directory that has one."""
    if not os.path.isfile(os.path.join(model_dir, INFO)) and \
            os.path.isfile(os.path.join(model_dir, EXPORT, INFO)):
        return os.path.join(model_dir, EXPORT)
    return model_dir


class Classifier:
    """An exported network bound for inference: MXNet on one context (``backend='mxnet'``,
    for ``batch_size`` images at a time), or onnxruntime on the CPU (``'onnx'``, any
    batch size, no MXNet needed)."""

    def __init__(self, model_dir, ctx=None, batch_size=1, backend="mxnet"):
        self.info = read_info(model_dir)
        self.shape = tuple(self.info["preprocess"]["image_shape"])
        self.session = self.mod = None
        if backend == "onnx":
            from training.onnx_export import ONNX_FILE, Session
            record = self.info.get("onnx")
            if not record:
                raise FileNotFoundError(f"{model_dir} has no {ONNX_FILE}: export again with "
                                        "onnx and onnxruntime installed")
            self.session = Session(os.path.join(model_dir, record["file"]), record["sha256"])
            return
        if backend != "mxnet":
            raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
        mx = mxnet()
        check_files(model_dir, self.info)
        try:
            sym, arg, aux = mx.model.load_checkpoint(os.path.join(model_dir, "model"), 0)
        except mx.base.MXNetError as err:
            raise ValueError(f"{model_dir}: MXNet cannot load the export "
                             f"({mxnet_message(err)}); export the run again") from None
        self.mod = mx.mod.Module(sym, label_names=None, context=ctx or mx.cpu())
        self.mod.bind(data_shapes=[("data", (batch_size,) + self.shape)], for_training=False)
        self.mod.set_params(arg, aux)

    def probabilities(self, images):
        """Class probabilities (N, classes) of normalised (N, C, H, W) images."""
        if self.session is not None:
            return self.session.probabilities(images)
        mx = mxnet()
        batch = mx.io.DataBatch([mx.nd.array(images)])
        self.mod.forward(batch, is_train=False)
        return self.mod.get_outputs()[0].asnumpy()

    def classify(self, paths, top_k=1):
        """[(path, [(class name, probability), ...]), ...] for image files."""
        results = []
        for path in paths:
            prob = self.probabilities(load_image(path, self.info["preprocess"])[None])[0]
            best = np.argsort(-prob)[:top_k]
            results.append((path, [(self.info["classes"][i], float(prob[i])) for i in best]))
        return results


def read_test_set(data_dir, info):
    """Images uint8 (N, 3, 32, 32) and labels of the CIFAR test set in ``data_dir`` (its
    archive folder or that folder itself), refused in one line where its classes are not
    the network's."""
    dataset = info.get("dataset") or ("cifar100" if len(info["classes"]) in (20, 100)
                                      else "cifar10")
    folder = cifar_folder(data_dir, dataset)
    label_mode = "coarse" if dataset == "cifar100" and len(info["classes"]) == 20 else "fine"
    names = cifar_class_names(folder, label_mode)
    if names != info["classes"]:
        raise ValueError(f"{folder}: its classes ({', '.join(names[:3])}, ...) are not the "
                         f"network's ({', '.join(info['classes'][:3])}, ...)")
    if list(info["preprocess"]["image_shape"]) != [3, 32, 32]:
        raise ValueError(f"{folder} holds 3x32x32 images; the network takes "
                         + "x".join(map(str, info["preprocess"]["image_shape"])))
    return load_cifar(folder, train=False, label_mode=label_mode)


def error_rate(model, images, labels, batch_size=TEST_BATCH):
    """Top-1 error in percent of ``model`` (a Classifier) on uint8 (N, 3, H, W) ``images``
    with their ``labels``, normalised as in evaluation."""
    pre = model.info["preprocess"]
    wrong = 0
    for start in range(0, len(images), batch_size):
        x = normalize(images[start:start + batch_size], pre["mean"], pre["std"])
        wrong += int(np.sum(model.probabilities(x).argmax(axis=1)
                            != labels[start:start + batch_size]))
    return 100.0 * wrong / len(images)


def parse_args(argv=None):
    p = Parser(prog="python3 -m training.classify", description=__doc__.splitlines()[0])
    p.add_argument("model_dir", help="export folder (or a run directory that has one)")
    p.add_argument("images", nargs="*", help="image files to classify")
    p.add_argument("--test-set", metavar="DIR",
                   help="print the top-1 error on the CIFAR test set in DIR instead")
    p.add_argument("--top-k", type=int, default=1)
    p.add_argument("--gpu", type=int, help="GPU id (default: CPU)")
    p.add_argument("--onnx", action="store_true",
                   help="run model.onnx with onnxruntime instead of MXNet")
    return p.parse_intermixed_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.top_k < 1:
        raise UsageError("--top-k must be >= 1")
    if args.onnx and args.gpu is not None:
        raise UsageError("--onnx runs on the CPU; it takes no --gpu")
    if bool(args.images) == bool(args.test_set):
        raise UsageError("give image files or --test-set DIR, one of the two")
    model_dir = find_export(args.model_dir)
    batch = TEST_BATCH if args.test_set else 1
    if args.onnx:
        model = Classifier(model_dir, backend="onnx")
    else:
        model = Classifier(model_dir, None if args.gpu is None else mxnet().gpu(args.gpu),
                           batch_size=batch)
    if args.test_set:
        images, labels = read_test_set(args.test_set, model.info)
        error = error_rate(model, images, labels)
        print(f"{model_dir}: test error {error:.2f} % on the {len(images):,} test images "
              f"of {args.test_set} ({'onnx' if args.onnx else 'mxnet'})")
        return 0
    for path, top in model.classify(args.images, args.top_k):
        print(f"{path}: " + ", ".join(f"{name} {p:.3f}" for name, p in top))
    return 0


if __name__ == "__main__":
    run_main(main, prog="training.classify")
