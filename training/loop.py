"""Training of a symbol with ``mx.mod.Module``: the epoch loop, per-epoch records and
checkpoints, exact resume.

The loop is explicit (``forward_backward`` + ``update``) rather than ``Module.fit`` so
that the learning rate, the NaN check, the progress display and resume are under our
control. Resume is exact because everything random in an epoch (data order,
augmentation, dropout) is seeded from (seed, epoch) when the epoch starts, and a
checkpoint holds the parameters, the BatchNorm statistics and the optimizer states.
"""
import dataclasses
import logging
import math
import os
import platform
import time
from dataclasses import dataclass

import numpy as np

from common.cli import UsageError
from common.cpu import physical_cores, this_cpu
from common.files import lock_dir
from common.mx import mx
from data.iterator import count_batches, start_epoch
from training import checkpoint as ckpt
from training import rundir
from training.speed import benchmark
from training.devices import create_kvstore, get_contexts, kind_of, sync_params
from training.evaluation import eval_module, evaluate
from training.module import build_symbol, create_module
from training.monitor import Progress, RunningStats
from training.recipe import default_warmup
from training.schedule import StepSchedule, plan


class DivergedError(ValueError):
    """The loss (or the parameters) stopped being finite."""


def setup_logging():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S")


def seed_epoch(seed, epoch):
    """Seed MXNet's and NumPy's generators from (seed, epoch), on every device."""
    state = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0] % (2 ** 31))
    mx.random.seed(state)
    np.random.seed(state)


def train_epoch(mod, data_iter, stats, progress, disp_batches, where, max_batches):
    """One pass over ``data_iter``, stopped after ``max_batches``; returns the number of
    batches. Checks the loss every ``disp_batches`` batches and raises DivergedError when
    it is not finite."""
    batches = 0
    for batches, batch in enumerate(data_iter, start=1):
        mod.forward_backward(batch)
        mod.update()
        stats.update(batch.label[0], mod.get_outputs()[0])
        progress.step(batches - 1, stats)
        if batches % disp_batches == 0 and not stats.finite():
            raise DivergedError(f"training loss is {stats.loss} at {where(batches)}")
        if batches == max_batches:
            break
    if not stats.finite():
        raise DivergedError(f"training loss is {stats.loss} at {where(batches)}")
    return batches


def check_finite(arrays, what):
    for name, value in arrays.items():
        if not np.isfinite(value.asnumpy()).all():
            raise DivergedError(f"{what} {name} is not finite")


def worker_dir(output_dir, rank):
    """Worker 0 writes into the run directory, worker r into ``worker<r>`` inside it."""
    return output_dir if rank == 0 else os.path.join(output_dir, f"worker{rank}")


def resume_point(run_dir, symbol, resume=False, load_epoch=None):
    """The manifest to continue from (None for a fresh run): the newest checkpoint of
    ``run_dir`` with ``resume``, that of epoch ``load_epoch`` where one is given, its files
    read back first (a damaged newest checkpoint is skipped with a warning); refuses a
    changed network and a run directory that already holds checkpoints when neither is
    given."""
    wanted = resume or load_epoch is not None
    manifest = ckpt.find_intact_checkpoint(run_dir, load_epoch) if wanted else None
    # (complete, unusable): a run directory with either is not overwritten
    if not wanted and any(rundir.scan_checkpoints(run_dir)):
        raise UsageError(f"{run_dir} already holds checkpoints: pass --resume to continue "
                         "that run, or choose another --output-dir")
    if manifest is not None and manifest["symbol_sha256"] != ckpt.symbol_hash(symbol):
        raise UsageError(f"the checkpoint of epoch {manifest['epoch']} in {run_dir} was "
                         "trained with a different network; use the same model flags or "
                         "another --output-dir")
    if wanted and manifest is None:
        logging.info("no complete checkpoint in %s: starting from scratch", run_dir)
    return manifest


