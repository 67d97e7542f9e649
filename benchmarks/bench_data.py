"""How fast the CIFAR iterator is, alone and under ResNet-20 training.

Prints (1) the images/s the augmenting ``CifarIter`` delivers on its own, with and without
the background thread, (2) ResNet-20 training images/s with one synthetic batch in memory
versus real augmented batches from the iterator, and the two targets: iterator >= 10x
training speed, real/synthetic >= 95 %. Data: the shared real CIFAR-10 sample tiled to
``--images`` images (random pixels if the sample is absent). Medians over ``--repeats``.

    python3 benchmarks/bench_data.py [--batches 20] [--repeats 3]
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

from common.cli import run_main  # noqa: E402
from common.mx import mx  # noqa: E402
import data  # noqa: E402

SAMPLE = os.path.join(ROOT, "..", "shared", "data", "cifar-10-batches-py", "data_batch_1")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--images", type=int, default=50000, help="training set size")
    parser.add_argument("--batches", type=int, default=20,
                        help="training batches per timed run")
    parser.add_argument("--iter-batches", type=int, default=300,
                        help="batches per timed run of the iterator alone")
    parser.add_argument("--repeats", type=int, default=3)
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
    mod.init_params(mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2))
    mod.init_optimizer(optimizer="nag", optimizer_params={
        "learning_rate": 0.1, "momentum": 0.9, "wd": 1e-4})
    return mod


def train_speed(mod, next_batch, batches):
    """Training images/s over ``batches`` steps, each as in ``Module.fit``: forward,
    backward, update and the accuracy metric (which waits for the outputs)."""
    metric = mx.metric.Accuracy()
    start = time.perf_counter()
    for _ in range(batches):
        batch = next_batch()
        mod.forward_backward(batch)
        mod.update()
        mod.update_metric(metric, batch.label)
    mx.nd.waitall()
    return batches * batch.data[0].shape[0] / (time.perf_counter() - start)


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
    print(f"MXNet {mx.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"data: {source} to {len(labels)} images; batch size {args.batch_size}; "
          f"medians of {args.repeats} runs")

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
    train_speed(mod, lambda: fixed, 3)             # warm-up: memory, kernels
    train_speed(mod, real_batches(it), 3)
    runs = {"synthetic": [], "real": []}
    sources = {"synthetic": lambda: fixed, "real": real_batches(it)}
    for repeat in range(args.repeats):  # interleaved, each first in turn: load drifts
        for kind in sorted(sources, reverse=repeat % 2 == 1):
            runs[kind].append(train_speed(mod, sources[kind], args.batches))
    synthetic, real = (statistics.median(runs[kind]) for kind in ("synthetic", "real"))
    it.close()
    print(f"ResNet-{args.depth} training, synthetic data:   {synthetic:9.1f} images/s")
    print(f"ResNet-{args.depth} training, real augmented:   {real:9.1f} images/s")
    print(f"iterator / training speed: {speeds[True] / synthetic:7.1f}x  (target >= 10x)")
    print(f"real / synthetic training: {100 * real / synthetic:7.1f} %  (target >= 95 %)")


if __name__ == "__main__":
    run_main(main)
