"""Classify image files with an exported network, through MXNet or onnxruntime alone.

    python3 -m training.classify runs/r110/export cat.png ship.jpg [--top-k 3] [--onnx]
    python3 -m training.classify runs/r110/export --test-set cifar [--onnx]
    python3 -m training.classify pretrained/resnet18-imagenette photo.jpg --ten-crop
    python3 -m training.classify runs/r18/export --test-set imagenette/val [--ten-crop]

This module reads the export folder that ``training.export`` writes and owns its format:
``model-symbol.json`` and ``model-0000.params`` (``mx.model.load_checkpoint(prefix, 0)``),
``model.json`` with the classes (and names to print for them where they were given), the
data set, the preprocessing of training and the
SHA-256 of the files, the per-pixel mean (``mean_image.npy``) where training subtracted one,
and, where onnx was installed at export, ``model.onnx``. It imports
MXNet in one place, ``mxnet()``, called by the MXNet backend only, so that classifying
with ``--onnx`` needs no MXNet.
"""
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from common.cli import Parser, UsageError, mxnet_message, run_main
from common.files import file_sha256, read_json, write_json
from data.cifar import cifar_class_names, cifar_folder, load_cifar
from data.folders import list_folder
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


def check_files(model_dir, info, backend="mxnet"):
    """Refuse, in one line, an export file whose SHA-256 differs from the one model.json
    recorded when it was written: the MXNet files for the MXNet backend, and the files
    both backends read (the per-pixel mean) for either (exports without sums are not
    checked)."""
    for name, digest in info.get("sha256", {}).items():
        if backend != "mxnet" and name in (SYMBOL_FILE, PARAMS_FILE):
            continue
        path = os.path.join(model_dir, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file; export the run again")
        if file_sha256(path) != digest:
            raise ValueError(f"{path} is corrupt: its SHA-256 differs from the one recorded "
                             f"in {INFO} at export; export the run again")


def resize_shorter(img, size):
    """``img`` (PIL) in RGB with its shorter side resized to ``size`` (bicubic, as
    mx.image.resize_short)."""
    img = img.convert("RGB")
    width, height = img.size
    new = (size, size * height // width) if height > width else (size * width // height, size)
    return img.resize(new, resample=3)  # PIL.Image.BICUBIC


def crop_boxes(width, height, crop, ten_crop=False):
    """(left, top, right, bottom) of the centre ``crop`` x ``crop`` window of a ``width`` x
    ``height`` image, or with ``ten_crop`` of the paper's five: the four corners and the
    centre."""
    left, top = (width - crop) // 2, (height - crop) // 2
    boxes = [(left, top, left + crop, top + crop)]
    if ten_crop:
        boxes += [(x, y, x + crop, y + crop)
                  for y in (0, height - crop) for x in (0, width - crop)]
    return boxes


def image_crops(img, pre, ten_crop=False):
    """The crops of a PIL image that evaluation takes, as float32 (K, C, H, W) pixels:
    shorter side resized to ``pre["resize"]``, the centre crop (K = 1), or with
    ``ten_crop`` the 2015 paper's 10-crop testing (after Krizhevsky et al.): the centre and
    the four corner crops and their mirror images (K = 10)."""
    img = resize_shorter(img, pre["resize"])
    crops = [np.asarray(img.crop(box), np.float32)
             for box in crop_boxes(*img.size, pre["crop"], ten_crop)]
    if ten_crop:
        crops += [c[:, ::-1] for c in crops]
    return np.stack(crops).transpose(0, 3, 1, 2)


def normalise(pixels, pre, mean_image=None):
    """(N, C, H, W) pixels as the network takes them: minus ``mean_image`` (the run's
    per-pixel mean) where the preprocessing names one, else (x - mean) / std per channel."""
    if pre.get("mean_image"):
        if mean_image is None:
            raise ValueError(f"this network subtracts the per-pixel mean {pre['mean_image']}; "
                             "it was not given")
        return np.asarray(pixels, np.float32) - mean_image
    return normalize(pixels, pre["mean"], pre["std"])


def preprocess(img, pre, mean_image=None):
    """A PIL image as evaluation saw it, the centre crop normalised: float32 (C, H, W)."""
    return normalise(image_crops(img, pre), pre, mean_image)[0]


def open_image(path):
    """A PIL image of file ``path``, decoded; one-line errors for a missing or unreadable
    file. Read with Pillow, not MXNet, so that both backends see the same pixels."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise ValueError(f"{path}: not a readable image") from None


def load_image(path, pre, mean_image=None):
    """An image file as a normalised float32 (C, H, W) array (``preprocess``)."""
    return preprocess(open_image(path), pre, mean_image)


def read_mean_image(model_dir, pre):
    """The per-pixel mean that ``pre`` names, from ``model_dir``, or None; refused in one
    line where it is missing or not of the crops' shape."""
    if not pre.get("mean_image"):
        return None
    path = os.path.join(model_dir, pre["mean_image"])
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file; export the run again")
    try:
        mean = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        raise ValueError(f"{path}: not a NumPy array file; export the run again") from None
    if tuple(mean.shape) != tuple(pre["image_shape"]):
        raise ValueError(f"{path} has shape {mean.shape}; the network takes "
                         + "x".join(map(str, pre["image_shape"])))
    return mean.astype(np.float32)


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
        if backend in BACKENDS:
            check_files(model_dir, self.info, backend)
        self.mean_image = read_mean_image(model_dir, self.info["preprocess"])
        self.names = self.info.get("class_names") or self.info["classes"]
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

    def inputs(self, img, ten_crop=False):
        """The network's inputs (K, C, H, W) of a PIL image: its centre crop, or its ten
        crops (``image_crops``), normalised."""
        pre = self.info["preprocess"]
        return normalise(image_crops(img, pre, ten_crop), pre, self.mean_image)

    def image_probabilities(self, images, ten_crop=False):
        """Class probabilities (N, classes) of PIL images: of the centre crop, or the mean
        over the ten crops."""
        crops = np.concatenate([self.inputs(img, ten_crop) for img in images])
        return self.probabilities(crops).reshape(len(images), -1, len(self.info["classes"])
                                                 ).mean(axis=1)

    def classify(self, paths, top_k=1, ten_crop=False):
        """[(path, [(class name, probability), ...]), ...] for image files."""
        results = []
        for path in paths:
            prob = self.image_probabilities([open_image(path)], ten_crop)[0]
            best = np.argsort(-prob)[:top_k]
            results.append((path, [(self.names[i], float(prob[i])) for i in best]))
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


def is_class_folder(data_dir, info):
    """Whether ``data_dir`` holds a sub-folder named after one of the network's classes
    (an ImageNet-style test set) rather than CIFAR's files."""
    return any(os.path.isdir(os.path.join(data_dir, name)) for name in info["classes"])


def read_class_folder(data_dir, info):
    """[(label, image path)] of a folder of class folders, each folder named as one of the
    network's classes (``info["classes"]``, in any order); refused in one line where the
    folders are not the network's classes."""
    items, folders, _ = list_folder(data_dir)
    classes = list(info["classes"])
    if sorted(folders) != sorted(classes):
        raise ValueError(f"{data_dir}: its class folders ({', '.join(folders[:3])}, ...) are "
                         f"not the network's classes ({', '.join(classes[:3])}, ...)")
    return [(classes.index(folders[label]), os.path.join(data_dir, path))
            for label, path in items]


def folder_probabilities(model, items, ten_crop=False, images_per_batch=10):
    """Class probabilities (N, classes) of ``model`` (a Classifier) for the images of
    ``items`` ([(label, path)], ``read_class_folder``), preprocessed as evaluation was,
    each from its centre crop or the mean over its ten crops."""
    return np.concatenate([
        model.image_probabilities([open_image(path) for _, path in
                                   items[start:start + images_per_batch]], ten_crop)
        for start in range(0, len(items), images_per_batch)])


def top_k_errors(prob, labels, top_k=5):
    """(top-1, top-``top_k``) error in percent of class probabilities ``prob`` (N, classes)
    against ``labels``."""
    ranked = np.argsort(-prob, axis=1)
    labels = np.asarray(labels)
    wrong = np.mean(ranked[:, 0] != labels)
    wrong_k = np.mean(~(ranked[:, :top_k] == labels[:, None]).any(axis=1))
    return 100.0 * float(wrong), 100.0 * float(wrong_k)


def write_predictions(path, model, items, prob, ten_crop):
    """Each image's label and five most probable classes, with the class names, as JSON
    (``plots.confusion`` draws the confusion matrix and per-class accuracy of it)."""
    ranked = np.argsort(-prob, axis=1)[:, :5]
    write_json(path, {"classes": list(model.info["classes"]), "names": list(model.names),
                      "crops": "10-crop" if ten_crop else "centre crop",
                      "images": [os.path.basename(p) for _, p in items],
                      "labels": [label for label, _ in items],
                      "top5": ranked.tolist()})


def test_set_line(model, data_dir, ten_crop, backend, predictions=None):
    """The line --test-set prints: the errors of ``model`` on the test set in
    ``data_dir``, a folder of class folders or CIFAR's files; a folder's predictions go to
    the file ``predictions`` where it is given."""
    if is_class_folder(data_dir, model.info):
        items = read_class_folder(data_dir, model.info)
        top_k = min(5, len(model.info["classes"]) - 1)
        prob = folder_probabilities(model, items, ten_crop)
        top1, topk = top_k_errors(prob, [label for label, _ in items], top_k)
        if predictions:
            write_predictions(predictions, model, items, prob, ten_crop)
        crops = "10-crop" if ten_crop else "centre crop"
        return (f"top-1 error {top1:.2f} %, top-{top_k} error {topk:.2f} % on the "
                f"{len(items):,} images of {data_dir} ({crops}, {backend})")
    if ten_crop or predictions:
        raise ValueError("--ten-crop and --predictions are for a folder of class folders of "
                         "photographs, not CIFAR's test set")
    images, labels = read_test_set(data_dir, model.info)
    error = error_rate(model, images, labels)
    return f"test error {error:.2f} % on the {len(images):,} test images of {data_dir} ({backend})"


def parse_args(argv=None):
    p = Parser(prog="python3 -m training.classify", description=__doc__.splitlines()[0])
    p.add_argument("model_dir", help="export folder (or a run directory that has one)")
    p.add_argument("images", nargs="*", help="image files to classify")
    p.add_argument("--test-set", metavar="DIR",
                   help="print the error on the test set in DIR instead: CIFAR's files, or "
                        "a folder of class folders of images (top-1 and top-5)")
    p.add_argument("--ten-crop", action="store_true",
                   help="average the probabilities of the 2015 paper's ten crops (four "
                        "corners and the centre, and their mirror images)")
    p.add_argument("--predictions", metavar="FILE",
                   help="with --test-set on a folder: also write every image's label and "
                        "top-5 classes to FILE (JSON; python3 -m plots.confusion draws it)")
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
    if args.predictions and not args.test_set:
        raise UsageError("--predictions FILE goes with --test-set DIR")
    model_dir = find_export(args.model_dir)
    batch = TEST_BATCH if args.test_set else 1
    if args.onnx:
        model = Classifier(model_dir, backend="onnx")
    else:
        model = Classifier(model_dir, None if args.gpu is None else mxnet().gpu(args.gpu),
                           batch_size=batch)
    if args.test_set:
        print(f"{model_dir}: " + test_set_line(model, args.test_set, args.ten_crop,
                                               "onnx" if args.onnx else "mxnet",
                                               args.predictions))
        return 0
    for path, top in model.classify(args.images, args.top_k, args.ten_crop):
        print(f"{path}: " + ", ".join(f"{name} {p:.3f}" for name, p in top))
    return 0


if __name__ == "__main__":
    run_main(main, prog="training.classify")
