"""Gradient-flow probe: how d loss / d x_l and x_l change with the residual unit l.

Identity Mappings, Eqn. 5: with identity shortcuts ``x_L = x_l + sum F``, so
``dE/dx_l = dE/dx_L (1 + d/dx_l sum F)`` and the signal from the top reaches every unit
undiminished. With constant scaling (Eqn. 8) the shortcut term becomes
``prod_{i=l}^{L-1} lambda_i``, which vanishes as ``lambda^(L-l)`` for ``lambda < 1``.
The probe measures both norms on a real network and batch, using the zero Variables that
``symbols.get_symbol(..., probe=True)`` adds at every unit input, and the batch's loss.
"""
import argparse
import os
import re

import numpy as np

import symbols
from common.cli import UsageError, parse_ints, parse_shortcut_params, run_main
from common.mx import mx
from training.checkpoint import read_params
from training.module import initializer

PROBE = re.compile(r"^stage(\d+)_unit(\d+)_probe$")


def probe_units(symbol):
    """Names ``stage{s}_unit{u}`` of the probed units, from input to output."""
    found = [PROBE.match(name) for name in symbol.list_arguments()]
    units = sorted((int(m[1]), int(m[2])) for m in found if m)
    if not units:
        raise ValueError("the symbol has no probe variables: build it with probe=True")
    return [f"stage{s}_unit{u}" for s, u in units]


def init_params(symbol, data_shape, seed=0):
    """(arg_params, aux_params) of ``symbol`` for images of ``data_shape`` (N, C, H, W),
    drawn with the trainers' initializer and the symbol's own init attributes, as
    ``Module.init_params`` does. Probe variables are left out."""
    label_shape = data_shape[:1]
    arg_shapes, _, aux_shapes = symbol.infer_shape(data=data_shape, softmax_label=label_shape)
    args = dict(zip(symbol.list_arguments(), arg_shapes))
    aux = dict(zip(symbol.list_auxiliary_states(), aux_shapes))
    for name in ("data", "softmax_label"):
        args.pop(name)
    args = {n: shape for n, shape in args.items() if not PROBE.match(n)}
    mx.random.seed(seed)
    init = initializer()
    attrs = symbol.attr_dict()
    arrays = [{}, {}]
    for params, shapes in zip(arrays, (args, aux)):
        for name, shape in shapes.items():
            params[name] = mx.nd.zeros(shape)
            init(mx.init.InitDesc(name, attrs.get(name, {})), params[name])
    return tuple(arrays)


def _fill(arrays, given, kind):
    """Copy ``given`` into ``arrays``; every name must be given, shapes must match."""
    missing = [n for n in arrays if n not in given]
    if missing:
        raise ValueError(f"{kind} parameters missing for this network: {', '.join(missing[:5])}"
                         + (" ..." if len(missing) > 5 else ""))
    for name, array in arrays.items():
        if given[name].shape != array.shape:
            raise ValueError(f"{kind} parameter {name} has shape {given[name].shape}, "
                             f"the network needs {array.shape}")
        array[:] = given[name]


