"""Helpers of the training tests: a small CIFAR-10 folder, the scripts' flags, subprocesses."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The smallest CIFAR ResNet (one unit a stage) on 200 training images: 6 batches an epoch.
TINY = ["--num-layers", "8", "--batch-size", "32", "--no-plots"]


def small_cifar(shared, root, train_per_batch=40, test_size=60):
    """A complete CIFAR-10 folder under ``root`` made from the real sample's images."""
    from data.sample import make_cifar_sample
    make_cifar_sample(shared, str(root), train_per_batch, test_size)
    return str(root)


def run_script(args, timeout=120, **kwargs):
    """Run ``python3 <args>`` from the repository root; returns the CompletedProcess."""
    return subprocess.run([sys.executable] + list(args), cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout, **kwargs)
