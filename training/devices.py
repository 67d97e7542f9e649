"""Where a run trains: its devices and kvstore, and what synchronous distributed
training keeps equal over the workers (parameters, BatchNorm statistics, evaluation)."""
import os

from common.cli import UsageError
from common.mx import check_gpus, mx
from training.monitor import RunningStats

VAL_TOTALS = "val_totals"  # kvstore key that sums evaluation results over workers


def get_contexts(gpus=(), cpus=None):
    """Devices of the run: ``gpus`` (0, 1) -> [gpu(0), gpu(1)], else ``cpus`` (default 1)
    CPU contexts. GPUs this MXNet build cannot see or has no code for are refused in one
    line."""
    if gpus:
        have = mx.context.num_gpus()
        if any(i < 0 or i >= have for i in gpus):
            raise UsageError(f"--gpus {','.join(map(str, gpus))}: this MXNet build sees "
                             f"{have} GPU(s) (install mxnet-cu112 for CUDA GPUs)")
        contexts = [mx.gpu(i) for i in gpus]
        check_gpus(contexts)
        return contexts
    return [mx.cpu(i) for i in range(cpus or 1)]


def create_kvstore(kind):
    """(kvstore, rank, num_workers) of the kvstore type ``kind``: a KVStore object for
    distributed runs (it must exist before the data is split among workers), else the
    type name for Module."""
    if "dist" not in kind:
        return kind, 0, 1
    if "DMLC_ROLE" not in os.environ:
        raise UsageError(f"--kv-store {kind} needs the distributed launcher, e.g. "
                         "python3 -m training.distributed -n 2 --launcher local python3 "
                         "train_cifar.py ...")
    kv = mx.kv.create(kind)
    return kv, kv.rank, kv.num_workers


def kind_of(kv):
    """The kvstore type of a KVStore object or type name."""
    return kv if isinstance(kv, str) else getattr(kv, "type", "")


def is_dist_sync(kv):
    """Whether ``kv`` is a KVStore of synchronous distributed training."""
    kind = kind_of(kv)
    return "dist" in kind and "async" not in kind


def init_dist_sync(mod, kv, symbol):
    """With 'dist_sync', pull the parameters from the kvstore (all workers start equal)
    and make the keys for averaging BatchNorm statistics and adding up evaluation
    results; otherwise nothing."""
    if not is_dist_sync(kv):
        return
    inputs = set(mod.data_names) | set(mod.label_names)
    arg, aux = mod.get_params()
    for name in symbol.list_arguments():  # Module's kvstore keys: the parameter names
        if name not in inputs:
            kv.pull(name, out=arg[name])
    mod.set_params(arg, aux)
    for name, value in aux.items():
        kv.init(f"aux:{name}", value)
    kv.init(VAL_TOTALS, mx.nd.zeros(len(RunningStats().totals())))


def sum_over_workers(stats, kv):
    """With a synchronous distributed ``kv``, replace the totals of ``stats`` (a
    RunningStats) by their sum over all workers; otherwise leave them."""
    if is_dist_sync(kv):
        totals = mx.nd.array(stats.totals())
        kv.push(VAL_TOTALS, totals)  # the servers add up the workers' totals
        kv.pull(VAL_TOTALS, out=totals)
        stats.set_totals(totals.asnumpy())


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
