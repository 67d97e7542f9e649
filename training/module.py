"""The network of a run's configuration (``training.args.TrainConfig``), and the Module
that trains it: bound, initialised (He et al. 2015), with its optimizer."""
import contextlib
import os

from common.cli import UsageError
from common.mx import mx
from symbols import get_symbol
from symbols.fusion import training_symbol
from symbols.precision import bfloat16_graph
from training.devices import init_dist_sync, kind_of


def build_symbol(config):
    """The network of the model flags of ``config`` (a ``training.args.TrainConfig``), with
    one-line errors for impossible ones. With --dtype bfloat16 it is the float32 network:
    checkpoints, evaluation and export use it, and ``create_module`` trains its bfloat16
    graph."""
    dtype = "float16" if config.dtype == "float16" else "float32"
    try:
        return get_symbol(config.num_classes, config.num_layers, config.image_shape,
                          unit=config.unit, shortcut=config.shortcut,
                          projection=config.projection, bottleneck=config.bottleneck,
                          dtype=dtype, **config.shortcut_param)
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


def create_module(config, symbol, data_iter, contexts, kv, schedule, arg_params=None,
                  aux_params=None, begin_num_update=0):
    """A bound Module with initialised parameters and optimizer: ``symbol`` over
    ``contexts``, shaped by ``data_iter``, updated with the optimizer, momentum, weight
    decay and ``schedule`` of ``config`` (a ``training.args.TrainConfig``), seeded with its
    seed.

    On CPUs the Module runs ``symbol`` rewritten (BatchNorm-ReLU pairs fused into one
    operator, global pooling as a mean: same parameters and results, see
    ``symbols.fusion``) unless --no-fusion;
    with --dtype bfloat16, that graph converted to bfloat16 (``symbols.precision``: the
    parameters and optimizer states stay float32).
    Updates run on the workers (not on the kvstore), so every worker holds its optimizer
    states and the per-iteration schedule; only 'dist_async' needs the servers to
    update. With 'dist_sync' the workers then start equal (``devices.init_dist_sync``).
    """
    settings = {"MXNET_UPDATE_ON_KVSTORE": "1" if kind_of(kv) == "dist_async" else "0"}
    if config.mirror:
        settings["MXNET_BACKWARD_DO_MIRROR"] = "1"
    net = training_symbol(symbol, contexts, fuse=not config.no_fusion)
    if config.dtype == "bfloat16":
        net = bfloat16_graph(net)
    mod = mx.mod.Module(net,
                        data_names=[d.name for d in data_iter.provide_data],
                        label_names=[d.name for d in data_iter.provide_label],
                        context=contexts)
    params = {"learning_rate": config.lr, "momentum": config.mom, "wd": config.wd,
              "lr_scheduler": schedule, "begin_num_update": begin_num_update}
    if config.dtype == "float16":
        params["multi_precision"] = True
    with environment(settings):  # MXNet reads them in bind and init_optimizer
        mod.bind(data_shapes=data_iter.provide_data, label_shapes=data_iter.provide_label)
        mx.random.seed(config.seed)
        mod.init_params(initializer(), arg_params=arg_params, aux_params=aux_params,
                        allow_missing=arg_params is None)
        mod.init_optimizer(kvstore=kv, optimizer=config.optimizer, optimizer_params=params)
    init_dist_sync(mod, kv, symbol)
    return mod
