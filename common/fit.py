"""Training of a symbol with ``mx.mod.Module``: contexts, kvstore, the epoch loop,
evaluation, per-epoch records and checkpoints, exact resume, synthetic benchmark.

The loop is explicit (``forward_backward`` + ``update``) rather than ``Module.fit`` so
that the learning rate, the NaN check, the progress display and resume are under our
control. Resume is exact because everything random in an epoch (data order,
augmentation, dropout) is seeded from (seed, epoch) when the epoch starts, and a
checkpoint holds the parameters, the BatchNorm statistics and the optimizer states.
"""
import contextlib
import logging
import math
import os
import platform
import resource
import time
from dataclasses import dataclass

import numpy as np

from common import checkpoint as ckpt
from common.cli import UsageError
from common.cpu import physical_cores, this_cpu
from common.files import lock_dir, write_json
from common.monitor import Progress, RunningStats
from common.mx import check_gpus, mx
from common.schedule import StepSchedule, default_warmup, plan
from symbols import get_symbol, parse_image_shape
from symbols.fusion import training_symbol
from symbols.precision import bfloat16_graph


VAL_TOTALS = "val_totals"  # kvstore key that sums evaluation results over workers


class DivergedError(ValueError):
    """The loss (or the parameters) stopped being finite."""


def setup_logging():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S")


def get_contexts(args):
    """Devices of the run: --gpus 0,1 -> [gpu(0), gpu(1)], --cpus N -> N CPU contexts."""
    if args.gpus:
        try:
            ids = [int(i) for i in str(args.gpus).split(",")]
        except ValueError:
            raise UsageError(f"--gpus expects comma-separated GPU ids, got {args.gpus!r}") from None
        have = mx.context.num_gpus()
        if any(i < 0 or i >= have for i in ids):
            raise UsageError(f"--gpus {args.gpus}: this MXNet build sees {have} GPU(s) "
                             "(install mxnet-cu112 for CUDA GPUs)")
        contexts = [mx.gpu(i) for i in ids]
        check_gpus(contexts)
        return contexts
    return [mx.cpu(i) for i in range(args.cpus or 1)]


def kvstore_type(args):
    """The --kv-store value, defaulting to 'device' on GPUs and 'local' on CPUs."""
    return args.kv_store or ("device" if args.gpus else "local")


def create_kvstore(args):
    """(kvstore, rank, num_workers): a KVStore object for distributed runs (it must
    exist before the data is split among workers), else the type name for Module."""
    kind = kvstore_type(args)
    if "dist" not in kind:
        return kind, 0, 1
    if "DMLC_ROLE" not in os.environ:
        raise UsageError(f"--kv-store {kind} needs the distributed launcher, e.g. "
                         "python3 -m common.launch -n 2 --launcher local python3 "
                         "train_cifar.py ...")
    kv = mx.kv.create(kind)
    return kv, kv.rank, kv.num_workers


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


def count_batches(data_iter):
    """Batches per epoch of a CifarIter, ResizeIter or NDArrayIter."""
    if hasattr(data_iter, "__len__"):
        return len(data_iter)
    if isinstance(data_iter, mx.io.ResizeIter):
        return data_iter.size
    if isinstance(data_iter, mx.io.NDArrayIter):
        n, b = data_iter.num_data, data_iter.batch_size
        return n // b if data_iter.last_batch_handle == "discard" else -(-n // b)
    raise ValueError(f"cannot tell the batches per epoch of a {type(data_iter).__name__}; "
                     "wrap it in mx.io.ResizeIter")


def seed_epoch(seed, epoch):
    """Seed MXNet's and NumPy's generators from (seed, epoch), on every device."""
    state = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0] % (2 ** 31))
    mx.random.seed(state)
    np.random.seed(state)


