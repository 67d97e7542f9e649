"""Export a trained network for inference, and classify image files with it.

    python3 -m common.predict export runs/r110            # -> runs/r110/export
    python3 -m common.predict classify runs/r110/export cat.png ship.jpg

An export folder holds ``model-symbol.json`` and ``model-0000.params`` (loadable with
``mx.model.load_checkpoint(prefix, 0)``; the output is the softmax ``prob``, no label
input) and ``model.json`` with the class names and the preprocessing of training.
"""
import json
import os

import numpy as np

from common import checkpoint as ckpt
from common.cli import UsageError, run_main
from common.files import atomic_path, write_json
from common.mx import mx

EXPORT = "export"
INFO = "model.json"


def inference_symbol(symbol):
    """The training symbol's SoftmaxOutput replaced by a plain softmax named 'prob'."""
    logits = symbol.get_children()[0]
    return mx.sym.softmax(logits, axis=1, name="prob")


def export_model(run_dir, epoch=None, out_dir=None):
    """Write checkpoint ``epoch`` (default: the newest) of ``run_dir`` for inference;
    returns the export folder (default ``run_dir/export``)."""
    manifest = ckpt.find_checkpoint(run_dir, epoch)
    if manifest is None:
        raise ValueError(f"no complete checkpoint in {run_dir}")
    config_path = os.path.join(run_dir, ckpt.CONFIG)
    with open(config_path) as f:
        config = json.load(f)
    if "preprocess" not in config:
        raise ValueError(f"{config_path} does not say how images were preprocessed")
    out_dir = out_dir or os.path.join(run_dir, EXPORT)
    os.makedirs(out_dir, exist_ok=True)
    net = inference_symbol(mx.sym.load(os.path.join(run_dir, manifest["files"]["symbol"])))
    arg, aux = ckpt.load_params(run_dir, manifest)
    names = set(net.list_arguments())
    arg = {k: v for k, v in arg.items() if k in names}
    with atomic_path(os.path.join(out_dir, "model-symbol.json")) as tmp:
        net.save(tmp)
    params = {f"arg:{k}": v for k, v in arg.items()}
    params.update({f"aux:{k}": v for k, v in aux.items()})
    with atomic_path(os.path.join(out_dir, "model-0000.params")) as tmp:
        mx.nd.save(tmp, params)
    write_json(os.path.join(out_dir, INFO), {
        "classes": config.get("classes") or [str(i) for i in range(config["num_classes"])],
        "preprocess": config["preprocess"], "epoch": manifest["epoch"],
        "run_dir": os.path.abspath(run_dir), "num_layers": config.get("num_layers"),
        "unit": config.get("unit"), "shortcut": config.get("shortcut")})
    return out_dir


def load_image(path, pre):
    """An image file as a normalised float32 (C, H, W) array, resized (shorter side to
    ``resize``) and centre-cropped to ``crop`` as in evaluation."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        img = mx.image.imread(path)  # H, W, C RGB uint8
    except Exception as err:
        if type(err).__name__ != "MXNetError":
            raise
        raise ValueError(f"{path}: not a readable image") from None
    img = mx.image.resize_short(img, pre["resize"])
    img = mx.image.center_crop(img, (pre["crop"], pre["crop"]))[0]
    x = (img.asnumpy().astype(np.float32) - np.float32(pre["mean"])) / np.float32(pre["std"])
    return x.transpose(2, 0, 1)


class Classifier:
    """An exported network bound for inference on one context."""

    def __init__(self, model_dir, ctx=None, batch_size=1):
        info_path = os.path.join(model_dir, INFO)
        if not os.path.isfile(info_path):
            raise FileNotFoundError(f"{model_dir} is not an export folder (no {INFO}); "
                                    "make one with: python3 -m common.predict export RUN_DIR")
        with open(info_path) as f:
            self.info = json.load(f)
        sym, arg, aux = mx.model.load_checkpoint(os.path.join(model_dir, "model"), 0)
        self.shape = tuple(self.info["preprocess"]["image_shape"])
        self.mod = mx.mod.Module(sym, label_names=None, context=ctx or mx.cpu())
        self.mod.bind(data_shapes=[("data", (batch_size,) + self.shape)], for_training=False)
        self.mod.set_params(arg, aux)

    def probabilities(self, images):
        """Class probabilities (N, classes) of normalised (N, C, H, W) images."""
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
    from common.args import Parser
    p = Parser(prog="python3 -m common.predict", description=__doc__.splitlines()[0])
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
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.command == "export":
        print(export_model(args.run_dir, args.epoch, args.out))
        return 0
    if args.top_k < 1:
        raise UsageError("--top-k must be >= 1")
    model_dir = args.model_dir
    if not os.path.isfile(os.path.join(model_dir, INFO)) and \
            os.path.isfile(os.path.join(model_dir, EXPORT, INFO)):
        model_dir = os.path.join(model_dir, EXPORT)
    ctx = mx.gpu(args.gpu) if args.gpu is not None else mx.cpu()
    for path, top in Classifier(model_dir, ctx).classify(args.images, args.top_k):
        print(f"{path}: " + ", ".join(f"{name} {p:.3f}" for name, p in top))
    return 0


if __name__ == "__main__":
    run_main(main, prog="common.predict")
