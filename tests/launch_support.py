"""Helpers of the launcher tests: a generated CIFAR-10 folder and a tiny budget table."""
import os
import pickle
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = ["original_110", "full_preact_110"]
# A budget table of ResNet-8 runs on 200 generated images, batch 32: 7 batches an epoch,
# 6 epochs, one thread each.
TABLE = ["table2", "--rows", ",".join(ROWS), "--budget", "40", "--budget-examples", "200",
         "--num-layers", "8", "--batch-size", "32", "--no-plots", "--disp-batches", "100"]
TIMINGS = ("epoch_seconds", "samples_per_sec")


def generated_cifar(root, seed=0):
    """A CIFAR-10 folder under ``root`` (200 training, 60 test images of random pixels) in
    the official layout; returns ``root``."""
    from data.sample import make_cifar_sample
    rng = np.random.default_rng(seed)
    source = os.path.join(str(root), "source")
    os.makedirs(source, exist_ok=True)
    batch = {b"batch_label": b"generated", b"labels": [int(v) for v in rng.integers(0, 10, 260)],
             b"data": rng.integers(0, 256, (260, 3072), dtype=np.uint8)}
    meta = {b"label_names": [f"class{k}".encode() for k in range(10)],
            b"num_cases_per_batch": 260, b"num_vis": 3072}
    for name, obj in (("data_batch_1", batch), ("batches.meta", meta)):
        with open(os.path.join(source, name), "wb") as f:
            pickle.dump(obj, f, protocol=2)
    make_cifar_sample(source, os.path.join(str(root), "cifar"), train_per_batch=40,
                      test_size=60)
    return os.path.join(str(root), "cifar")


def experiments(*args):
    """The ``python3 -m experiments`` command line with ``args``."""
    return [sys.executable, "-m", "experiments", *map(str, args)]


def without_timings(records):
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in records]


def wait_for(condition, timeout, what, every=0.2):
    """Poll ``condition()`` until it is true; fail saying ``what`` after ``timeout`` s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