def start_epoch(data_iter, epoch):
    """Position ``data_iter`` at the beginning of ``epoch`` (exactly, where it can)."""
    if hasattr(data_iter, "set_epoch"):
        data_iter.set_epoch(epoch)
    else:
        data_iter.reset()


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
    update. With 'dist_sync' the parameters are then pulled from the kvstore (all
    workers start equal) and keys for averaging BatchNorm statistics and for adding up
    evaluation results are made.
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
    if is_dist_sync(kv):
        inputs = set(mod.data_names) | set(mod.label_names)
        arg, aux = mod.get_params()
        for name in symbol.list_arguments():  # Module's kvstore keys: the parameter names
            if name not in inputs:
                kv.pull(name, out=arg[name])
        mod.set_params(arg, aux)
        for name, value in aux.items():
            kv.init(f"aux:{name}", value)
        kv.init(VAL_TOTALS, mx.nd.zeros(len(RunningStats().totals())))
    return mod


def train_epoch(mod, data_iter, stats, progress, disp_batches, where):
    """One pass over ``data_iter``; returns the number of batches. Checks the loss every
    ``disp_batches`` batches and raises DivergedError when it is not finite."""
    batches = 0
    for batches, batch in enumerate(data_iter, start=1):
        mod.forward_backward(batch)
        mod.update()
        stats.update(batch.label[0], mod.get_outputs()[0])
        progress.step(batches - 1, stats)
        if batches % disp_batches == 0 and not stats.finite():
            raise DivergedError(f"training loss is {stats.loss} at {where(batches)}")
    if not stats.finite():
        raise DivergedError(f"training loss is {stats.loss} at {where(batches)}")
    return batches


def eval_module(symbol, data_iter, contexts):
    """A Module bound for inference only, made afresh for every evaluation.

    With MKL-DNN, evaluating with the training Module reorders its weights in place and
    the next epoch differs slightly from that of a run resumed from the checkpoint; and
    an inference Module caches weights folded with BatchNorm, so it must not be reused
    after new parameters are set.
    """
    mod = mx.mod.Module(symbol, data_names=[d.name for d in data_iter.provide_data],
                        label_names=[d.name for d in data_iter.provide_label],
                        context=contexts)
    mod.bind(data_shapes=data_iter.provide_data, label_shapes=data_iter.provide_label,
             for_training=False)
    return mod


def evaluate(mod, data_iter, top_k=0, kv=None):
    """Mean loss and accuracies of ``mod`` over ``data_iter`` (padding left out); with a
    synchronous distributed ``kv``, over the parts of all workers."""
    stats = RunningStats(top_k)
    start_epoch(data_iter, 0)
    for batch in data_iter:
        mod.forward(batch, is_train=False)
        out = mod.get_outputs()[0]
        stats.update(batch.label[0], out, out.shape[0] - (batch.pad or 0))
    if is_dist_sync(kv):
        totals = mx.nd.array(stats.totals())
        kv.push(VAL_TOTALS, totals)  # the servers add up the workers' totals
        kv.pull(VAL_TOTALS, out=totals)
        stats.set_totals(totals.asnumpy())
    return stats.result("val_")


def kind_of(kv):
    """The kvstore type of a KVStore object or type name."""
    return kv if isinstance(kv, str) else getattr(kv, "type", "")


def is_dist_sync(kv):
    """Whether ``kv`` is a KVStore of synchronous distributed training."""
    kind = kind_of(kv)
    return "dist" in kind and "async" not in kind


def sync_params(mod, kv, num_devices):
    """(arg, aux) params on the CPU, the same on every device and worker: BatchNorm
    statistics (each device and worker has its own) are averaged and copied back."""
    # BatchNorm updates its moving statistics in backward without telling MXNet's
    # engine that it writes them: without this wait they may be read before the update.
    mx.nd.waitall()
    arg, aux = mod.get_params()
    if is_dist_sync(kv):
        for name, value in aux.items():  # the servers sum what the workers push
            kv.push(f"aux:{name}", value)
            kv.pull(f"aux:{name}", out=value)
            value /= kv.num_workers
    if num_devices > 1 or is_dist_sync(kv):
        mod.set_params(arg, aux)
    return arg, aux


def check_finite(arrays, what):
    for name, value in arrays.items():
        if not np.isfinite(value.asnumpy()).all():
            raise DivergedError(f"{what} {name} is not finite")


