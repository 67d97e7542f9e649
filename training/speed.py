"""--benchmark: training speed on synthetic data, with peak memory."""
import resource
import time

import numpy as np

from common.cpu import physical_cores, this_cpu
from common.mx import mx
from training.devices import create_kvstore
from training.module import create_module
from training.monitor import RunningStats
from training.schedule import StepSchedule


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


def synthetic_module(config, symbol, data, contexts):
    """A Module of ``symbol`` bound to ``data`` on ``contexts``, initialised, with the
    optimizer of ``config`` (a ``training.args.TrainConfig``) at its constant learning
    rate, over ``config``'s kvstore: what ``benchmark`` trains."""
    kv, _, _ = create_kvstore(config.kv_store)
    return create_module(config, symbol, data, contexts, kv, StepSchedule(config.lr))


def benchmark(config, symbol, contexts, warmup_batches=2):
    """Train ``symbol`` on ``contexts`` with synthetic data of the batch size, image shape
    and number of batches of ``config`` (a ``training.args.TrainConfig``); returns and
    prints images/s and peak memory."""
    shape = (config.batch_size,) + config.image_shape
    data = SyntheticIter(config.num_classes, shape, config.benchmark_batches + warmup_batches)
    mod = synthetic_module(config, symbol, data, contexts)
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
    result = {"images_per_sec": config.benchmark_batches * config.batch_size / seconds,
              "batch_size": config.batch_size, "batches": config.benchmark_batches,
              "dtype": config.dtype, "contexts": [str(c) for c in contexts],
              "cpu": this_cpu().label(physical_cores()), "mirror": bool(config.mirror),
              **peak_memory(contexts)}
    memory = ", ".join(f"{k} {v if isinstance(v, list) else round(v)}"
                       for k, v in result.items() if "mib" in k)
    print(f"ResNet-{config.num_layers} {config.unit}, batch {config.batch_size}, "
          f"{config.dtype} on {','.join(result['contexts'])}"
          f"{' (mirror)' if config.mirror else ''} [{result['cpu']}]: "
          f"{result['images_per_sec']:.1f} images/s; {memory}", flush=True)
    return result