def run_record(config, symbol, contexts, num_batches, epochs, iterations, schedule, rank,
               num_workers, meta):
    """What config.json records (a ``training.rundir.RunRecord``): the flags of ``config``
    (a ``training.args.TrainConfig``) and what they resolved to, the class names and
    preprocessing of ``meta`` (``{"classes": [...], "preprocess": Preprocess or its dict}``,
    each optional), the CPU and the versions."""
    meta = meta or {}
    unknown = set(meta) - {"classes", "preprocess"}
    if unknown:
        raise ValueError(f"the data's record has no place for {', '.join(sorted(unknown))}")
    preprocess = meta.get("preprocess")
    if isinstance(preprocess, dict):
        preprocess = rundir.Preprocess.from_json(preprocess)
    classes = meta.get("classes")
    return rundir.RunRecord(
        dataclasses.asdict(config), evaluated=config.evaluated, preprocess=preprocess,
        classes=None if classes is None else tuple(classes),
        contexts=tuple(str(c) for c in contexts), rank=rank, num_workers=num_workers,
        batches_per_epoch=num_batches, planned_epochs=epochs, planned_iterations=iterations,
        lr_steps_iterations=tuple(schedule.steps), warmup_iterations=schedule.warmup_iters,
        symbol_sha256=ckpt.symbol_hash(symbol), cpu=this_cpu().label(physical_cores()),
        mxnet_version=mx.__version__, python_version=platform.python_version())


@dataclass
class Run:
    """What every epoch of a run needs."""
    config: object  # training.args.TrainConfig
    symbol: object  # as built: checkpoints and evaluation use it, mod may run it fused
    mod: object
    train: object
    val: object
    schedule: StepSchedule
    contexts: list
    kv: object
    run_dir: str
    epochs: int
    iterations: int  # the last epoch ends at this iteration


def fit(config, symbol, contexts, train, val=None, kv="local", rank=0, num_workers=1,
        meta=None, curves=None):
    """Train ``symbol`` on ``contexts`` over ``train`` as ``config`` (a
    ``training.args.TrainConfig``) says; returns the list of epoch records.

    Every epoch appends a record to ``metrics.jsonl`` and writes a checkpoint in the run
    directory; ``meta`` (class names, preprocessing) goes into config.json (``run_record``).
    After the last epoch, worker 0 calls ``curves(run_dir)`` where it is given and
    --no-plots is not (the training scripts draw the training curves with it).
    """
    run_dir = worker_dir(config.output_dir, rank)
    os.makedirs(run_dir, exist_ok=True)
    manifest = resume_point(run_dir, symbol, config.resume, config.load_epoch)
    num_batches = count_batches(train)
    epochs, steps, iterations = plan(num_batches, config.num_epochs, config.num_iters,
                                     config.lr_step_epochs, config.lr_step_iters)
    warmup = config.warmup_iters
    if warmup is None:
        warmup = default_warmup(config.unit, config.num_layers, config.image_shape)
    kind = kind_of(kv)
    schedule = StepSchedule(config.lr, steps, config.lr_factor, warmup, config.warmup_lr,
                            updates_per_iter=num_workers if kind == "dist_async" else 1)
    arg = aux = None
    first, iteration = 0, 0
    if manifest is not None:
        arg, aux = ckpt.load_params(run_dir, manifest)
        first, iteration = manifest["epoch"], manifest["iteration"]
    mod = create_module(config, symbol, train, contexts, kv, schedule, arg, aux, iteration)
    if manifest is not None and "states" in manifest["files"]:
        mod.load_optimizer_states(os.path.join(run_dir, manifest["files"]["states"]))
    records = rundir.truncate_metrics(run_dir, first) if manifest else []
    if manifest is None:
        rundir.write_metrics(run_dir, [])
    recorded = run_record(config, symbol, contexts, num_batches, epochs, iterations, schedule,
                          rank, num_workers, meta)
    if manifest is not None:
        rundir.warn_config_changes(run_dir, recorded)
    rundir.write_config(run_dir, recorded)
    if first:
        logging.info("resuming %s after epoch %d (iteration %d)", run_dir, first, iteration)
    run = Run(config, symbol, mod, train, val, schedule, contexts, kv, run_dir, epochs,
              iterations)
    for epoch in range(first, epochs):
        records.append(run_epoch(run, epoch, iteration))
        iteration = records[-1]["iteration"]
    if config.export:
        from training.export import export_model
        logging.info("exported the network for inference to %s", export_model(run_dir))
    if curves is not None and rank == 0 and not config.no_plots and records:
        curves(run_dir)
    return records