def worker_dir(output_dir, rank):
    """Worker 0 writes into the run directory, worker r into ``worker<r>`` inside it."""
    return output_dir if rank == 0 else os.path.join(output_dir, f"worker{rank}")


def resume_point(args, run_dir, symbol):
    """The manifest to continue from (None for a fresh run), its files read back first (a
    damaged newest checkpoint is skipped with a warning); refuses a changed network and a
    run directory that already holds checkpoints when --resume is not given."""
    wanted = args.resume or args.load_epoch is not None
    manifest = ckpt.find_intact_checkpoint(run_dir, args.load_epoch) if wanted else None
    if not wanted and any(ckpt.scan_checkpoints(run_dir)):
        raise UsageError(f"{run_dir} already holds checkpoints: pass --resume to continue "
                         "that run, or choose another --output-dir")
    if manifest is not None and manifest["symbol_sha256"] != ckpt.symbol_hash(symbol):
        raise UsageError(f"the checkpoint of epoch {manifest['epoch']} in {run_dir} was "
                         "trained with a different network; use the same model flags or "
                         "another --output-dir")
    if wanted and manifest is None:
        logging.info("no complete checkpoint in %s: starting from scratch", run_dir)
    return manifest


def run_config(args, symbol, contexts, num_batches, epochs, schedule, rank, num_workers,
               meta):
    """What config.json records: the flags, then what they resolved to."""
    config = {k: v for k, v in vars(args).items() if k != "shortcut_kwargs"}
    config.update(meta or {})
    config.update({
        "kv_store": kvstore_type(args), "contexts": [str(c) for c in contexts],
        "rank": rank, "num_workers": num_workers, "batches_per_epoch": num_batches,
        "planned_epochs": epochs, "planned_iterations": epochs * num_batches,
        "lr_steps_iterations": schedule.steps, "warmup_iterations": schedule.warmup_iters,
        "symbol_sha256": ckpt.symbol_hash(symbol), "mxnet_version": mx.__version__,
        "cpu": this_cpu().label(physical_cores()),
        "python_version": platform.python_version()})
    return config


@dataclass
class Run:
    """What every epoch of a run needs."""
    args: object
    symbol: object  # as built: checkpoints and evaluation use it, mod may run it fused
    mod: object
    train: object
    val: object
    schedule: StepSchedule
    contexts: list
    kv: object
    run_dir: str
    epochs: int


def fit(args, symbol, train, val=None, kv="local", rank=0, num_workers=1, meta=None):
    """Train ``symbol`` on ``train`` as the flags say; returns the list of epoch records.

    Every epoch appends a record to ``metrics.jsonl`` and writes a checkpoint in the run
    directory; ``meta`` (data set, preprocessing, class names) goes into config.json.
    """
    contexts = get_contexts(args)
    run_dir = worker_dir(args.output_dir, rank)
    os.makedirs(run_dir, exist_ok=True)
    manifest = resume_point(args, run_dir, symbol)
    num_batches = count_batches(train)
    epochs, steps = plan(num_batches, args.num_epochs, args.num_iters, args.lr_step_epochs,
                         args.lr_step_iters)
    warmup = args.warmup_iters
    if warmup is None:
        warmup = default_warmup(args.unit, args.num_layers,
                                parse_image_shape(args.image_shape))
    kind = kind_of(kv)
    schedule = StepSchedule(args.lr, steps, args.lr_factor, warmup, args.warmup_lr,
                            updates_per_iter=num_workers if kind == "dist_async" else 1)
    arg = aux = None
    first, iteration = 0, 0
    if manifest is not None:
        arg, aux = ckpt.load_params(run_dir, manifest)
        first, iteration = manifest["epoch"], manifest["iteration"]
    mod = create_module(args, symbol, train, contexts, kv, schedule, arg, aux, iteration)
    if manifest is not None and "states" in manifest["files"]:
        mod.load_optimizer_states(os.path.join(run_dir, manifest["files"]["states"]))
    records = ckpt.truncate_metrics(run_dir, first) if manifest else []
    if manifest is None:
        ckpt.write_metrics(run_dir, [])
    config = run_config(args, symbol, contexts, num_batches, epochs, schedule, rank,
                        num_workers, meta)
    if manifest is not None:
        ckpt.warn_config_changes(run_dir, config)
    write_json(os.path.join(run_dir, ckpt.CONFIG), config)
    if first:
        logging.info("resuming %s after epoch %d (iteration %d)", run_dir, first, iteration)
    run = Run(args, symbol, mod, train, val, schedule, contexts, kv, run_dir, epochs)
    for epoch in range(first, epochs):
        records.append(run_epoch(run, epoch, iteration))
        iteration = records[-1]["iteration"]
    if args.export:
        from common.predict import export_model
        logging.info("exported the network for inference to %s", export_model(run_dir))
    if rank == 0 and not args.no_plots and records:
        draw_curves(run_dir)
    return records


