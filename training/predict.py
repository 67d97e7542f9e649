"""Export a trained network for inference, and classify image files with it.

    python3 -m training.predict export runs/r110            # -> runs/r110/export
    python3 -m training.predict classify runs/r110/export cat.png ship.jpg [--onnx]

An export folder holds ``model-symbol.json`` and ``model-0000.params`` (loadable with
``mx.model.load_checkpoint(prefix, 0)``; the output is the softmax ``prob``, no label
input), ``model.json`` with the class names, the preprocessing of training and the SHA-256
of those two files (checked before they are loaded), and, where onnx and onnxruntime are
installed, ``model.onnx``: the same network, checked against MXNet when it was written
(``training.onnx_export``). Classifying with ``--onnx`` runs onnxruntime and needs no
MXNet.
"""
import logging
import os

import numpy as np

from common.cli import UsageError, mxnet_message, run_main
from common.files import atomic_path, file_sha256, read_json, write_json

EXPORT = "export"
INFO = "model.json"
SYMBOL_FILE, PARAMS_FILE = "model-symbol.json", "model-0000.params"  # load_checkpoint(., 0)
CHECK_IMAGES = 16  # images an ONNX export is checked on


def inference_symbol(symbol):
    """The training symbol's SoftmaxOutput replaced by a plain softmax named 'prob'."""
    from common.mx import mx
    logits = symbol.get_children()[0]
    return mx.sym.softmax(logits, axis=1, name="prob")


def describe(config):
    """The network of a run's config in words, e.g. 'ResNet-20 (3x32x32, full_preact
    units, identity shortcut, projection B)'."""
    shape = "x".join(str(v) for v in config["preprocess"]["image_shape"])
    depth = config.get("num_layers") or "/".join(map(str, config.get("units") or ())) or "?"
    parts = [shape, f"{config.get('unit')} units", f"{config.get('shortcut')} shortcut",
             f"projection {config.get('projection')}"]
    if config.get("bottleneck"):
        parts.append("bottleneck")
    return f"ResNet-{depth} ({', '.join(parts)})"


def generated_images(count, pre, seed=0):
    """``count`` normalised images of smooth random colour fields with pixel noise."""
    channels, height, width = pre["image_shape"]
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (count, channels, 4, 4))
    rows = np.linspace(0, 3, height).round().astype(int)
    cols = np.linspace(0, 3, width).round().astype(int)
    pixels = coarse[:, :, rows][:, :, :, cols] + rng.normal(0, 20, (count, channels, height, width))
    return normalise(np.clip(pixels, 0, 255).transpose(0, 2, 3, 1), pre).transpose(0, 3, 1, 2)


def data_images(config, pre, count):
    """Up to ``count`` normalised evaluation images of the run's data set, if it can be
    read: the CIFAR test batch, or the first records of ImageNet's val.rec."""
    try:
        if str(config.get("dataset", "")).startswith("cifar"):
            from data.cifar import cifar_folder, layout, load_cifar
            folder = cifar_folder(config["data_dir"], config["dataset"])
            try:
                images = load_cifar(folder, train=False)[0][:count]
            except FileNotFoundError:  # a folder without the test batch: training images
                images = load_cifar(folder, files=layout(config["dataset"]).train[:1])[0][:count]
            return normalise(images.transpose(0, 2, 3, 1), pre).transpose(0, 3, 1, 2)
        if config.get("data_dir"):
            import io

            from PIL import Image

            from common.mx import mx
            from data.imagenet import rec_paths
            record = mx.recordio.MXRecordIO(rec_paths(config["data_dir"])[1], "r")
            images = []
            while len(images) < count and (item := record.read()) is not None:
                with Image.open(io.BytesIO(mx.recordio.unpack(item)[1])) as img:
                    images.append(preprocess(img, pre))
            record.close()
            return np.stack(images) if images else None
    except (OSError, ValueError, KeyError):
        return None
    return None


def check_images(config, pre, count=CHECK_IMAGES):
    """(images, what they are): the batch an ONNX export is checked on. Real evaluation
    images where the run's data can be read, generated ones making up the rest."""
    real = data_images(config, pre, count)
    found = 0 if real is None else len(real)
    made = generated_images(count - found, pre)
    if not found:
        return made, f"{count} generated images"
    return (np.concatenate([real, made]),
            f"{found} images of {config['dataset'] if 'dataset' in config else 'val.rec'}"
            + (f" and {count - found} generated" if count > found else ""))