def gradient_flow(symbol, batch_data, batch_label, arg_params=None, aux_params=None, seed=0):
    """Norms of d loss / d x_l and of x_l at the input of every residual unit l.

    ``symbol`` is built with ``probe=True``; ``batch_data`` (N, C, H, W) and
    ``batch_label`` (N,) are arrays. Parameters come from ``arg_params`` / ``aux_params``
    (e.g. ``training.checkpoint.read_params``); those not given come from :func:`init_params` with
    ``seed``. BatchNorm runs in training mode (batch statistics), as in training. Norms
    are L2 norms over the whole batch; the loss is SoftmaxOutput's (summed over the
    batch). Returns ``{'units': names, 'grad_norm': [...], 'signal_norm': [...],
    'loss': mean cross-entropy of the batch}``, the lists ordered from input to output.
    """
    batch_data = np.asarray(batch_data, dtype=np.float32)
    batch_label = np.asarray(batch_label, dtype=np.float32)
    if batch_data.ndim != 4 or batch_label.shape != batch_data.shape[:1]:
        raise ValueError(f"need data (N, C, H, W) and labels (N,), got {batch_data.shape} "
                         f"and {batch_label.shape}")
    units = probe_units(symbol)
    probes = [f"{u}_probe" for u in units]
    if arg_params is None or aux_params is None:
        initial = init_params(symbol, batch_data.shape, seed)
        arg_params = initial[0] if arg_params is None else arg_params
        aux_params = initial[1] if aux_params is None else aux_params
    internals = symbol.get_internals()
    signals = [mx.sym.BlockGrad(internals[f"{u}_input_output"]) for u in units]
    group = mx.sym.Group([symbol] + signals)
    inputs = ("data", "softmax_label")
    grad_req = {n: "null" if n in inputs else "write" for n in symbol.list_arguments()}
    executor = group.simple_bind(mx.cpu(), grad_req=grad_req, data=batch_data.shape,
                                 softmax_label=batch_label.shape)
    params = {n: a for n, a in executor.arg_dict.items() if n not in inputs and n not in probes}
    _fill(params, arg_params, "arg")
    _fill(executor.aux_dict, aux_params, "aux")
    for name in probes:
        executor.arg_dict[name][:] = 0
    executor.arg_dict["data"][:] = batch_data
    executor.arg_dict["softmax_label"][:] = batch_label
    outputs = executor.forward(is_train=True)
    # SoftmaxOutput ignores its head gradient; BlockGrad passes none back.
    executor.backward([mx.nd.zeros_like(o) for o in outputs])
    norm = lambda a: float(mx.nd.norm(a).asscalar())  # noqa: E731
    return {"units": units,
            "grad_norm": [norm(executor.grad_dict[p]) for p in probes],
            "signal_norm": [norm(o) for o in outputs[1:]],
            "loss": cross_entropy(outputs[0].asnumpy(), batch_label)}


def cross_entropy(probabilities, labels):
    """Mean -ln p(label) over a batch of softmax outputs (N, classes)."""
    picked = probabilities[np.arange(len(labels)), labels.astype(np.int64)]
    return float(-np.log(np.maximum(picked, 1e-30)).mean())


def log_slope(values):
    """Least-squares slope of ln(values) against the unit index: ln of the mean factor
    by which the value grows from one unit to the next."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2 or (values <= 0).any():
        raise ValueError("need at least two positive values")
    return float(np.polyfit(np.arange(len(values)), np.log(values), 1)[0])


def summary(result):
    """One line: the mean factor per unit by which the norms grow toward the input, and
    the batch's loss."""
    grad, signal = log_slope(result["grad_norm"]), log_slope(result["signal_norm"])
    return (f"per unit toward the input, d loss/d x_l x{np.exp(-grad):.3f}, "
            f"x_l x{np.exp(-signal):.3f} (ln slopes vs l: {grad:+.3f}, {signal:+.3f}); "
            f"loss {result['loss']:.3f}")


