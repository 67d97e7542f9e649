"""Evaluation of a trained network: mean loss and accuracies over a data set, or over
every worker's part of it."""
from common.mx import mx
from data.iterator import start_epoch
from training.devices import sum_over_workers
from training.monitor import RunningStats


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
    sum_over_workers(stats, kv)
    return stats.result("val_")