def train(config, make_data, curves=None):
    """What a training script does with its checked flags ``config`` (a
    ``training.args.TrainConfig``): build the network and the devices' contexts (once, and
    before any data is read), then benchmark, or train on
    ``make_data(config, num_parts, part_index) -> (train_iter, val_iter, meta)``, holding
    the lock of the run directory (a second process training into it stops at once).
    ``curves`` goes to ``fit``."""
    setup_logging()
    symbol = build_symbol(config)
    contexts = get_contexts(config.gpus, config.cpus)
    if config.benchmark:
        return benchmark(config, symbol, contexts)
    kv, rank, num_workers = create_kvstore(config.kv_store)
    with lock_dir(worker_dir(config.output_dir, rank)):  # before anything is read or written
        train_iter, val_iter, meta = make_data(config, num_workers, rank)
        return fit(config, symbol, contexts, train_iter, val_iter, kv, rank, num_workers,
                   meta, curves)


def run_epoch(run, epoch, iteration):
    """Train, evaluate, record and checkpoint epoch ``epoch`` (0-based) that starts after
    ``iteration`` updates; returns its record."""
    config = run.config
    seed_epoch(config.seed, epoch)
    start_epoch(run.train, epoch)
    stats = RunningStats(config.top_k)
    max_batches = min(count_batches(run.train), run.iterations - iteration)
    progress = Progress(epoch + 1, max_batches, config.disp_batches)

    def where(batch):
        last = rundir.find_checkpoint(run.run_dir)
        kept = f"epoch {last['epoch']}" if last else "none"
        return (f"epoch {epoch + 1}, batch {batch} (iteration {iteration + batch}): training "
                f"stopped; the last good checkpoint in {run.run_dir} is {kept}")

    tic = time.time()
    try:
        batches = train_epoch(run.mod, run.train, stats, progress, config.disp_batches,
                              where, max_batches)
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
        record.update(evaluate(tester, run.val, config.top_k, run.kv))
        del tester
        if not math.isfinite(record["val_loss"]):
            raise DivergedError(f"validation loss is {record['val_loss']} after {where(batches)}")
    record["epoch_seconds"] = time.time() - tic
    record["samples_per_sec"] = stats.samples / max(train_seconds, 1e-9)
    log_epoch(record, run.epochs)
    rundir.append_metrics(run.run_dir, record)
    # with dist_async the optimizer states live on the servers, out of reach
    save_states = None if kind_of(run.kv) == "dist_async" else run.mod.save_optimizer_states
    ckpt.save_checkpoint(run.run_dir, epoch + 1, iteration, run.symbol, arg, aux,
                         save_states,
                         extra={"seed": config.seed, "metrics": record,
                                "rng": "MXNet and NumPy reseeded from (seed, epoch) "
                                       "at the start of every epoch"})
    rundir.prune_checkpoints(run.run_dir, config.keep_checkpoints)
    return record


def log_epoch(record, epochs):
    val = ""
    if "val_loss" in record:
        val = f" | val loss {record['val_loss']:.4f} acc {record['val_acc']:.4f}"
    logging.info("epoch %d/%d: train loss %.4f acc %.4f%s | lr %g | %.1f s, %.1f images/s",
                 record["epoch"], epochs, record["train_loss"], record["train_acc"], val,
                 record["lr"], record["epoch_seconds"], record["samples_per_sec"])
