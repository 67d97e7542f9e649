"""The network of the model flags, and the Module that trains it: bound, initialised
(He et al. 2015), with its optimizer."""
import contextlib
import os

from common.cli import UsageError
from common.mx import mx
from symbols import get_symbol
from symbols.fusion import training_symbol
from symbols.precision import bfloat16_graph
from training.devices import init_dist_sync, kind_of


def build_symbol(args):
    """The network of the model flags (one-line errors for impossible ones). With
    --dtype bfloat16 it is the float32 network: checkpoints, evaluation and export use it,
    and ``create_module`` trains its bfloat16 graph."""
    bottleneck = None if args.bottleneck is None else args.bottleneck == "yes"
    dtype = "float16" if args.dtype == "float16" else "float32"
    try:
        return get_symbol(args.num_classes, args.num_layers, args.image_shape,
                          unit=args.unit, shortcut=args.shortcut, projection=args.projection,
                          bottleneck=bottleneck, dtype=dtype, **args.shortcut_kwargs)
    except (ValueError, TypeError) as err:
        raise UsageError(str(err)) from None


def initializer():
    """He et al. 2015 ("MSRA") initialisation: Gaussian, variance 2 / fan-in."""
    return mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2)


@contextlib.contextmanager
def environment(settings):
    """Set environment variables for the duration of the block, then restore them."""
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def create_module(args, symbol, data_iter, contexts, kv, schedule, arg_params=None,
                  aux_params=None, begin_num_update=0):
    """A bound Module with initialised parameters and optimizer.

    On CPUs the Module runs ``symbol`` with its BatchNorm-ReLU pairs fused into one
    operator (same parameters and results, see ``symbols.fusion``) unless --no-fusion;
    with --dtype bfloat16, that graph converted to bfloat16 (``symbols.precision``: the
    parameters and optimizer states stay float32).
    Updates run on the workers (not on the kvstore), so every worker holds its optimizer
    states and the per-iteration schedule; only 'dist_async' needs the servers to
    update. With 'dist_sync' the workers then start equal (``devices.init_dist_sync``).
    """
    settings = {"MXNET_UPDATE_ON_KVSTORE": "1" if kind_of(kv) == "dist_async" else "0"}
    if args.mirror:
        settings["MXNET_BACKWARD_DO_MIRROR"] = "1"
    net = training_symbol(symbol, contexts, fuse=not args.no_fusion)
    if args.dtype == "bfloat16":
        net = bfloat16_graph(net)
    mod = mx.mod.Module(net,
                        data_names=[d.name for d in data_iter.provide_data],
                        label_names=[d.name for d in data_iter.provide_label],
                        context=contexts)
    params = {"learning_rate": args.lr, "momentum": args.mom, "wd": args.wd,
              "lr_scheduler": schedule, "begin_num_update": begin_num_update}
    if args.dtype == "float16":
        params["multi_precision"] = True
    with environment(settings):  # MXNet reads them in bind and init_optimizer
        mod.bind(data_shapes=data_iter.provide_data, label_shapes=data_iter.provide_label)
        mx.random.seed(args.seed)
        mod.init_params(initializer(), arg_params=arg_params, aux_params=aux_params,
                        allow_missing=arg_params is None)
        mod.init_optimizer(kvstore=kv, optimizer=args.optimizer, optimizer_params=params)
    init_dist_sync(mod, kv, symbol)
    return mod