def train(args, make_data):
    """What a training script does with its parsed flags: build the network, check the
    devices (before any data is read), then benchmark, or train on
    ``make_data(args, num_parts, part_index) -> (train_iter, val_iter, meta)``, holding
    the lock of the run directory (a second process training into it stops at once)."""
    setup_logging()
    symbol = build_symbol(args)
    get_contexts(args)
    if args.benchmark:
        return benchmark(args, symbol)
    kv, rank, num_workers = create_kvstore(args)
    with lock_dir(worker_dir(args.output_dir, rank)):  # before anything is read or written
        train_iter, val_iter, meta = make_data(args, num_workers, rank)
        return fit(args, symbol, train_iter, val_iter, kv, rank, num_workers, meta)


def run_epoch(run, epoch, iteration):
    """Train, evaluate, record and checkpoint epoch ``epoch`` (0-based) that starts after
    ``iteration`` updates; returns its record."""
    args = run.args
    seed_epoch(args.seed, epoch)
    start_epoch(run.train, epoch)
    stats = RunningStats(args.top_k)
    progress = Progress(epoch + 1, count_batches(run.train), args.disp_batches)

    def where(batch):
        last = ckpt.find_checkpoint(run.run_dir)
        kept = f"epoch {last['epoch']}" if last else "none"
        return (f"epoch {epoch + 1}, batch {batch} (iteration {iteration + batch}): training "
                f"stopped; the last good checkpoint in {run.run_dir} is {kept}")

    tic = time.time()
    try:
        batches = train_epoch(run.mod, run.train, stats, progress, args.disp_batches, where)
    finally:
        progress.close()
    train_seconds = time.time() - tic
    iteration += batches
    arg, aux = sync_params(run.mod, run.kv, len(run.contexts))
    try:
        check_finite(arg, "parameter")
        check_finite(aux, "statistic")
    except DivergedError as err:
        raise DivergedError(f"{err} after {where(batches)}") from None
    record = {"epoch": epoch + 1, "iteration": iteration,
              "lr": run.schedule.lr(iteration - 1)}
    record.update(stats.result("train_"))
    if run.val is not None:
        tester = eval_module(run.symbol, run.val, run.contexts)
        tester.set_params(arg, aux)
        record.update(evaluate(tester, run.val, args.top_k, run.kv))
        del tester
        if not math.isfinite(record["val_loss"]):
            raise DivergedError(f"validation loss is {record['val_loss']} after {where(batches)}")
    record["epoch_seconds"] = time.time() - tic
    record["samples_per_sec"] = stats.samples / max(train_seconds, 1e-9)
    log_epoch(record, run.epochs)
    ckpt.append_metrics(run.run_dir, record)
    # with dist_async the optimizer states live on the servers, out of reach
    save_states = None if kind_of(run.kv) == "dist_async" else run.mod.save_optimizer_states
    ckpt.save_checkpoint(run.run_dir, epoch + 1, iteration, run.symbol, arg, aux,
                         save_states,
                         extra={"seed": args.seed, "metrics": record,
                                "rng": "MXNet and NumPy reseeded from (seed, epoch) "
                                       "at the start of every epoch"})
    ckpt.prune_checkpoints(run.run_dir, args.keep_checkpoints)
    return record