def export_model(run_dir, epoch=None, out_dir=None, onnx=True):
    """Write checkpoint ``epoch`` (default: the newest) of ``run_dir`` for inference;
    returns the export folder (default ``run_dir/export``).

    With ``onnx`` (the default) and onnx and onnxruntime installed, also ``model.onnx``,
    checked first (``training.onnx_export.export_onnx``): where onnxruntime disagrees with
    MXNet, the MXNet files are kept, no ``model.onnx`` is, and ``ValueError`` says why.
    Without those packages, a warning line says how to get them."""
    from common.mx import mx
    from training import checkpoint as ckpt
    manifest = ckpt.find_intact_checkpoint(run_dir, epoch)  # files read back first
    if manifest is None:
        raise ValueError(f"no complete checkpoint in {run_dir}")
    config_path = os.path.join(run_dir, ckpt.CONFIG)
    config = read_json(config_path)
    if "preprocess" not in config:
        raise ValueError(f"{config_path} does not say how images were preprocessed")
    out_dir = out_dir or os.path.join(run_dir, EXPORT)
    os.makedirs(out_dir, exist_ok=True)
    net = inference_symbol(mx.sym.load(os.path.join(run_dir, manifest["files"]["symbol"])))
    arg, aux = ckpt.load_params(run_dir, manifest)
    names = set(net.list_arguments())
    arg = {k: v for k, v in arg.items() if k in names}
    sums = {}
    with atomic_path(os.path.join(out_dir, SYMBOL_FILE)) as tmp:
        net.save(tmp)
        sums[SYMBOL_FILE] = file_sha256(tmp)
    params = {f"arg:{k}": v for k, v in arg.items()}
    params.update({f"aux:{k}": v for k, v in aux.items()})
    with atomic_path(os.path.join(out_dir, PARAMS_FILE)) as tmp:
        mx.nd.save(tmp, params)
        sums[PARAMS_FILE] = file_sha256(tmp)
    info = {"sha256": sums,
        "classes": config.get("classes") or [str(i) for i in range(config["num_classes"])],
        "preprocess": config["preprocess"], "epoch": manifest["epoch"],
        "run_dir": os.path.abspath(run_dir), "num_layers": config.get("num_layers"),
        "unit": config.get("unit"), "shortcut": config.get("shortcut"),
        "projection": config.get("projection"), "bottleneck": config.get("bottleneck")}
    error = None
    if onnx:
        try:
            info["onnx"] = write_onnx(net, arg, aux, config, out_dir)
        except ValueError as err:
            error = err
    else:
        remove_onnx(out_dir)
    write_json(os.path.join(out_dir, INFO), info)
    if error is not None:
        raise ValueError(f"{error} (the MXNet export in {out_dir} is complete)")
    return out_dir


def remove_onnx(out_dir):
    """Delete a ``model.onnx`` left by an earlier export: it would not match the new one."""
    from training.onnx_export import ONNX_FILE
    path = os.path.join(out_dir, ONNX_FILE)
    if os.path.exists(path):
        os.remove(path)


def write_onnx(net, arg, aux, config, out_dir):
    """Export ``model.onnx`` checked on ``check_images``; returns what model.json records
    of it (None, with a warning line, where onnx or onnxruntime is missing)."""
    from training import onnx_export
    remove_onnx(out_dir)
    try:
        onnx_export.require()
    except ImportError as err:
        logging.warning("%s not written: %s", onnx_export.ONNX_FILE, err)
        return None
    images, source = check_images(config, config["preprocess"])
    check = onnx_export.export_onnx(net, arg, aux, images,
                                    os.path.join(out_dir, onnx_export.ONNX_FILE),
                                    describe(config))
    return {"file": onnx_export.ONNX_FILE, "checked_on": source, **check}


def normalise(pixels, pre):
    """(pixels - mean) / std per channel, as float32; ``pixels`` ..., H, W, C in 0..255."""
    return ((np.asarray(pixels, np.float32) - np.float32(pre["mean"]))
            / np.float32(pre["std"]))


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
    return normalise(np.asarray(img), pre).transpose(2, 0, 1)


def load_image(path, pre):
    """An image file as a normalised float32 (C, H, W) array (``preprocess``). Read with
    Pillow, not MXNet, so that both backends see the same pixels."""
    from PIL import Image, UnidentifiedImageError
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with Image.open(path) as img:
            return preprocess(img, pre)
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise ValueError(f"{path}: not a readable image") from None


def read_info(model_dir):
    """model.json of an export folder."""
    info_path = os.path.join(model_dir, INFO)
    if not os.path.isfile(info_path):
        raise FileNotFoundError(f"{model_dir} is not an export folder (no {INFO}); "
                                "make one with: python3 -m training.predict export RUN_DIR")
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
            raise ValueError(f"unknown backend {backend!r}; valid: mxnet, onnx")
        from common.mx import mx
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
        from common.mx import mx
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


def parse_args(argv=None):
    from common.cli import Parser
    p = Parser(prog="python3 -m training.predict", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="write a run's checkpoint for inference")
    e.add_argument("run_dir")
    e.add_argument("--epoch", type=int, help="checkpoint to export (default: newest)")
    e.add_argument("--out", help="export folder (default: RUN_DIR/export)")
    c = sub.add_parser("classify", help="classify image files")
    c.add_argument("model_dir", help="export folder (or a run directory that has one)")
    c.add_argument("images", nargs="+")
    c.add_argument("--top-k", type=int, default=1)
    c.add_argument("--gpu", type=int, help="GPU id (default: CPU)")
    c.add_argument("--onnx", action="store_true",
                   help="run model.onnx with onnxruntime instead of MXNet")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.command == "export":
        print(export_model(args.run_dir, args.epoch, args.out))
        return 0
    if args.top_k < 1:
        raise UsageError("--top-k must be >= 1")
    if args.onnx and args.gpu is not None:
        raise UsageError("--onnx runs on the CPU; it takes no --gpu")
    model_dir = args.model_dir
    if not os.path.isfile(os.path.join(model_dir, INFO)) and \
            os.path.isfile(os.path.join(model_dir, EXPORT, INFO)):
        model_dir = os.path.join(model_dir, EXPORT)
    if args.onnx:
        model = Classifier(model_dir, backend="onnx")
    else:
        from common.mx import mx
        model = Classifier(model_dir, mx.gpu(args.gpu) if args.gpu is not None else mx.cpu())
    for path, top in model.classify(args.images, args.top_k):
        print(f"{path}: " + ", ".join(f"{name} {p:.3f}" for name, p in top))
    return 0


if __name__ == "__main__":
    run_main(main, prog="training.predict")
