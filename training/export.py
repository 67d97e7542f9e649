"""Export a trained network for inference: the folder ``training.classify`` reads.

    python3 -m training.export runs/r110            # -> runs/r110/export
    python3 -m training.export runs/r110 --epoch 100 --out deploy/r110
    python3 -m training.export runs/r18 --class-names names.txt

An export folder holds ``model-symbol.json`` and ``model-0000.params`` (loadable with
``mx.model.load_checkpoint(prefix, 0)``; the output is the softmax ``prob``, no label
input), ``model.json`` with the class names, the data set, the preprocessing of training,
the SHA-256 of those two files (checked before they are loaded) and the run folder
relative to the export folder (true wherever the checkout lies), and, where onnx and
onnxruntime are installed, ``model.onnx``: the same network, checked against MXNet
before it is kept (``training.onnx_export``). The names of these files are defined in
``training.classify``, the reader of the folder.
"""
import io
import logging
import os

import numpy as np
from PIL import Image

from common.cli import Parser, run_main
from common.files import atomic_path, file_sha256, write_json
from common.mx import mx
from data.cifar import cifar_folder, layout, load_cifar
from data.imagenet import rec_paths
from data.normalization import normalize
from training import checkpoint as ckpt
from training import onnx_export, rundir
from training.classify import (EXPORT, INFO, PARAMS_FILE, SYMBOL_FILE, normalise,
                               preprocess, read_mean_image)

CHECK_IMAGES = 16  # images an ONNX export is checked on


def inference_symbol(symbol):
    """The training symbol's SoftmaxOutput replaced by a plain softmax named 'prob'."""
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


def generated_images(count, pre, mean_image=None, seed=0):
    """``count`` normalised images of smooth random colour fields with pixel noise."""
    channels, height, width = pre["image_shape"]
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (count, channels, 4, 4))
    rows = np.linspace(0, 3, height).round().astype(int)
    cols = np.linspace(0, 3, width).round().astype(int)
    pixels = coarse[:, :, rows][:, :, :, cols] + rng.normal(0, 20, (count, channels, height, width))
    return normalise(np.clip(pixels, 0, 255), pre, mean_image)


def data_images(config, pre, count, mean_image=None):
    """Up to ``count`` normalised evaluation images of the run's data set, if it can be
    read: the CIFAR test batch, or the first records of ImageNet's val.rec."""
    try:
        if str(config.get("dataset", "")).startswith("cifar"):
            folder = cifar_folder(config["data_dir"], config["dataset"])
            try:
                images = load_cifar(folder, train=False)[0][:count]
            except FileNotFoundError:  # a folder without the test batch: training images
                images = load_cifar(folder, files=layout(config["dataset"]).train[:1])[0][:count]
            return normalize(images, pre["mean"], pre["std"])
        if config.get("data_dir"):
            record = mx.recordio.MXRecordIO(rec_paths(config["data_dir"])[1], "r")
            images = []
            while len(images) < count and (item := record.read()) is not None:
                with Image.open(io.BytesIO(mx.recordio.unpack(item)[1])) as img:
                    images.append(preprocess(img, pre, mean_image))
            record.close()
            return np.stack(images) if images else None
    except (OSError, ValueError, KeyError):
        return None
    return None


def check_images(config, pre, count=CHECK_IMAGES, mean_image=None):
    """(images, what they are): the batch an ONNX export is checked on. Real evaluation
    images where the run's data can be read, generated ones making up the rest."""
    real = data_images(config, pre, count, mean_image)
    found = 0 if real is None else len(real)
    made = generated_images(count - found, pre, mean_image)
    if not found:
        return made, f"{count} generated images"
    return (np.concatenate([real, made]),
            f"{found} images of {config['dataset'] if 'dataset' in config else 'val.rec'}"
            + (f" and {count - found} generated" if count > found else ""))