def plot_gradient_flow(results, out_prefix, title=None):
    """Plot ``results`` (label -> :func:`gradient_flow` result) on log scales against the
    unit index: d loss / d x_l on the left, x_l on the right. Writes
    ``out_prefix.png`` and ``out_prefix.pdf``; returns their paths."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from plots.curves import save_figure
    if not results:
        raise ValueError("no results to plot")
    fig = Figure(figsize=(8, 3.4))
    FigureCanvasAgg(fig)
    grad_ax, signal_ax = fig.subplots(1, 2)
    for i, (label, result) in enumerate(results.items()):
        index = np.arange(1, len(result["units"]) + 1)
        grad_ax.semilogy(index, result["grad_norm"], ".-", color=f"C{i % 10}", label=label)
        signal_ax.semilogy(index, result["signal_norm"], ".-", color=f"C{i % 10}")
    grad_ax.set_ylabel(r"$\|\partial E / \partial x_l\|$")
    signal_ax.set_ylabel(r"$\|x_l\|$")
    for ax in (grad_ax, signal_ax):
        ax.set_xlabel("residual unit l")
        ax.grid(alpha=0.3, which="both")
    grad_ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    paths = [f"{out_prefix}.png", f"{out_prefix}.pdf"]
    for path in paths:
        save_figure(fig, path)
    return paths


def cifar_batch(data_dir, batch_size):
    """The first ``batch_size`` images of CIFAR-10's ``data_batch_1`` under ``data_dir``
    (as the trainers' ``--data-dir``), standardised per channel, and their labels."""
    from data.cifar import cifar_folder, load_batch
    try:
        folder = cifar_folder(data_dir, "cifar10")
    except FileNotFoundError:  # its hint names the trainers' --download, which we lack
        raise FileNotFoundError(f"no CIFAR-10 data in {data_dir}: expected data_batch_1 "
                                "there or in its cifar-10-batches-py folder") from None
    images, labels = load_batch(os.path.join(folder, "data_batch_1"))
    if len(labels) < batch_size:
        raise ValueError(f"{data_dir}: data_batch_1 holds {len(labels)} images, fewer than "
                         f"--batch-size {batch_size}")
    return first_images(images, labels, batch_size)


def first_images(images, labels, batch_size, stats_of=None):
    """The first ``batch_size`` ``images`` standardised per channel with the mean and std
    of ``stats_of`` (default: those images themselves), and their labels as float32."""
    from data.cifar import cifar_mean_std
    from data.normalization import normalize
    mean, std = cifar_mean_std(images[:batch_size] if stats_of is None else stats_of)
    return normalize(images[:batch_size], mean, std), labels[:batch_size].astype(np.float32)


def random_batch(batch_size, num_classes, seed):
    """Standard-normal 32x32 images and uniform labels from a fixed seed."""
    rng = np.random.RandomState(seed)
    return (rng.standard_normal((batch_size, 3, 32, 32)).astype(np.float32),
            rng.randint(0, num_classes, batch_size).astype(np.float32))


def parse_variants(text):
    """``unit:shortcut[:name=value...],...`` -> [(unit, shortcut, {name: value}), ...],
    e.g. ``full_preact:constant_scaling:scale=0.8``."""
    variants = []
    for item in text.split(","):
        fields = item.strip().split(":")
        if len(fields) < 2 or not fields[0] or not fields[1]:
            raise UsageError(f"variant {item!r} is not UNIT:SHORTCUT[:NAME=VALUE...]")
        try:
            params = parse_shortcut_params(fields[2:], "--variants")
        except UsageError as err:
            raise UsageError(f"variant {item!r}: {err}") from None
        variants.append((fields[0], fields[1], params))
    return variants


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m experiments.probe",
                                description="Plot d loss / d x_l and x_l against the unit l.")
    p.add_argument("--num-layers", type=int, default=56, help="CIFAR depth (default 56)")
    p.add_argument("--variants", default="full_preact:identity,original:identity,"
                   "full_preact:constant_scaling", help="comma-separated UNIT:SHORTCUT")
    p.add_argument("--widths", help="stage widths, e.g. 16,32,64 (default: the paper's)")
    p.add_argument("--projection", default="B", choices=list(symbols.PROJECTIONS),
                   help="shortcut where the shape changes (default B)")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0, help="initializer and random-data seed")
    p.add_argument("--data-dir", help="CIFAR-10 python batches (default: random data)")
    p.add_argument("--checkpoint", metavar="PARAMS",
                   help="also probe each variant with these trained parameters")
    p.add_argument("--out", required=True, metavar="PREFIX", help="write PREFIX.png/.pdf")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.batch_size < 1:
        raise UsageError("--batch-size must be positive")
    widths = tuple(parse_ints(args.widths, "--widths", minimum=1)) or None
    data, label = (cifar_batch(args.data_dir, args.batch_size) if args.data_dir
                   else random_batch(args.batch_size, args.num_classes, args.seed))
    if args.checkpoint and not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f"checkpoint not found: {args.checkpoint}")
    checkpoint = read_params(args.checkpoint) if args.checkpoint else None
    results = {}
    for unit, shortcut, params in parse_variants(args.variants):
        symbol = symbols.get_symbol(args.num_classes, args.num_layers, (3, 32, 32), unit=unit,
                                    shortcut=shortcut, widths=widths, probe=True,
                                    projection=args.projection, **params)
        name = " ".join([unit, shortcut] + [f"{k}={v}" for k, v in params.items()])
        results[name] = gradient_flow(symbol, data, label, seed=args.seed)
        if checkpoint:
            results[f"{name} (checkpoint)"] = gradient_flow(symbol, data, label, *checkpoint)
    for name, result in results.items():
        print(f"{name}: {summary(result)}")
    images = "CIFAR-10 images" if args.data_dir else "random images"
    title = f"ResNet-{args.num_layers}, a batch of {args.batch_size} {images}" + \
        ("" if checkpoint else ", at initialisation")
    for path in plot_gradient_flow(results, args.out, title=title):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    run_main(main, prog="python -m experiments.probe")
