"""How fast the CIFAR iterator is, alone and under ResNet-20 training.

Prints (1) the images/s the augmenting ``CifarIter`` delivers on its own, with and without
the background thread (median of ``--repeats`` runs), (2) ResNet-20 training images/s with
one synthetic batch in memory versus real augmented batches from the iterator, and the two
targets: iterator >= 10x training speed, real/synthetic >= 95 %. Data: the shared real
CIFAR-10 sample tiled to ``--images`` images (random pixels if the sample is absent).

Other jobs on a shared machine make step times swing several-fold within minutes, so the
training steps alternate between the two kinds of data in blocks of ``--block`` steps
(each kind first in turn), every step is timed on its own, and speeds come from the
median step time of ``--steps`` steps per kind. The script also prints what building the
batches would cost if it overlapped nothing: single-threaded iterator time per batch over
synthetic step time.

    python3 benchmarks/bench_data.py [--steps 30] [--block 3]
"""
import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import data  # noqa: E402
from common.cli import run_main  # noqa: E402
from common.cpu import physical_cores, this_cpu  # noqa: E402
from common.mx import mx  # noqa: E402
from training.module import initializer  # noqa: E402
from training.recipe import CIFAR  # noqa: E402

SAMPLE = os.path.join(ROOT, "..", "shared", "data", "cifar-10-batches-py", "data_batch_1")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--images", type=int, default=50000, help="training set size")
    parser.add_argument("--steps", type=int, default=30,
                        help="timed training steps per kind of data")
    parser.add_argument("--block", type=int, default=3,
                        help="consecutive steps of one kind before switching")
    parser.add_argument("--iter-batches", type=int, default=300,
                        help="batches per timed run of the iterator alone")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--depth", type=int, default=20)
    return parser.parse_args(argv)


def training_images(count):
    """(images, labels, where from): the real sample tiled to ``count`` images."""
    if os.path.isfile(SAMPLE):
        images, labels = data.load_batch(SAMPLE)
        source = f"real CIFAR-10 sample ({len(labels)} images) tiled"
    else:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (1000, 3, 32, 32), dtype=np.uint8)
        labels, source = rng.integers(0, 10, 1000), "random pixels (sample not found)"
    take = np.resize(np.arange(len(labels)), count)
    return images[take], labels[take], source


def make_iter(images, labels, batch_size, prefetch=True):
    mean, std = data.cifar_mean_std(images)
    return data.CifarIter(images, labels, batch_size, True, mean, std,
                          last_batch="discard", prefetch=prefetch)


def iterator_speed(it, batches):
    """Images/s of ``batches`` batches read from ``it`` (data made ready), from a fresh epoch."""
    it.reset()
    start = time.perf_counter()
    for _ in range(batches):
        try:
            batch = it.next()
        except StopIteration:
            it.reset()
            batch = it.next()
        batch.data[0].wait_to_read()
    return batches * it.batch_size / (time.perf_counter() - start)


def build_module(depth, batch_size):
    import symbols
    net = symbols.get_symbol(10, depth, (3, 32, 32))
    mod = mx.mod.Module(net, context=mx.cpu())
    mod.bind([mx.io.DataDesc("data", (batch_size, 3, 32, 32))],
             [mx.io.DataDesc("softmax_label", (batch_size,))])
    mod.init_params(initializer())
    mod.init_optimizer(optimizer=CIFAR.optimizer, optimizer_params={
        "learning_rate": CIFAR.lr, "momentum": CIFAR.momentum, "wd": CIFAR.weight_decay})
    return mod


def step_time(mod, next_batch, metric):
    """Seconds of one training step as in ``Module.fit``: next batch, forward, backward,
    update and the accuracy metric, until all of it has run."""
    start = time.perf_counter()
    batch = next_batch()
    mod.forward_backward(batch)
    mod.update()
    mod.update_metric(metric, batch.label)
    mx.nd.waitall()
    return time.perf_counter() - start


def synthetic_batch(batch_size):
    rng = np.random.default_rng(0)
    return mx.io.DataBatch(
        [mx.nd.array(rng.standard_normal((batch_size, 3, 32, 32), dtype=np.float32))],
        [mx.nd.array(rng.integers(0, 10, batch_size), dtype=np.float32)], pad=0)


def real_batches(it):
    def next_batch():
        try:
            return it.next()
        except StopIteration:
            it.reset()
            return it.next()
    return next_batch


def main(argv=None):
    args = parse_args(argv)
    images, labels, source = training_images(args.images)
    print(f"machine: {this_cpu().label(physical_cores())}")
    print(f"MXNet {mx.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"data: {source} to {len(labels)} images; batch size {args.batch_size}")

    speeds = {}
    for prefetch in (True, False):
        it = make_iter(images, labels, args.batch_size, prefetch)
        iterator_speed(it, 5)
        speeds[prefetch] = statistics.median(
            iterator_speed(it, args.iter_batches) for _ in range(args.repeats))
        it.close()
        print(f"iterator alone, {'background thread' if prefetch else 'no thread        '}: "
              f"{speeds[prefetch]:9.0f} images/s")

    mod = build_module(args.depth, args.batch_size)
    fixed = synthetic_batch(args.batch_size)
    it = make_iter(images, labels, args.batch_size)
    sources = {"synthetic": lambda: fixed, "real": real_batches(it)}
    metric = mx.metric.Accuracy()
    for kind in sources:                            # warm-up: memory, kernels
        for _ in range(2):
            step_time(mod, sources[kind], metric)
    times = {kind: [] for kind in sources}
    for block in range(-(-args.steps // args.block)):
        for kind in sorted(sources, reverse=block % 2 == 1):
            times[kind] += [step_time(mod, sources[kind], metric) for _ in range(args.block)]
    it.close()
    speed = {kind: args.batch_size / statistics.median(t) for kind, t in times.items()}
    for kind in ("synthetic", "real"):
        fast, slow = (args.batch_size / f(times[kind]) for f in (min, max))
        print(f"ResNet-{args.depth} training, {kind + ' data:':16s}{speed[kind]:9.1f} images/s "
              f"(median of {len(times[kind])} steps; range {slow:.1f}-{fast:.1f})")
    synthetic, real = speed["synthetic"], speed["real"]
    print(f"iterator / training speed: {speeds[True] / synthetic:7.1f}x  (target >= 10x)")
    print(f"real / synthetic training: {100 * real / synthetic:7.1f} %  (target >= 95 %)")
    print(f"batch building without any overlap would cost "
          f"{100 * synthetic / speeds[False]:.1f} % of a training step")


if __name__ == "__main__":
    run_main(main)