def export_model(run_dir, epoch=None, out_dir=None, onnx=True, class_names=None):
    """Write checkpoint ``epoch`` (default: the newest) of ``run_dir`` for inference;
    returns the export folder (default ``run_dir/export``). The classes are those the run
    recorded (e.g. its image folders; their indices where it recorded none), with
    ``class_names`` (in label order) to print for them where given; the run's per-pixel
    mean, where it subtracted one, is copied beside them.

    With ``onnx`` (the default) and onnx and onnxruntime installed, also ``model.onnx``,
    checked first (``training.onnx_export.export_onnx``): where onnxruntime disagrees with
    MXNet, the MXNet files are kept, no ``model.onnx`` is, and ``ValueError`` says why.
    Without those packages, a warning line says how to get them."""
    manifest = ckpt.find_intact_checkpoint(run_dir, epoch)  # files read back first
    if manifest is None:
        raise ValueError(f"no complete checkpoint in {run_dir}")
    config_path = os.path.join(run_dir, rundir.CONFIG)
    config = rundir.read_config(run_dir)
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
    with atomic_path(os.path.join(out_dir, PARAMS_FILE)) as tmp:
        mx.nd.save(tmp, ckpt.join_params(arg, aux))
        sums[PARAMS_FILE] = file_sha256(tmp)
    mean_image = read_mean_image(run_dir, config["preprocess"])
    if mean_image is not None:
        name = config["preprocess"]["mean_image"]
        with atomic_path(os.path.join(out_dir, name)) as tmp, open(tmp, "wb") as f:
            np.save(f, mean_image)
        sums[name] = file_sha256(os.path.join(out_dir, name))
    classes = config.get("classes") or [str(i) for i in range(config["num_classes"])]
    if class_names is not None and len(class_names) != len(classes):
        raise ValueError(f"{len(class_names)} class names for a network of {len(classes)} "
                         "classes")
    info = {"sha256": sums, "classes": classes,
            **({"class_names": list(class_names)} if class_names is not None else {}),
        "preprocess": config["preprocess"], "dataset": config.get("dataset"),
        "epoch": manifest["epoch"],
        "run_dir": os.path.relpath(run_dir, out_dir), "num_layers": config.get("num_layers"),
        "unit": config.get("unit"), "shortcut": config.get("shortcut"),
        "projection": config.get("projection"), "bottleneck": config.get("bottleneck")}
    error = None
    if onnx:
        try:
            info["onnx"] = write_onnx(net, arg, aux, config, out_dir, mean_image)
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
    path = os.path.join(out_dir, onnx_export.ONNX_FILE)
    if os.path.exists(path):
        os.remove(path)


def write_onnx(net, arg, aux, config, out_dir, mean_image=None):
    """Export ``model.onnx`` checked on ``check_images``; returns what model.json records
    of it (None, with a warning line, where onnx or onnxruntime is missing)."""
    remove_onnx(out_dir)
    try:
        onnx_export.require()
    except ImportError as err:
        logging.warning("%s not written: %s", onnx_export.ONNX_FILE, err)
        return None
    images, source = check_images(config, config["preprocess"], mean_image=mean_image)
    check = onnx_export.export_onnx(net, arg, aux, images,
                                    os.path.join(out_dir, onnx_export.ONNX_FILE),
                                    describe(config))
    return {"file": onnx_export.ONNX_FILE, "checked_on": source, **check}


def parse_args(argv=None):
    p = Parser(prog="python3 -m training.export", description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--epoch", type=int, help="checkpoint to export (default: newest)")
    p.add_argument("--out", help="export folder (default: RUN_DIR/export)")
    p.add_argument("--class-names", metavar="FILE",
                   help="names to print for the classes, one a line in label order "
                        "(e.g. 'tench' for the folder n01440764)")
    return p.parse_args(argv)


def read_class_names(path):
    """The non-empty lines of ``path``, stripped."""
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def main(argv=None):
    args = parse_args(argv)
    names = read_class_names(args.class_names) if args.class_names else None
    print(export_model(args.run_dir, args.epoch, args.out, class_names=names))
    return 0


if __name__ == "__main__":
    run_main(main, prog="training.export")