def log_epoch(record, epochs):
    val = ""
    if "val_loss" in record:
        val = f" | val loss {record['val_loss']:.4f} acc {record['val_acc']:.4f}"
    logging.info("epoch %d/%d: train loss %.4f acc %.4f%s | lr %g | %.1f s, %.1f images/s",
                 record["epoch"], epochs, record["train_loss"], record["train_acc"], val,
                 record["lr"], record["epoch_seconds"], record["samples_per_sec"])


def draw_curves(run_dir):
    """Training curves into ``run_dir/curves.png/.pdf``; a failure here only warns."""
    try:
        import plots
        plots.plot_runs([run_dir], os.path.join(run_dir, "curves"))
    except Exception as err:  # the run's results must survive a plotting problem
        logging.warning("curves not drawn: %s", err)


class SyntheticIter(mx.io.DataIter):
    """``num_batches`` batches of one random batch (for --benchmark)."""

    def __init__(self, num_classes, data_shape, num_batches, seed=0):
        super().__init__(data_shape[0])
        rng = np.random.default_rng(seed)
        self.batch = mx.io.DataBatch(
            [mx.nd.array(rng.standard_normal(data_shape, dtype=np.float32))],
            [mx.nd.array(rng.integers(0, num_classes, data_shape[0]), dtype=np.float32)],
            pad=0)
        self.provide_data = [mx.io.DataDesc("data", data_shape)]
        self.provide_label = [mx.io.DataDesc("softmax_label", (data_shape[0],))]
        self.num_batches, self.cursor = num_batches, 0

    def __len__(self):
        return self.num_batches

    def reset(self):
        self.cursor = 0

    def next(self):
        if self.cursor >= self.num_batches:
            raise StopIteration
        self.cursor += 1
        return self.batch


def peak_memory(contexts):
    """Peak memory in MiB: process RSS for CPUs, pool in use on each GPU."""
    if contexts[0].device_type == "gpu":
        used = [(t - f) / 2 ** 20 for f, t in (mx.context.gpu_memory_info(c.device_id)
                                              for c in contexts)]
        return {"gpu_memory_mib": used}
    return {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def benchmark(args, symbol, warmup_batches=2):
    """Train on synthetic data; returns and prints images/s and peak memory."""
    contexts = get_contexts(args)
    shape = (args.batch_size,) + parse_image_shape(args.image_shape)
    data = SyntheticIter(args.num_classes, shape, args.benchmark_batches + warmup_batches)
    kv, _, num_workers = create_kvstore(args)
    schedule = StepSchedule(args.lr)
    mod = create_module(args, symbol, data, contexts, kv, schedule)
    stats = RunningStats()
    for i, batch in enumerate(data):
        if i == warmup_batches:
            stats.flush()
            mx.nd.waitall()
            tic = time.time()
        mod.forward_backward(batch)
        mod.update()
        stats.update(batch.label[0], mod.get_outputs()[0])
    stats.flush()
    mx.nd.waitall()
    seconds = time.time() - tic
    result = {"images_per_sec": args.benchmark_batches * args.batch_size / seconds,
              "batch_size": args.batch_size, "batches": args.benchmark_batches,
              "dtype": args.dtype, "contexts": [str(c) for c in contexts],
              "cpu": this_cpu().label(physical_cores()), "mirror": bool(args.mirror),
              **peak_memory(contexts)}
    memory = ", ".join(f"{k} {v if isinstance(v, list) else round(v)}"
                       for k, v in result.items() if "mib" in k)
    print(f"ResNet-{args.num_layers} {args.unit}, batch {args.batch_size}, {args.dtype} on "
          f"{','.join(result['contexts'])}{' (mirror)' if args.mirror else ''} "
          f"[{result['cpu']}]: {result['images_per_sec']:.1f} images/s; {memory}", flush=True)
    return result
